"""Saved plans (sync/core/saved.py): the fingerprint's parts, its refusal wording, the
plan file's checks, and which runs count as having changed the store."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sync.config import Config, parse_config
from sync.core.executor import journal_plan
from sync.core.plan import ArchiveUser, CreateGroup, Plan
from sync.core.saved import (
    Fingerprint,
    config_digests,
    mapping_digests,
    read_saved,
    refuse_if_stale,
    sections,
    source_digests,
    store_print,
)
from sync.core.sources import SourceData
from sync.errors import ConfigError, ExitCode, StalePlanError
from sync.state.journal import RunStatus
from sync.state.store import StateStore, upgrade

SECRET = "s3cr3t-client-value"
DB_PASSWORD = "db-pass-93ab"


def _config(tmp_path: Path, **changes: Any) -> Config:
    (tmp_path / "hr.yaml").write_text("columns: {}\n", encoding="utf-8")
    data: dict[str, Any] = {
        "pluvo": {"url": "https://acme.pluvo.com/", "client_id": "id", "client_secret": SECRET},
        "sources": [
            {"name": "hr", "type": "csv", "path": "hr/*.csv", "mapping": "hr.yaml"},
            {
                "name": "db",
                "type": "database",
                "url": f"postgresql://reader:{DB_PASSWORD}@db.example.com/hr",
                "table": "people",
                "mapping": "hr.yaml",
            },
        ],
        "state": {"url": f"postgresql://sync:{DB_PASSWORD}@db.example.com/sync"},
    }
    for section, value in changes.items():
        data[section] = value
    return parse_config(data, base_dir=tmp_path)


def _fingerprint(**changes: Any) -> Fingerprint:
    parts: dict[str, Any] = {
        "sources": {"hr": {"/etc/sync/hr/hr.csv": "sha256:a"}},
        "config": {"pluvo": "sha256:p", "leavers": "sha256:l"},
        "mappings": {"hr": {"file": "mappings/hr.yaml", "sha256": "sha256:m"}},
        "store": {"run": "20240603T020000-abcdef", "finished_at": "2024-06-03 02:01:00"},
        "base_dir": "/etc/sync",
    }
    parts.update(changes)
    return Fingerprint(**parts)


# ---------------------------------------------------------------- what changed, in words


def test_an_unchanged_fingerprint_has_no_changes() -> None:
    assert _fingerprint().changes_since(_fingerprint(base_dir="")) == []


@pytest.mark.parametrize(
    ("now", "wording"),
    [
        (
            {"sources": {"hr": {"/etc/sync/hr/hr.csv": "sha256:b"}}},
            "source hr: hr/hr.csv changed",
        ),
        (
            {"sources": {"hr": {"/etc/sync/hr/hr-2.csv": "sha256:a"}}},
            "source hr: reads hr/hr-2.csv now, the plan read hr/hr.csv",
        ),
        ({"sources": {}}, "source hr: no longer in the config"),
        (
            {"config": {"pluvo": "sha256:p", "leavers": "sha256:L", "safety": "sha256:s"}},
            "config: leavers, safety changed",
        ),
        (
            {"mappings": {"hr": {"file": "mappings/hr.yaml", "sha256": "sha256:M"}}},
            "mapping mappings/hr.yaml changed",
        ),
        (
            {"store": {"run": "20240604T020000-123456", "finished_at": "2024-06-04 02:01:00"}},
            "the state store was changed by run 20240604T020000-123456",
        ),
        (
            {"store": {"run": "20240603T020000-abcdef", "finished_at": "2024-06-04 02:01:00"}},
            "the state store was changed by run 20240603T020000-abcdef",
        ),
    ],
)
def test_each_part_says_what_changed(now: dict[str, Any], wording: str) -> None:
    assert _fingerprint(**now).changes_since(_fingerprint()) == [wording]


def test_every_change_is_named_in_one_refusal(tmp_path: Path) -> None:
    saved = _saved_file(tmp_path, _fingerprint())
    now = _fingerprint(
        sources={"hr": {"/etc/sync/hr/hr.csv": "sha256:b"}},
        store={"run": "r2", "finished_at": None},
    )
    with pytest.raises(StalePlanError) as caught:
        refuse_if_stale(read_saved(saved), now)
    message = str(caught.value)
    assert "source hr: hr/hr.csv changed; the state store was changed by run r2" in message
    assert "since the plan was made" in message
    assert caught.value.exit_code == ExitCode.GUARD
    refuse_if_stale(read_saved(saved), _fingerprint())  # unchanged: no refusal


# ---------------------------------------------------------------- the parts


def test_source_digests_per_file_follow_the_rows() -> None:
    def frame(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=["ref", "_file", "_line"])

    files = ["a.csv", "b.csv"]
    before = source_digests(
        SourceData("hr", frame([("1", "a.csv", 2), ("2", "b.csv", 2)]), files, ["ref"])
    )
    after = source_digests(
        SourceData("hr", frame([("1", "a.csv", 2), ("3", "b.csv", 2)]), files, ["ref"])
    )
    assert list(before) == files
    assert before["a.csv"] == after["a.csv"]
    assert before["b.csv"] != after["b.csv"]
    moved = source_digests(
        SourceData("hr", frame([("1", "a.csv", 3), ("2", "b.csv", 2)]), files, ["ref"])
    )
    assert moved["a.csv"] != before["a.csv"], "line numbers are part of what was read"


def test_a_database_source_is_digested_by_its_rows() -> None:
    rows = pd.DataFrame({"ref": ["1", "2"], "_file": ["db:people"] * 2, "_line": [1, 2]})
    one = source_digests(SourceData("db", rows, ["db:people"], ["ref"]))
    same = source_digests(SourceData("db", rows.copy(), ["db:people"], ["ref"]))
    other = source_digests(SourceData("db", rows.iloc[:1], ["db:people"], ["ref"]))
    assert one == same
    assert one != other
    empty = source_digests(SourceData("db", rows.iloc[:0], ["db:people"], ["ref"]))
    assert set(empty) == {"db:people"}


def test_config_digests_leave_secrets_out(tmp_path: Path) -> None:
    config = _config(tmp_path)
    digests = config_digests(config)
    assert "logging" not in digests
    assert "report" not in digests
    assert {"pluvo", "sources", "state", "leavers", "safety", "adoption"} <= set(digests)
    text = json.dumps(digests)
    assert SECRET not in text
    assert DB_PASSWORD not in text

    # A new secret or password plans nothing differently; another section does.
    rotated = _config(
        tmp_path,
        pluvo={"url": "https://acme.pluvo.com/", "client_id": "id", "client_secret": "new"},
        state={"url": "postgresql://sync:other@db.example.com/sync"},
    )
    assert config_digests(rotated) == digests
    quieter = _config(tmp_path, logging={"level": "WARNING"}, report={"keep_days": 7})
    assert config_digests(quieter) == digests
    stricter = _config(tmp_path, leavers={"grace_runs": 4})
    assert {k for k in digests if config_digests(stricter)[k] != digests[k]} == {"leavers"}
    elsewhere = _config(tmp_path, state={"url": f"postgresql://sync:{DB_PASSWORD}@db2/sync"})
    assert config_digests(elsewhere)["state"] != digests["state"]


def test_mapping_digests_follow_the_bytes(tmp_path: Path) -> None:
    config = _config(tmp_path)
    before = mapping_digests(config)
    assert before["hr"]["file"] == "hr.yaml"
    (tmp_path / "hr.yaml").write_text("columns: {}\n# reviewed\n", encoding="utf-8")
    assert mapping_digests(config)["hr"]["sha256"] != before["hr"]["sha256"]


# ---------------------------------------------------------------- the plan file


def _plan() -> Plan:
    return Plan(
        operations=(CreateGroup(ref="dept-hr", name="HR"), ArchiveUser(ref="10007")),
        state_users=10,
        desired_users=9,
        verified_new=frozenset({"10001"}),
    )


def _saved_file(tmp_path: Path, fingerprint: Fingerprint, plan: Plan | None = None) -> Path:
    plan = plan or _plan()
    report = {"run_id": "x", "mode": "plan", "plan": plan.to_json(), **sections(plan, fingerprint)}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return path


def test_a_saved_plan_reads_back_as_saved(tmp_path: Path) -> None:
    saved = read_saved(_saved_file(tmp_path, _fingerprint()))
    assert saved.plan == _plan()
    assert saved.fingerprint == _fingerprint()
    assert saved.plan_hash == sections(_plan(), _fingerprint())["plan_hash"]


def test_the_hash_covers_operations_and_fingerprint() -> None:
    hashed = sections(_plan(), _fingerprint())["plan_hash"]
    fewer = Plan(operations=_plan().operations[:1], state_users=10, desired_users=9)
    assert sections(fewer, _fingerprint())["plan_hash"] != hashed
    assert sections(_plan(), _fingerprint(store=None))["plan_hash"] != hashed


@pytest.mark.parametrize("part", ["operation", "fingerprint"])
def test_an_edited_file_is_refused(tmp_path: Path, part: str) -> None:
    path = _saved_file(tmp_path, _fingerprint())
    data = json.loads(path.read_text(encoding="utf-8"))
    if part == "operation":
        data["plan"]["operations"].pop()
    else:
        data["fingerprint"]["store"] = None
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(StalePlanError, match="was edited after it was made"):
        read_saved(path)


@pytest.mark.parametrize(
    ("content", "wording"),
    [
        ("not json", "not JSON"),
        ('{"run_id": "x", "plan": {"operations": []}}', "is not a saved plan"),
        ('{"plan": {"operations": [{"kind": "nope"}]}, "fingerprint": {}}', "not a readable"),
        ('{"plan": {"operations": []}, "fingerprint": {"version": 99}}', "not a readable"),
    ],
)
def test_a_file_that_is_no_saved_plan_is_a_usage_error(
    tmp_path: Path, content: str, wording: str
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=wording):
        read_saved(path)


# ---------------------------------------------------------------- the store's last applied run


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    made = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    upgrade(made.engine)
    yield made
    made.close()


def _finish(store: StateStore, run_id: str, status: str, *, operations: bool = False) -> None:
    store.start_run(run_id, "unlock" if run_id.startswith("unlock") else "run")
    if operations:
        with store.session() as session, session.begin():
            journal_plan(session, run_id, _plan())
    store.finish_run(run_id, status=status, exit_code=0, summary={}, source_rows={})
    time.sleep(0.01)  # distinct start times


def test_last_applied_run_counts_what_may_have_changed_the_store(store: StateStore) -> None:
    assert store.last_applied_run() is None
    _finish(store, "r1", RunStatus.SUCCEEDED)
    assert store.last_applied_run() is not None
    first = store.last_applied_run()
    assert first is not None
    assert first[0] == "r1"
    _finish(store, "r2", RunStatus.GUARDED)
    _finish(store, "r3", RunStatus.FAILED)  # failed before sending anything
    _finish(store, "unlock-1", RunStatus.SUCCEEDED)
    assert store.last_applied_run() == first
    _finish(store, "r4", RunStatus.FAILED, operations=True)
    last = store.last_applied_run()
    assert last is not None
    assert last[0] == "r4"
    assert store_print(last) == {"run": "r4", "finished_at": str(last[1])}
    store.start_run("r5", "run")  # the run checking a saved plan: not itself a change
    with store.session() as session, session.begin():
        journal_plan(session, "r5", _plan())
    assert store.last_applied_run(exclude="r5") == last


def test_exit_codes_of_the_contract() -> None:
    assert int(ExitCode.CHANGES_PENDING) == 6
    assert int(ExitCode.HELD) == 7
