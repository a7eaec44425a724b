"""Per-repository environments: what the sandbox needs to run one repository's tests.

An instance's :class:`~patchsmith.domain.Environment` resolves to a :class:`ResolvedEnv`,
whose ``config`` is the campaign's SandboxConfig with the environment merged in (paths bound
read-only, its ``bin/`` first on PATH, variables). Three kinds:

- **default**: patchsmith's own interpreter, as before, but with
  ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`` (unless the campaign set it) so patchsmith's own
  pytest plugins are not loaded into the repository's tests (1.5 s vs 0.43 s a run).
  Coverage still works: the test runner adds ``-p pytest_cov`` itself.
- **python: PATH**: an existing interpreter or venv. Its prefix is bound read-only (for a
  venv also the base interpreter's prefix named by ``pyvenv.cfg``'s ``home =``).
- **install: [...]**: a venv built once per :func:`build_key` under
  ``$PATCHSMITH_HOME/envs/<key>/`` (see :mod:`patchsmith.infra.envs_build`), reused by every
  attempt and every later campaign, rebuilt when the key changes.

The cache key is in :mod:`patchsmith.infra.envs_key`; existing interpreters are found by
:mod:`patchsmith.infra.envs_python`. :func:`check_start` checks, inside the sandbox, that a
test command can start at all (a host path that is not mounted there exits 127).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from patchsmith.domain import Environment, SandboxConfig
from patchsmith.infra.envs_build import ensure_built
from patchsmith.infra.envs_python import PYTHON_NAME, Interpreter, locate_python, own_interpreter
from patchsmith.infra.envs_types import EnvError, ResolvedEnv, merge_config
from patchsmith.infra.sandbox.limits import sandbox_path

__all__ = ["EnvError", "Environments", "Interpreter", "ResolvedEnv", "check_start", "locate_python"]


def python_config(base: SandboxConfig, interp: Interpreter) -> SandboxConfig:
    """The sandbox settings for tests run by an existing interpreter or venv."""
    extra = {"VIRTUAL_ENV": interp.venv} if interp.venv else {}
    return merge_config(base, ro_paths=interp.binds, path_prepend=[interp.bin_dir], env=extra)


def default_config(base: SandboxConfig) -> SandboxConfig:
    """patchsmith's own interpreter, without autoloading its pytest plugins."""
    return merge_config(base, env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})


class Environments:
    """Resolves environments for one process: builds ``install`` envs once, remembers them.

    ``root`` is ``$PATCHSMITH_HOME/envs``; ``sandbox`` and ``workspaces`` run the builds.
    Safe to call from threads; builds of one key are serialized across processes too.
    """

    def __init__(self, root: Path, sandbox: Any, workspaces: Any) -> None:
        self.root = Path(root)
        self.sandbox = sandbox
        self.workspaces = workspaces
        self._memo: dict[tuple[str, str, str], ResolvedEnv] = {}
        self._started: set[str] = set()  # preflights that passed, by start_key
        self._guard = threading.Lock()

    def resolve(
        self,
        env: Environment,
        base: SandboxConfig,
        *,
        repo: str,
        pristine: Path,
        label: str,
    ) -> ResolvedEnv:
        """The ResolvedEnv of ``env`` for the repository whose pristine tree is given.

        Raises EnvError (naming ``label``, the cause and the fix) when it cannot be had.
        """
        memo_key = (env.model_dump_json(), base.model_dump_json(), str(pristine))
        with self._guard:
            hit = self._memo.get(memo_key)
        if hit is not None:
            return hit
        resolved = self._resolve(env, base, repo=repo, pristine=Path(pristine), label=label)
        with self._guard:
            self._memo[memo_key] = resolved
        return resolved

    def preflight(
        self,
        workspace: Path,
        argv: Sequence[str],
        config: SandboxConfig,
        env: Mapping[str, str],
        *,
        label: str,
        pytest_module: bool = False,
    ) -> str | None:
        """:func:`check_start`, checked once per process for a command that does not depend
        on the repository: the same program name on the same PATH of absolute directories,
        under the same sandbox settings, found outside the workspace. Each check costs two
        sandbox starts (about 0.1 s), once per instance before; a campaign's instances
        usually share one interpreter."""
        key = start_key(argv[0], config, env, pytest_module)
        with self._guard:
            if key is not None and key in self._started:
                return None
        problem, where = check_start(
            self.sandbox, workspace, argv, config, env, label=label, pytest_module=pytest_module
        )
        inside = not os.path.isabs(where) or Path(where).resolve().is_relative_to(
            Path(workspace).resolve()
        )
        if problem is None and key is not None and not inside:
            with self._guard:
                self._started.add(key)
        return problem

    def _resolve(
        self, env: Environment, base: SandboxConfig, *, repo: str, pristine: Path, label: str
    ) -> ResolvedEnv:
        if env.is_default:
            return ResolvedEnv("default", default_config(base), own_interpreter().python)
        interp = self._interpreter(env, label)
        if not env.install:
            return ResolvedEnv("python", python_config(base, interp), interp.python)
        return ensure_built(self, env, base, interp, repo=repo, pristine=pristine, label=label)

    @staticmethod
    def _interpreter(env: Environment, label: str) -> Interpreter:
        if env.python is None:
            return own_interpreter()
        try:
            return locate_python(env.python)
        except FileNotFoundError as exc:
            raise EnvError(
                f"{label}: environment.python: {exc}; give an existing interpreter "
                f"(…/bin/python) or venv directory, or leave it out to use patchsmith's"
            ) from exc


# Resolves $1 on the sandbox's PATH: 127 when nothing is there, 126 when not executable.
PREFLIGHT = (
    'p=$(command -v -- "$1") || exit 127; printf "%s\\n" "$p"; '
    'case "$p" in */*) [ -x "$p" ] || exit 126;; esac'
)


def _fix(label: str, program: str) -> str:
    venv = ""
    path = Path(program)
    if path.is_absolute() and PYTHON_NAME.fullmatch(path.name) and path.parent.name == "bin":
        venv = f" (here: environment: {{python: {path.parent.parent}}})"
    return (
        f"{label}: fix: set environment.python to the interpreter or venv the tests need{venv}, "
        "which is then mounted read-only in the sandbox, or environment.install "
        '(e.g. ["-r", "requirements.txt"]) to build a venv from the repository\'s requirements'
    )


def start_key(
    program: str, config: SandboxConfig, env: Mapping[str, str], pytest_module: bool
) -> str | None:
    """What a preflight's verdict depends on, when not on the repository: None for a path
    (``./run.sh``, ``bin/test``) or a PATH with a relative entry (looked up in the
    workspace, which is the working directory)."""
    path = env.get("PATH") or config.env.get("PATH") or sandbox_path(config.path_prepend)
    if "/" in program or not all(os.path.isabs(d) for d in path.split(os.pathsep)):
        return None
    settings = config.model_dump(mode="json")
    return json.dumps([program, pytest_module, path, settings, dict(env)], sort_keys=True)


def check_start(
    sandbox: Any,
    workspace: Path,
    argv: Sequence[str],
    config: SandboxConfig,
    env: Mapping[str, str],
    *,
    label: str,
    pytest_module: bool = False,
) -> tuple[str | None, str]:
    """Can the test command start inside the sandbox? (None if so, else why not and the
    fix; where ``argv[0]`` was found.)

    Resolves ``argv[0]`` on the sandbox's PATH, inside the sandbox (a host path that is not
    mounted there gives 127); a Python interpreter is also started once (its base
    interpreter must be visible too) and, for ``python -m pytest``, must import pytest.
    """
    program = argv[0]
    found = sandbox.run(workspace, ["sh", "-c", PREFLIGHT, "sh", program], config, env)
    where = found.stdout_tail.strip()
    if found.exit_code != 0:
        if os.path.isabs(program):
            seen = "exists on the host but is not mounted" if os.path.exists(program) else "does"
            seen = "does not exist" if seen == "does" else seen
            why = f"{program} {seen} in the sandbox"
        else:
            why = f"{program!r} is not on the sandbox PATH"
        why = (
            f"{label}: the test command cannot start in the sandbox "
            f"(exit {found.exit_code}): {why}. " + _fix(label, program)
        )
        return why, where
    if not PYTHON_NAME.fullmatch(os.path.basename(where)):
        return None, where
    code = "import pytest" if pytest_module else "pass"
    ran = sandbox.run(workspace, [where, "-c", code], config, env)
    if ran.exit_code == 0:
        return None, where
    tail = (ran.stderr_tail or ran.stdout_tail).strip().splitlines()[-3:]
    if pytest_module and "No module named" in "\n".join(tail) and ran.exit_code == 1:
        return (
            f"{label}: {where} cannot import pytest in the sandbox: add pytest to "
            "environment.install (or the repository's requirements)"
        ), where
    return (
        f"{label}: the test command's interpreter {where} cannot run in the sandbox "
        f"(exit {ran.exit_code}: {' | '.join(tail)}). " + _fix(label, program)
    ), where
