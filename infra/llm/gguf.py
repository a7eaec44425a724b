"""GGUF model files for the ``hf`` backend: catalog names resolved, converted once, cached.

transformers loads a GGUF file (``from_pretrained(dir, gguf_file=name)``) by dequantizing
it to full precision, which takes tens of seconds, and refuses both bitsandbytes on top of
it and ``save_pretrained`` of it. So a GGUF file is converted once into an ordinary model
folder (weights as float32, exactly the dequantized values; tokenizer included), cached
under ``<models root>/converted/<sha256 prefix>/`` and keyed by the file's sha256: later
loads take seconds and bitsandbytes quantization applies to them as to any folder.

A conversion is written to a temporary folder and renamed into place when complete (a
crash leaves no half folder that looks done); a lock file keeps two processes of the same
machine from converting the same file at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchsmith.errors import ConfigError
from patchsmith.infra import models

DONE = "patchsmith-converted.json"


@dataclass(frozen=True)
class Resolved:
    """What transformers loads for a ``model:`` value, and where it came from."""

    path: str
    """A hub id or a model folder (a GGUF file's converted folder)."""
    gguf: str | None = None
    sha256: str | None = None
    catalog: str | None = None
    converted_s: float | None = None
    """Seconds this process spent converting (None when the cache already held it)."""

    def provenance(self) -> dict[str, Any]:
        return {k: v for k, v in {"gguf": self.gguf, "gguf_sha256": self.sha256,
                                  "catalog": self.catalog}.items() if v}  # fmt: skip


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(models.CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def resolve(model: str, root: Path | None = None) -> Resolved:
    """A catalog name (installed), a ``.gguf`` file (converted, cached), or ``model`` as is."""
    root = root or models.models_root()
    catalog: str | None = None
    if model in models.CATALOG:
        catalog, gguf = model, models.require(model, root)
        sha = models.CATALOG[model].sha256
    elif model.endswith(".gguf"):
        gguf = Path(model).expanduser().resolve()
        if not gguf.is_file():
            raise ConfigError(f"model {model!r}: no such GGUF file")
        sha = file_sha256(gguf)
    else:
        return Resolved(path=model)
    folder, spent = convert(gguf, sha, root)
    return Resolved(str(folder), str(gguf), sha, catalog, spent)


def convert(gguf: Path, sha256: str, root: Path) -> tuple[Path, float | None]:
    """The converted folder of ``gguf`` (made now if the cache lacks it) and the seconds
    spent making it (None when it was cached)."""
    base = root / "converted"
    out = base / sha256[:16]
    if _complete(out, sha256):
        return out, None
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f"{sha256[:16]}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting it right now
        if _complete(out, sha256):
            return out, None
        t0 = time.monotonic()
        tmp = base / f".{sha256[:16]}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _save_converted(gguf, tmp)
            (tmp / DONE).write_text(json.dumps({"gguf": str(gguf), "sha256": sha256}) + "\n")
            shutil.rmtree(out, ignore_errors=True)  # an incomplete one from an older layout
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return out, time.monotonic() - t0


def _complete(folder: Path, sha256: str) -> bool:
    try:
        return json.loads((folder / DONE).read_text()).get("sha256") == sha256
    except (OSError, ValueError, AttributeError):
        return False


def _save_converted(gguf: Path, out: Path) -> None:
    import torch
    import transformers

    where, name = str(gguf.parent), gguf.name
    tokenizer = transformers.AutoTokenizer.from_pretrained(where, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        where, gguf_file=name, dtype=torch.float32
    )
    # The GGUF load marks the model as quantized, and a quantized model refuses to save.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
