"""load_desired end to end over real CSV files, and the multi-source merge rules."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.config import parse_config
from sync.core.load import load, load_desired
from sync.core.mapping.merge import merge
from sync.errors import ConfigError, SourceError
from sync.model import is_warning
from tests.unit.mapping_helpers import TODAY, frame, person, spec

ROOT = Path(__file__).resolve().parents[2]
MAPPING = {
    "users": {"ref": "id", "email": "mail", "name": {"template": "{first} {last}"}},
    "extra": [{"category": "department", "type": "string", "column": "dept"}],
    "groups": {"rules": [{"id": "dept", "ref": "dept-{dept|slug}", "name": "{dept}"}]},
    "managers": [{"group": "dept", "column": "boss"}],
}
HEADER = "id;mail;first;last;dept;boss\n"


def _config(tmp_path: Path, sources: list[dict[str, Any]]) -> Any:
    data = {
        "pluvo": {"url": "https://acme.pluvo.com", "client_id": "id", "client_secret": "s3cret"},
        "sources": sources,
    }
    return parse_config(data, base_dir=tmp_path)


def _write(
    tmp_path: Path, name: str, body: str, mapping: dict[str, Any] = MAPPING
) -> dict[str, Any]:
    (tmp_path / f"{name}.csv").write_text(HEADER + body, encoding="utf-8")
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(mapping), encoding="utf-8")
    return {"name": name, "type": "csv", "path": f"{name}.csv", "mapping": f"{name}.yaml"}


def test_sample_config_end_to_end(tmp_path: Path) -> None:
    shutil.copy(ROOT / "samples" / "hr.csv", tmp_path / "hr.csv")
    shutil.copy(ROOT / "mappings" / "example.yaml", tmp_path / "example.yaml")
    config = _config(
        tmp_path, [{"name": "hr", "type": "csv", "path": "hr.csv", "mapping": "example.yaml"}]
    )
    loaded = load(config, today=TODAY)
    desired = loaded.desired
    assert desired.source_rows == {"hr": 42}
    assert desired.source_files["hr"][0].endswith("hr.csv")
    assert loaded.stats["hr"].filtered == 1
    assert len(desired.users) == 36
    bad = desired.rejections[~is_warning(desired.rejections)]
    assert set(zip(bad["line"], bad["column"], strict=True)) == {
        (21, "Personeelsnummer"),
        (42, "Personeelsnummer"),
        (27, "E-mailadres"),
    }
    assert set(desired.rejections["file"]) == {str(tmp_path / "hr.csv")} or all(
        f.endswith("hr.csv") for f in desired.rejections["file"]
    )


def test_invalid_mapping_is_config_error_before_reading(tmp_path: Path) -> None:
    source = _write(tmp_path, "hr", "1;a@x.nl;A;B;HR;\n", {"users": {"ref": "id"}})
    (tmp_path / "hr.csv").unlink()  # would be a SourceError if it were read first
    with pytest.raises(ConfigError) as info:
        load_desired(_config(tmp_path, [source]), today=TODAY)
    assert "hr.yaml" in str(info.value)
    assert "users.email: Field required" in str(info.value)


def test_missing_columns_fail_the_run_with_suggestion(tmp_path: Path) -> None:
    source = _write(tmp_path, "hr", "")
    (tmp_path / "hr.csv").write_text(
        "id;email;first;last;dept;boss\n1;a@x.nl;A;B;HR;\n", encoding="utf-8"
    )
    with pytest.raises(SourceError, match=r"lacks column\(s\) 'mail' \(did you mean 'email'\?\)"):
        load_desired(_config(tmp_path, [source]), today=TODAY)


def test_header_only_file_gives_empty_desired(tmp_path: Path) -> None:
    desired = load_desired(_config(tmp_path, [_write(tmp_path, "hr", "")]), today=TODAY)
    assert desired.users.empty
    assert desired.source_rows == {"hr": 0}


def test_two_sources_earlier_wins_and_conflicts_are_reported(tmp_path: Path) -> None:
    first = _write(tmp_path, "afas", "1;jan@x.nl;Jan;Jansen;HR;\n2;piet@x.nl;Piet;Smit;HR;1\n")
    second = _write(
        tmp_path,
        "extra",
        "2;piet.smit@x.nl;Piet;Smit;ICT;\n3;kees@x.nl;Kees;Bos;ICT;2\n",
    )
    desired = load_desired(_config(tmp_path, [first, second]), today=TODAY)
    assert sorted(desired.users.index) == ["1", "2", "3"]
    assert desired.users.loc["2", "email"] == "piet@x.nl"
    assert desired.users.loc["2", "_source"] == "afas"
    assert desired.conflicts.to_dict("records") == [
        {
            "ref": "2",
            "field": "email",
            "kept_source": "afas",
            "kept_value": "piet@x.nl",
            "other_source": "extra",
            "other_value": "piet.smit@x.nl",
        }
    ]
    # The winning row decides memberships and values: user 2 stays in HR only.
    pairs = set(desired.memberships.itertuples(index=False, name=None))
    assert pairs == {("dept-hr", "1"), ("dept-hr", "2"), ("dept-ict", "3")}
    values = desired.extra_values.set_index("user_ref")["value"].to_dict()
    assert values == {"1": "HR", "2": "HR", "3": "ICT"}
    # A manager may come from another source.
    managers = set(desired.managers.itertuples(index=False, name=None))
    assert managers == {("dept-hr", "1"), ("dept-ict", "2")}


def test_same_email_on_different_refs_across_sources_rejects_both() -> None:
    mapping = spec()
    a = frame([person("1") | {"mail": "same@x.nl"}, person("2")], file="a.csv")
    b = frame([person("9") | {"mail": "SAME@x.nl"}], file="b.csv")
    from sync.core.mapping.mapper import map_source

    desired = merge(
        [map_source("a", a, mapping, today=TODAY), map_source("b", b, mapping, today=TODAY)]
    )
    assert list(desired.users.index) == ["2"]
    assert sorted(desired.rejections["ref"]) == ["1", "9"]
    assert all("duplicate email 'same@x.nl'" in r for r in desired.rejections["reason"])
