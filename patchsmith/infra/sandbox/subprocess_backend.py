"""Plain subprocess backend: rlimits and a process group, and NO isolation.

Used where bubblewrap is missing. It warns once per process, loudly, because code under
test can read the host's files and reach the network.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from patchsmith.domain import ExecResult, SandboxConfig
from patchsmith.errors import SandboxStartError
from patchsmith.infra.sandbox.limits import base_env, prlimit_prefix, tail

_warned = False


class SubprocessSandbox:
    """Runs commands as host subprocesses with rlimits; does not isolate."""

    name = "subprocess"

    def run(
        self,
        workspace: Path,
        argv: Sequence[str],
        config: SandboxConfig,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        global _warned
        if not _warned:
            warnings.warn(
                "sandbox backend 'subprocess' does NOT isolate: tested code can read host files "
                "and use the network. Install bubblewrap (apt-get install bubblewrap).",
                RuntimeWarning,
                stacklevel=2,
            )
            _warned = True
        full = [*prlimit_prefix(config), *argv]
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                full,
                cwd=workspace,
                env={**base_env(), **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxStartError(f"cannot start {argv[0]!r}: {exc}") from exc
        timed_out = False
        try:
            out, err = proc.communicate(timeout=config.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        limit = config.output_kb * 1024
        return ExecResult(
            argv=list(argv),
            exit_code=None if timed_out else proc.returncode,
            timed_out=timed_out,
            limit_hit="timeout" if timed_out else None,
            duration_s=time.monotonic() - start,
            stdout_tail=tail(out, limit),
            stderr_tail=tail(err, limit),
            backend=self.name,
        )
