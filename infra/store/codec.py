"""Domain values ↔ row values: searchable columns, JSON payloads, artifacts.

Big text never sits in a row: candidate diffs, test-log tails and final patches are
cut out of the JSON payload and stored once as artifacts (content-addressed by the
sha256 of their UTF-8 bytes); reading puts them back, so values round-trip exactly.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from patchsmith.domain import Attempt, Outcome

_COMPRESS_MIN = 512


@dataclass(frozen=True)
class Blob:
    """Bytes on their way into the artifacts table."""

    sha256: str
    kind: str
    data: bytes

    @classmethod
    def of(cls, data: bytes, kind: str) -> Blob:
        return cls(hashlib.sha256(data).hexdigest(), kind, data)

    @classmethod
    def of_text(cls, text: str, kind: str) -> Blob:
        return cls.of(encode_text(text), kind)

    def values(self, now: float) -> dict[str, Any]:
        """Row values; zlib-compressed when that saves at least a tenth."""
        data, encoding = self.data, "raw"
        if len(data) >= _COMPRESS_MIN:
            packed = zlib.compress(data, 6)
            if len(packed) < 0.9 * len(data):
                data, encoding = packed, "zlib"
        return {
            "sha256": self.sha256,
            "kind": self.kind,
            "size": len(self.data),
            "encoding": encoding,
            "data": data,
            "created": now,
        }


def encode_text(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def decode_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def unpack(encoding: str, data: bytes) -> bytes:
    """Stored bytes → original bytes."""
    return zlib.decompress(data) if encoding == "zlib" else bytes(data)


def _model_id(model: dict[str, Any]) -> str | None:
    for name in ("id", "model_id", "model", "name", "path"):
        value = model.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def attempt_values(instance_run_id: str, attempt: Attempt) -> tuple[dict[str, Any], list[Blob]]:
    """Row values for ``attempts`` and the artifacts they point at."""
    payload = attempt.model_dump(mode="json")
    blobs: list[Blob] = []
    diff_sha = log_sha = None
    if attempt.candidate is not None and attempt.candidate.diff:
        blob = Blob.of_text(attempt.candidate.diff, "patch")
        blobs.append(blob)
        diff_sha, payload["candidate"]["diff"] = blob.sha256, ""
    if attempt.report is not None and attempt.report.log_tail:
        blob = Blob.of_text(attempt.report.log_tail, "log")
        blobs.append(blob)
        log_sha, payload["report"]["log_tail"] = blob.sha256, ""
    report, critique, usage = attempt.report, attempt.critique, attempt.usage
    model = attempt.model
    values = {
        "instance_run_id": instance_run_id,
        "number": attempt.number,
        "tier": attempt.tier,
        "generator": attempt.generator,
        "status": attempt.status.value,
        "model_id": _model_id(model),
        "adapters": model.get("adapters"),
        "quantization": model.get("quantization"),
        "candidate_id": attempt.candidate.candidate_id if attempt.candidate else None,
        "diff_sha": diff_sha,
        "log_sha": log_sha,
        "verdict": critique.verdict.value if critique else None,
        "tests_passed": len(report.passing()) if report else None,
        "tests_failed": len(report.failing()) if report else None,
        "regressions": len(critique.regressions) if critique else None,
        "tokens": usage.prompt_tokens + usage.completion_tokens,
        "dollars": usage.dollars,
        "gpu_seconds": usage.gpu_seconds,
        "started_at": attempt.started_at,
        "duration_s": attempt.duration_s,
        "payload": payload,
    }
    return values, blobs


def attempt_from(
    payload: dict[str, Any],
    diff_sha: str | None,
    log_sha: str | None,
    text_of: Callable[[str], str],
) -> Attempt:
    """Rebuild an Attempt from its payload; ``text_of`` reads an artifact as text."""
    data = dict(payload)
    if diff_sha is not None:
        data["candidate"] = {**data["candidate"], "diff": text_of(diff_sha)}
    if log_sha is not None:
        data["report"] = {**data["report"], "log_tail": text_of(log_sha)}
    return Attempt.model_validate(data)


def outcome_values(
    instance_run_id: str, campaign_id: str, key: str, outcome: Outcome
) -> tuple[dict[str, Any], list[Blob]]:
    """Row values for ``outcomes`` and the patch artifact, if any."""
    payload = outcome.model_dump(mode="json")
    blobs: list[Blob] = []
    patch_sha = None
    if outcome.patch:
        blob = Blob.of_text(outcome.patch, "patch")
        blobs.append(blob)
        patch_sha, payload["patch"] = blob.sha256, None
    values = {
        "instance_run_id": instance_run_id,
        "campaign_id": campaign_id,
        "key": key,
        "instance_id": outcome.instance_id,
        "status": outcome.status.value,
        "attempts": outcome.attempts,
        "tier": outcome.tier,
        "duration_s": outcome.duration_s,
        "patch_sha": patch_sha,
        "reasons": list(outcome.reasons),
        "give_up": outcome.give_up.value if outcome.give_up else None,
        "usage": outcome.usage.model_dump(mode="json"),
        "dollars": outcome.usage.dollars,
        "payload": payload,
    }
    return values, blobs


def outcome_from(
    payload: dict[str, Any], patch_sha: str | None, text_of: Callable[[str], str]
) -> Outcome:
    """Rebuild an Outcome from its payload."""
    data = dict(payload)
    if patch_sha is not None:
        data["patch"] = text_of(patch_sha)
    return Outcome.model_validate(data)
