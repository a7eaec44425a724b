"""Plain subprocess backend: rlimits and a process group, and NO isolation.

Used where bubblewrap is missing. It warns once per process, loudly, because code under
test can read the host's files and reach the network. What it does promise: a wall-clock
limit (the whole process group is killed), rlimits on memory / processes / CPU time,
the exit code, and bounded output tails. Where cgroups work (root) the command also gets
its own pids/memory cgroup, and whatever is left in it (a ``setsid`` grandchild included)
is killed when the command ends; without cgroups such a grandchild can survive.
"""

from __future__ import annotations

import subprocess
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from patchsmith.domain import ExecResult, SandboxConfig
from patchsmith.errors import SandboxStartError
from patchsmith.infra.sandbox import running
from patchsmith.infra.sandbox.cgroups import open_cgroup
from patchsmith.infra.sandbox.limits import (
    base_env,
    capture,
    checked_inputs,
    exec_result,
    prlimit_prefix,
)

_warned = False


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            "sandbox backend 'subprocess' does NOT isolate: tested code can read host files "
            "and use the network. Install bubblewrap (apt-get install bubblewrap).",
            RuntimeWarning,
            stacklevel=3,
        )


class SubprocessSandbox:
    """Runs commands as host subprocesses with rlimits; does not isolate."""

    name = "subprocess"

    def run(
        self,
        workspace: Path,
        argv: Sequence[str],
        config: SandboxConfig,
        env: Mapping[str, str] | None = None,
        *,
        pass_fds: Sequence[int] = (),
    ) -> ExecResult:
        """Run ``argv`` in ``workspace`` in its own process group, under rlimits."""
        _warn_once()
        workspace = checked_inputs(workspace, argv, config)
        try:
            group = open_cgroup(config.max_procs, config.memory_mb)
        except OSError as exc:
            raise SandboxStartError(f"cannot create the command's cgroup: {exc}") from exc
        try:
            prefix = [] if group is None else group.prefix()
            start = time.monotonic()
            try:
                proc = subprocess.Popen(
                    [*prefix, *prlimit_prefix(config, nproc=group is None), *argv],
                    cwd=workspace,
                    env={**base_env(config.path_prepend), **config.env, **(env or {})},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    pass_fds=tuple(pass_fds),
                )
            except OSError as exc:
                raise SandboxStartError(f"cannot start prlimit for {argv[0]!r}: {exc}") from exc
            with running.tracked(proc.pid):
                got = capture(
                    proc, config.timeout_s, config.output_kb * 1024, lambda: running.kill(proc.pid)
                )
            code = None if got.timed_out else proc.returncode
            if group is not None and group.join_failed(code, got.stderr):
                raise SandboxStartError(got.stderr.decode(errors="replace").strip())
            hit = group.limit_hit() if group is not None else None
        finally:
            if group is not None:
                group.close()
        return exec_result(self.name, argv, got, code, start, kernel_hit=hit)
