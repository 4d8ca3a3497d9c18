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
    assert "bogus: Extra inputs are not permitted" in text
    assert "topsecret" not in text


def test_missing_file_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_sqlite_state_url_follows_config_dir(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, base_dir=tmp_path, env={"SECRET": "x"})
    assert config.state_url() == f"sqlite:///{tmp_path.resolve()}/pluvo-sync.db"


def test_example_config_is_valid() -> None:
    """config.example.yaml documents every key; it must stay loadable."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((root / "config.example.yaml").read_text(encoding="utf-8"))
    config = parse_config(
        data, base_dir=root, env={"PLUVO_CLIENT_ID": "id", "PLUVO_CLIENT_SECRET": "secret"}
    )
    assert config.sources[0].mapping == root / "mappings/example.yaml"
