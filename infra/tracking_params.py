"""What a run records as MLflow params, and how a model configuration is named.

Params are flat ``str → str`` (MLflow limits: keys 250 chars, values 6,000). Nested config
is flattened with dots (``tier.1.quantization.bits``); long strings such as prompt
templates are recorded as their sha256 (``…prompt.sha256``); anything that looks like a
credential is never recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from patchsmith import preflight
from patchsmith.config import Campaign
from patchsmith.domain import Attempt, Instance

MAX_VALUE = 6000
HASH_OVER = 200  # strings longer than this are recorded as a hash
SECRET = re.compile(r"(api_?key|token|secret|password|credential|auth)", re.IGNORECASE)
KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /:]")


def patchsmith_version() -> str:
    """The installed patchsmith version, or "unknown" when running from a bare checkout."""
    try:
        return version("patchsmith")
    except PackageNotFoundError:
        return "unknown"


def sha256(text: str) -> str:
    """Hex sha256 of a string."""
    return hashlib.sha256(text.encode()).hexdigest()


def flatten(prefix: str, value: Any, out: dict[str, str] | None = None) -> dict[str, str]:
    """Flatten nested dicts into dotted param keys; lists of scalars become JSON."""
    out = {} if out is None else out
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
        return out
    key = KEY_CHARS.sub("_", prefix)[:250]
    last = key.rsplit(".", 1)[-1]
    if SECRET.search(last) and not last.endswith(("tokens", "_tokens")):
        return out  # credentials never reach MLflow
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):
            flatten(f"{prefix}.{i}", item, out)
        return out
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) > HASH_OVER:
        out[f"{key}.sha256"[:250]] = sha256(text)
    else:
        out[key] = text[:MAX_VALUE]
    return out


def campaign_params(campaign: Campaign, config_hash: str) -> dict[str, str]:
    """Params of a campaign run (also copied onto each of its instance runs)."""
    params: dict[str, str] = {
        "patchsmith_version": patchsmith_version(),
        "config_hash": config_hash,
        "campaign": campaign.name,
        "instances": str(len(campaign.instances)),
        "concurrency": str(campaign.concurrency),
        "verify": str(campaign.verify),
        "tiers": ">".join(t.name for t in campaign.tiers),
    }
    for i, tier in enumerate(campaign.tiers):
        flatten(f"tier.{i}", tier.model_dump(mode="json"), params)
    flatten("sandbox", campaign.sandbox.model_dump(mode="json"), params)
    flatten("budget", campaign.budget.model_dump(mode="json"), params)
    if campaign.campaign_budget is not None:
        flatten("campaign_budget", campaign.campaign_budget.model_dump(mode="json"), params)
    # The worst case before it starts (patchsmith/preflight.py), to compare with the spend.
    params.update({k: str(v) for k, v in preflight.estimate(campaign).params().items()})
    return params


def instance_params(instance: Instance, key: str) -> dict[str, str]:
    """Params that identify an instance run."""
    return {
        "instance_id": instance.instance_id,
        "instance_key": key,
        "repo": instance.repo[:MAX_VALUE],
        "base_commit": str(instance.base_commit),
        "intent": str(instance.intent),
        "instruction.sha256": sha256(instance.instruction),
        "test_cmd": instance.test_cmd[:MAX_VALUE],
    }


# ------------------------------------------------------------- model configurations


def model_config(attempt: Attempt) -> dict[str, Any]:
    """The model configuration of an attempt: tier, generator, model, adapters, quantization."""
    model = attempt.model or {}
    config: dict[str, Any] = {"tier": attempt.tier, "generator": attempt.generator}
    model_id = model.get("model") or model.get("model_id") or model.get("id")
    if model_id:
        config["model"] = str(model_id)
    adapters = model.get("adapters") or []
    if adapters:
        config["adapters"] = [
            {k: a.get(k) for k in ("name", "version", "sha256") if a.get(k) is not None}
            if isinstance(a, dict)
            else {"name": str(a)}
            for a in adapters
        ]
    quant = model.get("quantization")
    if quant and quant != "none":
        config["quantization"] = quant if isinstance(quant, dict) else {"method": str(quant)}
    attn = model.get("attn_implementation")
    if attn:
        config["attn_implementation"] = str(attn)
    return config


def config_id(config: dict[str, Any]) -> str:
    """Short stable id of a model configuration (used in metric keys)."""
    return sha256(json.dumps(config, sort_keys=True, default=str))[:10]


def config_label(config: dict[str, Any]) -> str:
    """Human name: ``search/mutation``, ``qwen-1.5b+fix-lora@3 bnb-4bit nf4``."""
    if "model" not in config:
        return f"{config.get('tier')}/{config.get('generator')}"
    label = str(config["model"])
    for adapter in config.get("adapters", []):
        label += f"+{adapter.get('name')}" + (
            f"@{adapter['version']}" if adapter.get("version") else ""
        )
    quant = config.get("quantization")
    if isinstance(quant, dict):
        method = str(quant.get("method", "quantized"))
        bits = quant.get("bits")
        if bits and str(bits) not in method:
            method += f"-{bits}bit"
        label += f" {method}" + (f" {quant['quant_type']}" if quant.get("quant_type") else "")
    return label
