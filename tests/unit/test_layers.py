"""The package layout is a contract: each layer imports only the layers below it, and
the sync stages only the stages before them (`.importlinter` lists both)."""

from __future__ import annotations

import configparser
import logging
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_no_module_imports_a_layer_above_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    # import-linter configures logging with dictConfig, which disables every logger
    # that exists already: later tests (in whatever order they run) would see no
    # records from the engine's loggers.
    loggers = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.disabled
    ]
    try:
        assert lint_imports(config_filename=str(ROOT / ".importlinter"), no_cache=True) == 0
    finally:
        for logger in loggers:
            logger.disabled = False


def test_the_stages_contract_places_every_core_module() -> None:
    """A module left out of the stages contract may import any stage, unchecked."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter", encoding="utf-8")
    layers = config["importlinter:contract:stages"]["layers"]
    listed = {name.strip() for line in layers.splitlines() for name in line.split("|")}
    core = ROOT / "sync" / "core"
    modules = {
        f"sync.core.{path.stem}"
        for path in core.iterdir()
        if path.name != "__init__.py" and (path.suffix == ".py" or (path / "__init__.py").exists())
    }
    assert sorted(modules - listed) == []


def test_the_readme_diagram_names_modules_that_exist() -> None:
    """Top-level lines name a folder or module under the root; indented lines name
    modules (`x.py`) or packages (`x/`) inside the folder above them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## How it works", 1)[1].split("```", 2)[1]
    named: list[Path] = []
    folder = ROOT
    for line in section.splitlines():
        if line.startswith("sync/"):
            top = line.split()[0]
            named.append(ROOT / top)
            folder = ROOT / top
        elif line.startswith("  ") and not line.startswith("   "):
            head = line.split("  ")[1]
            named += [
                folder / n.strip() for n in head.split(",") if n.strip().endswith((".py", "/"))
            ]
    assert len(named) > 15
    assert [str(p.relative_to(ROOT)) for p in named if not p.exists()] == []
