from __future__ import annotations

from pathlib import Path

import pytest

from sync.config import interpolate, load_config, parse_config
from sync.errors import ConfigError, ExitCode

MINIMAL = {
    "pluvo": {"url": "https://acme.pluvo.com", "client_id": "id", "client_secret": "${SECRET}"},
    "sources": [{"name": "hr", "type": "csv", "path": "hr/*.csv", "mapping": "mappings/hr.yaml"}],
}


def test_interpolation_defaults_and_escape() -> None:
    env = {"A": "1"}
    assert interpolate({"x": "${A}-${B:-two}-$$3"}, env) == {"x": "1-two-$3"}


def test_missing_env_names_path_and_variable() -> None:
    with pytest.raises(ConfigError) as info:
        interpolate({"pluvo": {"client_secret": "${NOPE}"}}, {})
    assert "pluvo.client_secret: environment variable NOPE is not set" in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE


def test_valid_config_resolves_paths_and_keeps_secret(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, base_dir=tmp_path, env={"SECRET": "s3cr3t-value"})
    assert config.pluvo.graphql_url == "https://acme.pluvo.com/graphql/"
    assert config.pluvo.token_url == "https://acme.pluvo.com/oauth/token/"
    assert config.sources[0].mapping == tmp_path / "mappings/hr.yaml"
    assert "s3cr3t-value" not in repr(config)
    assert config.pluvo.client_secret.get_secret_value() == "s3cr3t-value"


def test_every_error_reported_with_path(tmp_path: Path) -> None:
    data = {
        "pluvo": {"url": "ftp://x", "client_secret": "${SECRET}"},
        "sources": [
            {"name": "hr", "type": "csv", "path": "a.csv", "mapping": "m.yaml"},
            {"name": "ftp", "type": "sftp", "path": "/in/*.csv", "mapping": "m.yaml"},
        ],
        "bogus": 1,
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=tmp_path, env={"SECRET": "topsecret"})
    text = str(info.value)
    assert "pluvo.url: must start with http:// or https://" in text
    assert "pluvo.client_id: Field required" in text
    assert "sources[1].host: Field required" in text
    assert "<config>: bogus: unknown key" in text
    assert "topsecret" not in text


def test_missing_file_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_sqlite_state_url_follows_config_dir(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, base_dir=tmp_path, env={"SECRET": "x"})
    assert config.state_url() == f"sqlite:///{tmp_path.resolve()}/pluvo-sync.db"


def test_example_config_is_valid() -> None:
    """deploy/config.example.yaml documents every key; it must stay loadable."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((root / "deploy" / "config.example.yaml").read_text(encoding="utf-8"))
    config = parse_config(
        data, base_dir=root, env={"PLUVO_CLIENT_ID": "id", "PLUVO_CLIENT_SECRET": "secret"}
    )
    assert config.sources[0].mapping == root / "mappings/example.yaml"


BASE = {
    "pluvo": {"url": "https://acme.pluvo.com/", "client_id": "c", "client_secret": "s"},
    "sources": [{"name": "hr", "type": "csv", "path": "a.csv", "mapping": "m.yaml"}],
}


def test_a_missing_env_var_names_the_file_and_the_variable(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(
        "pluvo:\n  url: https://acme.pluvo.com/\n  client_id: c\n"
        "  client_secret: ${NOT_SET_ANYWHERE}\nsources: []\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert str(info.value) == (
        f"{file}: pluvo.client_secret: environment variable NOT_SET_ANYWHERE is not set"
    )
    assert info.value.exit_code is ExitCode.USAGE


@pytest.mark.parametrize(
    ("section", "key", "suggested"),
    [
        (None, "safty", "safety"),
        ("pluvo", "batch_sise", "batch_size"),
        ("leavers", "grace_run", "grace_runs"),
    ],
)
def test_an_unknown_key_suggests_the_nearest_valid_one(
    tmp_path: Path, section: str | None, key: str, suggested: str
) -> None:
    data: dict[str, object] = {**BASE, "pluvo": dict(BASE["pluvo"])}  # type: ignore[arg-type]
    if section is None:
        data[key] = {}
    else:
        data.setdefault(section, {})
        data[section] = {**data[section], key: 1}  # type: ignore[dict-item]
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=tmp_path, source="c.yaml")
    where = f"{section}.{key}" if section else key
    assert f"c.yaml: {where}: unknown key (did you mean '{suggested}'?)" in str(info.value)


def test_a_path_for_a_state_url_is_a_config_error_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**BASE, "state": {"url": "state.db"}}, base_dir=tmp_path, source="c.yaml")
    assert str(info.value) == (
        "c.yaml: state.url: not a database URL (a SQLite file is written sqlite:///state.db)"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("sqlite://state.db", "a SQLite store is a file: sqlite:///state.db (relative"),
        ("sqlite:///", "a SQLite store is a file: sqlite:///FILE"),
        ("sqlitex:///state.db", "unknown database kind 'sqlitex'"),
        ("postgresql+nodriver://u:hidden@h/db", "unknown database kind 'postgresql+nodriver'"),
    ],
)
def test_an_unusable_state_url_is_a_configuration_error(
    tmp_path: Path, url: str, reason: str
) -> None:
    # Found with the config (exit 2, the file and key named), not when the store is
    # opened (exit 1, "cannot open state store").
    with pytest.raises(ConfigError) as info:
        parse_config({**BASE, "state": {"url": url}}, base_dir=tmp_path, source="c.yaml")
    assert str(info.value).startswith(f"c.yaml: state.url: {reason}"), str(info.value)
    assert info.value.exit_code == 2
    assert "hidden" not in str(info.value)


def test_reports_default_to_beside_the_config(tmp_path: Path) -> None:
    config = parse_config(BASE, base_dir=tmp_path / "etc")
    assert config.report.dir == tmp_path / "etc" / "reports"
