"""patchsmith's exceptions, converted once at the boundary (``raise X(...) from exc``).

PatchsmithError
├── ConfigError            bad campaign file / settings; message names file, field, fix
├── EditError              a candidate edit cannot be parsed or applied (an expected outcome)
│   ├── MalformedEdit      the text is not a well-formed edit
│   └── ApplyError         well-formed, but does not apply to the workspace
├── InfraError             infrastructure fault: Prefect retries these, never test failures
│   ├── SandboxStartError  the sandbox could not start a command
│   ├── WorkspaceError     a workspace could not be created
│   └── ModelUnavailable   a model server is unreachable / overloaded
├── StoreError             the provenance store refused (bad URL, newer schema, corrupt)
├── Interrupted            a clean stop was asked for (Ctrl-C, SIGTERM): the work in progress
│                          is dropped, not recorded, so a re-run resumes it
└── MissingExtra           an optional dependency is not installed; says what to install
"""

from __future__ import annotations


class PatchsmithError(Exception):
    """Base of every error patchsmith raises on purpose."""


class ConfigError(PatchsmithError):
    """Invalid input; the message says which file, which field, and how to fix it."""


class EditError(PatchsmithError):
    """An edit could not be used. Recorded on the attempt, not raised out of the loop."""


class MalformedEdit(EditError):
    """The edit text is not well-formed (cannot be parsed)."""


class ApplyError(EditError):
    """The edit is well-formed but does not match the files it targets."""


class InfraError(PatchsmithError):
    """A transient infrastructure fault; the only kind Prefect retries."""


class SandboxStartError(InfraError):
    """The sandbox itself failed (not the command inside it)."""


class WorkspaceError(InfraError):
    """A throwaway workspace could not be prepared."""


class ModelUnavailable(InfraError):
    """A model backend could not be reached or answered 429/5xx."""


class StoreError(PatchsmithError):
    """The provenance store cannot be used as configured."""


class Interrupted(PatchsmithError):
    """A stop was requested; raised by the repair loop instead of starting or judging work.

    A candidate whose sandbox run the stop killed is not an attempt (it was never really
    tested), and an instance stopped mid-way gets no outcome: the next run resumes it after
    its recorded attempts.
    """


class MissingExtra(PatchsmithError):
    """An optional dependency is missing; the message gives the install command."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} needs the '{extra}' extra: pip install 'patchsmith[{extra}]'")
        self.extra = extra
