"""What the installed tool needs ships inside it, and the demo destroys nothing it did
not make. (scripts/check_wheel.sh installs the built wheel outside the checkout.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from sync.commands.demo import MARKER, prepare
from sync.errors import ConfigError
from sync.resources import FOLDERS, example_mapping, migrations, sample_export

ROOT = Path(__file__).resolve().parents[2]


def test_every_subpackage_and_bundled_folder_is_packaged() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "sync").rglob("__init__.py")
    }
    mapped = setuptools["package-dir"]
    assert mapped == FOLDERS
    assert set(setuptools["packages"]) == found | set(mapped) | {"sync.migrations.versions"}


def test_bundled_files_are_found() -> None:
    assert (migrations() / "env.py").is_file()
    assert sorted(p.name for p in (migrations() / "versions").glob("0*.py"))
    assert sample_export().read_text(encoding="utf-8").startswith("Personeelsnummer;")
    assert "columns" in example_mapping().read_text(encoding="utf-8")


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("pluvo: {}\n")
    (tmp_path / "mappings").mkdir()
    with pytest.raises(ConfigError, match="not made by `pluvo-sync demo`"):
        prepare(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "mappings"]


def test_demo_cleans_only_what_it_wrote_in_its_own_folder(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    prepare(folder)
    assert (folder / MARKER).is_file()
    (folder / "hr").mkdir()
    (folder / "hr" / "hr.csv").write_text("x")
    (folder / "config.yaml").write_text("x")
    (folder / "notes.txt").write_text("mine")
    prepare(folder)
    assert sorted(p.name for p in folder.iterdir()) == [MARKER, "notes.txt"]


def test_demo_uses_an_empty_folder_and_refuses_a_file(tmp_path: Path) -> None:
    prepare(tmp_path)
    assert (tmp_path / MARKER).is_file()
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        prepare(target)
