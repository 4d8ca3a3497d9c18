"""`pluvo-sync init DIR`: a wheel is enough to start from. The files it writes are the
repository's own (deploy/, the example mapping), the config it writes runs, and nothing
that exists is overwritten unless `--force` says so.
(scripts/check_wheel.sh runs `init` from the built wheel, outside the checkout.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

from sync.commands.init import WRITTEN
from sync.resources import DEPLOY_FILES
from tests.support.cli import invoke_in

ROOT = Path(__file__).resolve().parents[2]
ENV: dict[str, str | None] = {"PLUVO_CLIENT_ID": "id", "PLUVO_CLIENT_SECRET": "not-used"}


def _origin(relative: str) -> Path:
    if relative == "mappings/example.yaml":
        return ROOT / "mappings" / "example.yaml"
    name = Path(relative).name
    return ROOT / "deploy" / ("config.example.yaml" if name == "config.yaml" else name)


def test_init_writes_the_repositorys_own_files_and_the_config_runs(tmp_path: Path) -> None:
    result = invoke_in(tmp_path, "init", "site")
    assert result.exit_code == 0, result.stderr
    site = tmp_path / "site"
    written = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    assert written == sorted(relative for relative, _ in WRITTEN)
    for relative in written:
        assert (site / relative).read_bytes() == _origin(relative).read_bytes(), relative
    assert "wrote 6 file(s) in site:" in result.stdout
    # The config as written: its mapping is the one written beside it, and it runs.
    upgraded = invoke_in(site, "-c", "config.yaml", "db", "upgrade", env=ENV)
    assert upgraded.exit_code == 0, upgraded.stderr
    assert (site / "pluvo-sync.db").is_file()
    status = invoke_in(site, "-c", "config.yaml", "status", env=ENV)
    assert status.exit_code == 0, status.stderr
    assert "Last runs:" in status.stdout


def test_init_refuses_existing_files_unless_forced(tmp_path: Path) -> None:
    assert invoke_in(tmp_path, "init", "site").exit_code == 0
    config = tmp_path / "site" / "config.yaml"
    config.write_text("pluvo: {url: https://mine.example/}\n", encoding="utf-8")
    refused = invoke_in(tmp_path, "init", "site")
    assert refused.exit_code == 2
    assert "already holds config.yaml, mappings/example.yaml" in refused.stderr
    assert "nothing was written" in refused.stderr
    assert "--force" in refused.stderr
    assert config.read_text(encoding="utf-8") == "pluvo: {url: https://mine.example/}\n"
    forced = invoke_in(tmp_path, "init", "site", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert "config.yaml (replaced)" in forced.stdout
    assert config.read_bytes() == _origin("config.yaml").read_bytes()


def test_init_makes_only_the_last_folder(tmp_path: Path) -> None:
    refused = invoke_in(tmp_path, "init", "missing/site")
    assert refused.exit_code == 2
    assert f"the folder {Path('missing')} does not exist" in refused.stderr
    assert not (tmp_path / "missing").exists()
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert invoke_in(tmp_path, "init", "file").exit_code == 2


def test_the_wheel_carries_every_deploy_file() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = set(setuptools["package-data"]["sync.deploy"])
    in_tree = {p.name for p in (ROOT / "deploy").iterdir() if p.is_file()}
    assert shipped == in_tree == set(DEPLOY_FILES)
    assert {source for _, source in WRITTEN if source} == set(DEPLOY_FILES)
