"""Building ``install`` environments: once per key, inside the sandbox, at their final path.

Layout under ``$PATCHSMITH_HOME/envs``::

    <key>/                      the venv; root-owned and read-only to the sandbox once built
    <key>/.patchsmith-env.json  completion marker (key, args, python, durations), written last
    <key>.lock                  flock'd while one thread or process checks or builds <key>
    <key>.log                   the last build's log (kept after a failure, for the user)
    <key>.uses                  campaign/instance labels that used the env, one a line
    tools/py<X.Y>-<hash>/       patchsmith's own pytest + coverage (see below)

venvs are not relocatable, so an env is built where it will live, behind the lock; a
directory without a valid marker is an interrupted build and is removed and rebuilt.

Installing runs the repository's build code (setup.py, PEP 517 backends), so every step runs
in the sandbox as the unprivileged sandbox uid: the repository in a throwaway attempt
workspace, only the new env dir writable (``rw_paths``), the network only when
``environment.network`` is true, ``HOME`` and uv's cache in the sandbox's private /tmp.
The host only hashes files, makes the directory, and at the end takes ownership of what the
build wrote (lchown to root, group/other write and set-id bits cleared, never following a
link) before it writes the marker.

**The repository's own distribution.** ``-e .`` would point the env at the throwaway build
workspace, and a plain ``.`` would copy that snapshot into site-packages; either way tests
would import the wrong code, not each attempt's candidate. So after installing, every
distribution whose ``direct_url.json`` points into the build workspace is uninstalled again
(its dependencies stay), and ``_patchsmith_workspace.pth`` puts the test's working
directory (the attempt workspace; its ``src/`` for a src layout, likewise for local
sub-packages) first on ``sys.path``. Cost: the project's own metadata and console scripts
are not installed (``importlib.metadata.version("proj")`` fails); its code is always the
attempt's. Rejected alternative: binding each attempt at the build's path would need a
second mount namespace layout per attempt and breaks two attempts running at once.

**pytest and coverage.** Offline, a user's wheel directory seldom holds pytest. When the env's
Python has patchsmith's major.minor version, ``zzz_patchsmith_tools.pth`` appends a tools
directory (a copy of patchsmith's own pytest, pytest-cov, coverage and their dependencies,
with their metadata) to the *end* of ``sys.path``: a repository that installs its own pytest
(say ``pytest<8`` for an old project) gets its own, one that does not still runs, and
coverage-based localization works in both. ``bin/pytest`` is added when missing. Another
Python version gets nothing extra: then the repository's requirements must bring pytest.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from patchsmith.domain import Environment, ExecResult, SandboxConfig
from patchsmith.infra.envs_key import build_key
from patchsmith.infra.envs_python import Interpreter
from patchsmith.infra.envs_store import (
    ensure_tools,
    harden,
    locked,
    note_use,
    read_marker,
    remove_tree,
    write_json,
    write_log,
)
from patchsmith.infra.envs_types import MARKER, BuildSite, EnvError, ResolvedEnv, merge_config

SANDBOX_UID = 65534
WORKSPACE_PTH = "_patchsmith_workspace.pth"
TOOLS_PTH = "zzz_patchsmith_tools.pth"
LOG_TAIL_LINES = 25
_DIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# Run by the env's own Python with -I (site sets sys.prefix to the venv): where its
# site-packages is, and which
# distributions were installed from a local path inside the build workspace.
_PROBE = r"""
import json, os, sys, sysconfig, urllib.parse, urllib.request
ws = sys.argv[1]
lib = sysconfig.get_path("purelib")
local = []
for entry in sorted(os.listdir(lib)):
    if not entry.endswith(".dist-info"):
        continue
    try:
        with open(os.path.join(lib, entry, "direct_url.json")) as fh:
            url = json.load(fh).get("url", "")
    except (OSError, ValueError):
        continue
    if not url.startswith("file://"):
        continue
    path = urllib.request.url2pathname(urllib.parse.urlparse(url).path)
    if path == ws or path.startswith(ws + "/"):
        name = entry[: -len(".dist-info")].rsplit("-", 1)[0]
        local.append({"name": name, "rel": os.path.relpath(path, ws)})
v = sys.version_info
print(json.dumps({"purelib": lib, "version": f"{v.major}.{v.minor}.{v.micro}", "local": local}))
"""
# Writes files given as JSON {relative path: text} under the env dir (argv[1]).
_WRITE = r"""
import json, os, sys
root = sys.argv[1]
for rel, text in json.loads(sys.argv[2]).items():
    path = os.path.join(root, rel)
    with open(path, "w") as fh:
        fh.write(text)
    if rel.startswith("bin/"):
        os.chmod(path, 0o755)
"""


# ------------------------------------------------------------------ building


def build_config(
    base: SandboxConfig, env: Environment, interp: Interpreter, env_dir: Path
) -> SandboxConfig:
    """Sandbox settings of a build: its own timeout, room for builds, only env_dir writable."""
    import uv

    index_dir = []
    if env.index_url and env.index_url.startswith("file://"):
        index_dir = [env.index_url.removeprefix("file://")]
    binds = [*interp.binds, uv.find_uv_bin(), *env.find_links, *index_dir]
    merged = merge_config(base, ro_paths=binds)
    return merged.model_copy(
        update={
            "timeout_s": env.timeout_s,
            "tmp_mb": max(base.tmp_mb, 2048),
            "memory_mb": max(base.memory_mb, 8192),
            "file_mb": max(base.file_mb, 1024),
            "disk_mb": max(base.disk_mb, 4096),
            "inodes": max(base.inodes, 262144),
            "output_kb": max(base.output_kb, 256),
            "rw_paths": [str(env_dir)],
            "network": env.network,
            "env": {
                **base.env,
                "HOME": "/tmp",
                "XDG_CACHE_HOME": "/tmp/.cache",
                "UV_CACHE_DIR": "/tmp/uv-cache",
                "UV_NO_CONFIG": "1",  # the repository's uv.toml / [tool.uv] must not steer it
                "UV_PYTHON_DOWNLOADS": "never",
                "UV_NO_PROGRESS": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            },
        }
    )


def install_argv(env: Environment, python: str) -> list[str]:
    """``uv pip install`` for ``env`` into the venv whose interpreter is ``python``."""
    import uv

    argv = [uv.find_uv_bin(), "pip", "install", "--python", python]
    argv += ["--compile-bytecode", "--link-mode", "copy"]
    if not env.network:
        argv.append("--offline")
    if env.index_url:
        argv += ["--index-url", env.index_url]
    elif not env.network:
        argv.append("--no-index")
    for link in env.find_links:
        argv += ["--find-links", link]
    return [*argv, *env.install]


class _Build:
    """One build: runs its steps in the sandbox, keeps their log and durations."""

    def __init__(self, envs: BuildSite, config: SandboxConfig, ws: Path, label: str) -> None:
        self.envs, self.config, self.ws, self.label = envs, config, ws, label
        self.log: list[str] = []
        self.durations: dict[str, float] = {}

    def step(self, name: str, argv: Sequence[str], fix: str) -> ExecResult:
        result: ExecResult = self.envs.sandbox.run(self.ws, list(argv), self.config)
        self.durations[name] = round(result.duration_s, 3)
        self.log += [f"$ {' '.join(argv)}", result.stdout_tail, result.stderr_tail]
        if not result.ok:
            why = "timed out" if result.timed_out else f"exited {result.exit_code}"
            if result.limit_hit and not result.timed_out:
                why += f", {result.limit_hit} limit"
            raise _StepFailed(name, argv, why, fix)
        return result

    def text(self) -> str:
        return "\n".join(part.rstrip() for part in self.log if part.strip()) + "\n"


class _StepFailed(Exception):
    def __init__(self, name: str, argv: Sequence[str], why: str, fix: str) -> None:
        super().__init__(f"{name} {why}")
        self.name, self.argv, self.why, self.fix = name, list(argv), why, fix


def _install_fix(env: Environment, log: str) -> str:
    if env.network:
        return "check environment.install and that the index is reachable"
    if re.search(r"not found|No solution|no version|offline|Failed to (fetch|download)", log):
        return (
            "the packages are not in environment.find_links (the build is offline): add their "
            "wheels there (pip download -d DIR ... on a machine with network), or set "
            "environment.network: true to allow the index for this step"
        )
    return (
        "check environment.install; building sdists offline needs their build backends "
        "(e.g. setuptools, wheel) as wheels in environment.find_links"
    )


def _build(
    envs: BuildSite,
    env: Environment,
    base: SandboxConfig,
    interp: Interpreter,
    key: str,
    parts: dict[str, Any],
    env_dir: Path,
    pristine: Path,
    label: str,
) -> dict[str, Any]:
    import uv

    missing = [d for d in env.find_links if not Path(d).is_dir()]
    if missing:
        raise EnvError(
            f"{label}: environment.find_links: {', '.join(missing)} is not a directory; "
            "create the wheel directory first (e.g. pip wheel -w DIR ...)"
        )
    env_dir.mkdir()
    if os.geteuid() == 0:
        os.chown(env_dir, SANDBOX_UID, SANDBOX_UID)
    config = build_config(base, env, interp, env_dir)
    python = str(env_dir / "bin" / "python")
    t0 = time.monotonic()
    with envs.workspaces.attempt(pristine) as ws:
        build = _Build(envs, config, Path(ws), label)
        try:
            venv = [uv.find_uv_bin(), "venv", "--no-project", "--allow-existing"]
            venv += ["--python", interp.python, str(env_dir)]
            build.step("venv", venv, f"environment.python ({interp.python}) must work here")
            build.step("install", install_argv(env, python), "")
            probe = build.step("probe", [python, "-I", "-c", _PROBE, str(ws)], "")
            info = _probe_info(probe.stdout_tail, env_dir, label)
            names = [d["name"] for d in info["local"]]
            if names:
                uninstall = [uv.find_uv_bin(), "pip", "uninstall", "--python", python, *names]
                build.step("uninstall own", uninstall, "")
            tools = ensure_tools(envs.root) if _same_minor(info["version"]) else None
            files = _extra_files(info, pristine, env_dir, tools)
            write = [python, "-I", "-S", "-c", _WRITE, str(env_dir), json.dumps(files)]
            build.step("write .pth", write, "")
        except _StepFailed as exc:
            log = build.text()
            write_log(envs.root / f"{key}.log", log)
            fix = exc.fix or _install_fix(env, log)
            tail = "\n".join(f"    {line}" for line in log.splitlines()[-LOG_TAIL_LINES:])
            raise EnvError(
                f"{label}: the environment failed to build: {exc.name} {exc.why}\n"
                f"  command: {' '.join(exc.argv)}\n  log tail:\n{tail}\n"
                f"  full log: {envs.root / f'{key}.log'}\n  fix: {fix}"
            ) from None
    harden(env_dir)
    record = {
        "key": key,
        "install": list(env.install),
        "python": interp.python,
        "python_version": info["version"],
        "network": env.network,
        "find_links": list(env.find_links),
        "index_url": env.index_url,
        "removed_own": names,
        "tools": tools,
        "inputs": parts,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "durations": {**build.durations, "total": round(time.monotonic() - t0, 3)},
        "label": label,
    }
    write_log(envs.root / f"{key}.log", build.text())
    write_json(env_dir / MARKER, record)
    return record


def _same_minor(version: str) -> bool:
    return version.split(".")[:2] == [str(sys.version_info.major), str(sys.version_info.minor)]


def _probe_info(stdout: str, env_dir: Path, label: str) -> dict[str, Any]:
    """The probe's JSON, checked: it came from a Python the build could have tampered with."""
    try:
        info = json.loads(stdout.strip().splitlines()[-1])
        lib = Path(os.path.normpath(info["purelib"]))
        local = [
            {"name": str(d["name"]), "rel": os.path.normpath(str(d["rel"]))} for d in info["local"]
        ]
        version = str(info["version"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise EnvError(f"{label}: the built environment's Python gave no usable answer") from exc
    if env_dir not in lib.parents or not all(
        _DIST_NAME.match(d["name"]) and not d["rel"].startswith("..") for d in local
    ):
        raise EnvError(f"{label}: the built environment's Python gave an implausible answer")
    return {"purelib": str(lib), "local": local, "version": version}


def _extra_files(
    info: dict[str, Any], pristine: Path, env_dir: Path, tools: str | None
) -> dict[str, str]:
    """The .pth files (and a bin/pytest shim) to add, as {path relative to env_dir: text}."""
    lib = Path(info["purelib"]).relative_to(env_dir).as_posix()
    files: dict[str, str] = {}
    roots: list[str] = []
    for dist in info["local"]:
        rel = dist["rel"]
        src = os.path.normpath(os.path.join(rel, "src"))
        chosen = src if (pristine / src).is_dir() else rel
        if chosen not in roots:
            roots.append(chosen)
    if roots:
        files[f"{lib}/{WORKSPACE_PTH}"] = (
            "import os, sys; sys.path[:0] = [os.path.normpath(os.path.join(os.getcwd(), r)) "
            f"for r in {roots!r}]\n"
        )
    if tools:
        files[f"{lib}/{TOOLS_PTH}"] = tools + "\n"
        if not (env_dir / "bin" / "pytest").exists():
            files["bin/pytest"] = '#!/bin/sh\nexec "$(dirname "$0")/python" -m pytest "$@"\n'
    return files


def ensure_built(
    envs: BuildSite,
    env: Environment,
    base: SandboxConfig,
    interp: Interpreter,
    *,
    repo: str,
    pristine: Path,
    label: str,
) -> ResolvedEnv:
    """The env of this key, built now if there is no finished one; see the module docstring."""
    key, parts = build_key(env, repo, pristine, interp)
    envs.root.mkdir(parents=True, exist_ok=True)
    env_dir = envs.root / key
    t0 = time.monotonic()
    built = False
    with locked(envs.root / f"{key}.lock"):
        record = read_marker(env_dir, key)
        if record is None:
            remove_tree(env_dir)  # an interrupted or foreign build
            try:
                record = _build(envs, env, base, interp, key, parts, env_dir, pristine, label)
            except BaseException:
                remove_tree(env_dir)
                raise
            built = True
        tools = record.get("tools")
        if tools and not Path(tools).is_dir():
            ensure_tools(envs.root)
        note_use(envs.root, key, label)
    ro = [str(env_dir), *interp.binds, *([tools] if tools else [])]
    config = merge_config(
        base, ro_paths=ro, path_prepend=[str(env_dir / "bin")], env={"VIRTUAL_ENV": str(env_dir)}
    )
    return ResolvedEnv(
        "install",
        config,
        str(env_dir / "bin" / "python"),
        key=key,
        path=env_dir,
        built=built,
        seconds=round(time.monotonic() - t0, 3),
        record=record,
    )
