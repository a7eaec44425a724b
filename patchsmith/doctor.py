"""``patchsmith doctor``: what this machine offers and what follows from it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

from patchsmith.infra.settings import home

Check = tuple[str, bool, str]
#: What a platform team deploys from (README: Scaling out).
DEPLOY_FILES = [
    "prefect.yaml",
    "infra/deploy/compose.yaml",
    "infra/deploy/Dockerfile",
    "infra/deploy/k8s/base-job-template.json",
]


def _runs(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _bwrap() -> Check:
    if not shutil.which("bwrap"):
        return (
            "bubblewrap",
            False,
            "sandbox falls back to 'subprocess' (NO isolation): apt-get install bubblewrap",
        )
    ok = _runs(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "true"])
    return (
        "bubblewrap",
        ok,
        "default sandbox: no network, read-only system, limits"
        if ok
        else "bwrap is installed but cannot create namespaces here (check user namespaces)",
    )


def _cgroups() -> Check:
    from patchsmith.infra.sandbox.cgroups import detect

    found = detect()
    if found.mode == "rlimit":
        return (
            "sandbox cgroups",
            False,
            f"max_procs falls back to RLIMIT_NPROC, shared by all sandboxes ({found.why}): "
            "run as root with cgroup v1 pids or a delegated cgroup v2 with pids",
        )
    memory = "pids + memory" if found.memory is not None else "pids only (memory: RLIMIT_AS)"
    return ("sandbox cgroups", True, f"{found.mode}: {memory} per sandbox under {found.pids}")


def _docker() -> Check:
    sock = Path(
        os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
    )
    has_sdk = importlib.util.find_spec("docker") is not None
    ok = sock.exists() and has_sdk
    why = (
        "docker sandbox backend usable"
        if ok
        else (
            "no Docker engine socket" if not sock.exists() else "pip install 'patchsmith[docker]'"
        )
    )
    return ("docker engine", ok, why)


def _cuda() -> Check:
    if importlib.util.find_spec("torch") is None:
        return ("CUDA", False, "torch not installed: pip install 'patchsmith[hf]' (CPU works too)")
    import torch

    ok = bool(torch.cuda.is_available())
    return (
        "CUDA",
        ok,
        f"{torch.cuda.get_device_name(0)}: bnb/vLLM GPU paths"
        if ok
        else "no GPU: hf backend runs on CPU; bnb 4/8-bit run on CPU slowly",
    )


def _module(name: str, label: str, meaning_ok: str, fix: str) -> Check:
    ok = importlib.util.find_spec(name) is not None
    return (label, ok, meaning_ok if ok else fix)


def _prefect() -> Check:
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return _server(url)
    return (
        "Prefect API",
        True,
        "embedded: ephemeral API on SQLite under "
        f"{os.environ.get('PREFECT_HOME', home() / 'prefect')} (no server to start)",
    )


def _server(url: str) -> Check:
    """A Prefect server: reachable? its work pools and workers, GPU limits, crash detection."""
    import httpx
    from prefect.client.orchestration import SyncPrefectClient

    from patchsmith.infra.prefect_setup import ZOMBIE_AUTOMATION

    try:
        with SyncPrefectClient(url, httpx_settings={"timeout": 5}) as client:
            pools = client.read_work_pools()
            workers = {p.name: client.read_workers_for_work_pool(p.name) for p in pools}
            limits = [g.name for g in client.read_global_concurrency_limits(limit=200)]
            crash = client.read_automations_by_name(ZOMBIE_AUTOMATION)
    except (httpx.HTTPError, OSError) as exc:
        return ("Prefect API", False, f"server at {url} does not answer: {exc}")
    online = ", ".join(
        f"{name} ({sum(w.status == 'ONLINE' for w in ws)} worker(s) online)"
        for name, ws in workers.items()
    )
    gpu = ", ".join(n for n in limits if n.startswith("gpu-")) or "none"
    ok = bool(pools) and bool(crash)
    fix = "" if ok else "; run `patchsmith infra setup CAMPAIGN` (README: Scaling out)"
    return (
        "Prefect API",
        ok,
        f"server at {url}: pools {online or 'none'}; GPU limits {gpu}; crash detection "
        f"{'on' if crash else 'off'}{fix}",
    )


def _deploy_files() -> Check:
    from patchsmith.infra.local_cluster import REPO

    found = [f for f in DEPLOY_FILES if (REPO / f).is_file()]
    missing = sorted(set(DEPLOY_FILES) - set(found))
    return (
        "deploy files",
        not missing,
        f"{', '.join(found)} under {REPO}" + (f"; missing {', '.join(missing)}" if missing else ""),
    )


def _store() -> Check:
    from patchsmith.infra.store.engine import default_url, parse_url

    url = parse_url(default_url(home()))
    shared = url.get_backend_name() != "sqlite"
    return (
        "provenance store",
        True,
        f"{url.render_as_string(hide_password=True)}"
        + ("" if shared else " (embedded; distributed workers need PATCHSMITH_DB_URL)"),
    )


def _mlflow() -> Check:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home() / 'mlflow.db'}"
    return (
        "MLflow store",
        True,
        f"tracking URI {uri}; browse with `mlflow ui --backend-store-uri {uri}`",
    )


def _workspace() -> Check:
    from patchsmith.infra.workspace import WorkspaceManager

    method = WorkspaceManager(home() / "workspaces").method
    return (
        "workspaces",
        method == "overlay",
        "overlayfs: constant-time per attempt"
        if method == "overlay"
        else "full copies per attempt (run as root for overlayfs)",
    )


def checks() -> list[Check]:
    """Every check, in display order."""
    return [
        _bwrap(),
        _cgroups(),
        _workspace(),
        _docker(),
        _cuda(),
        _module(
            "flash_attn",
            "flash-attn",
            "attention=auto uses flash_attention_2 on CUDA",
            "attention=auto uses sdpa (flash-attn needs CUDA: pip install 'patchsmith[gpu]')",
        ),
        _module(
            "vllm",
            "vllm (in-process)",
            "vllm backend usable on this worker",
            "run `vllm serve` in its own environment and use the openai backend",
        ),
        _module(
            "transformers",
            "transformers",
            "hf backend usable",
            "pip install 'patchsmith[hf]' for local models",
        ),
        _prefect(),
        _store(),
        _mlflow(),
        _deploy_files(),
    ]
