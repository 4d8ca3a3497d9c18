"""The offline config of `status` and `history`: no Pluvo secrets needed, the rest as
strict as ever."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.config import load_config, load_local_config
from sync.errors import ConfigError, ExitCode

CONFIG = """\
pluvo:
  url: ${PLUVO_URL_NOT_SET}
  client_id: ${PLUVO_ID_NOT_SET}
  client_secret: ${PLUVO_SECRET_NOT_SET}
sources:
  - name: hr
    type: sftp
    host: sftp.example.com
    username: u
    password: ${SFTP_PASSWORD_NOT_SET}
    known_hosts: kh
    path: /x/*.csv
    mapping: m.yaml
state:
  url: sqlite:///state/pluvo.db
report:
  dir: out
  keep_days: 30
logging:
  format: json
"""


def test_no_pluvo_or_source_secret_is_needed(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(CONFIG, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(file)  # everything else stays strict
    config = load_local_config(file)
    assert config.state_url() == f"sqlite:///{tmp_path.resolve()}/state/pluvo.db"
    assert config.report.dir == tmp_path.resolve() / "out"
    assert config.report.keep_days == 30
    assert config.logging.format == "json"


def test_the_sections_it_reads_are_still_interpolated_and_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "config.yaml"
    file.write_text("state:\n  url: ${STATE_URL_FOR_TEST}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"state\.url: environment variable STATE_URL_FOR_TEST"):
        load_local_config(file)
    monkeypatch.setenv("STATE_URL_FOR_TEST", "sqlite:////tmp/x.db")
    assert load_local_config(file).state_url() == "sqlite:////tmp/x.db"

    file.write_text("report:\n  keep_days: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"report.keep_days: Input should be greater"):
        load_local_config(file)


def test_an_unknown_top_level_key_is_still_a_mistake(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text("stat:\n  url: sqlite:///x.db\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_local_config(file)
    assert str(info.value) == f"{file}: stat: unknown key (did you mean 'state'?)"
    assert info.value.exit_code is ExitCode.USAGE


def test_keep_days_defaults_to_ninety_and_may_be_empty(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text("{}\n", encoding="utf-8")
    assert load_local_config(file).report.keep_days == 90
    file.write_text("report:\n  keep_days:\n", encoding="utf-8")
    assert load_local_config(file).report.keep_days is None
