"""Pluvo's extra categories checked before anything is planned, and values Pluvo still
refuses at run time costing only themselves.

Everything goes through the library core (`run(config, dry=...)`, `reconcile(...)`)
with an in-memory Pluvo (tests/support/fake_pluvo.py) over the sandbox's store, whose
categories each test seeds: a mapping that names a category Pluvo lacks, or gives it
another type, stops `plan` and `run` with a configuration error before anything is
sent; a value naming a choice option Pluvo lacks rejects its row (or, with
`unknown: drop`, only that option) while the other rows sync; and a user whose values
Pluvo refuses as a whole gets them one by one, so only the refused value fails.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.commands.reconcile.command import reconcile
from sync.config import Config, parse_config
from sync.core.engine import run
from sync.core.plan import Kind, SetExtraValues
from sync.core.report import Report
from sync.errors import ConfigError, ExitCode
from sync.model import is_warning
from sync.sandbox.store import DEFAULT_CATEGORIES, Seed
from sync.state import journal
from sync.state.journal import ErrorClass, OpStatus, RunStatus
from sync.state.models import RunRow
from sync.state.read import read_owned
from sync.state.store import StateStore
from tests.support.fake_pluvo import FakePluvo, Fault

HEADER = ["id", "mail", "first", "last", "dept", "title", "loc", "skills"]
USERS = {"ref": "id", "email": "mail", "name": {"template": "{first} {last}"}}
DEPARTMENT = {"category": "department", "type": "string", "column": "dept"}
JOB_TITLE = {"category": "job_title", "type": "string", "column": "title"}
LOCATION = {
    "category": "location",
    "type": "choice",
    "column": "loc",
    "options": ["Amsterdam", "Utrecht", "Rotterdam", "Eindhoven", "Groningen"],
}
SKILLS = {
    "category": "skills",
    "type": "multiselect",
    "column": "skills",
    "options": ["Python", "SQL", "Excel", "Leadership", "Sales", "Design"],
}


def row(ref: str, **values: str) -> dict[str, str]:
    base = {
        "id": ref,
        "mail": f"{ref.lower()}@example.nl",
        "first": "Person",
        "last": ref,
        "dept": "HR",
        "title": "Adviseur",
        "loc": "Utrecht",
        "skills": "Excel",
    }
    return {**base, **values}


def categories(**changes: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The sandbox's six USER categories, some changed (or removed with None)."""
    out = []
    for category in DEFAULT_CATEGORIES:
        ref = category["ref"]
        if ref in changes and changes[ref] is None:
            continue
        out.append({**category, **(changes.get(ref) or {})})
    return out


def fake_pluvo(cats: list[dict[str, Any]] | None = None, **options: Any) -> FakePluvo:
    seed = Seed(default_categories=cats is None, categories=cats or [])
    return FakePluvo(seed=seed, **options)


# ---------------------------------------------------------------- an installation


class Install:
    """A config with one CSV source and its mapping, a state store, and a fake Pluvo."""

    def __init__(self, folder: Path, template: Path, fake: FakePluvo) -> None:
        self.folder = folder
        self.fake = fake
        shutil.copy(template, folder / "state.db")
        self.extra: list[dict[str, Any]] = [DEPARTMENT, JOB_TITLE, LOCATION]
        self.groups: dict[str, Any] = {}

    @property
    def mapping_file(self) -> Path:
        return self.folder / "mapping.yaml"

    def write(self, rows: Sequence[dict[str, str]]) -> Config:
        mapping: dict[str, Any] = {"users": USERS, "extra": self.extra}
        if self.groups:
            mapping["groups"] = self.groups
        self.mapping_file.write_text(yaml.safe_dump(mapping), encoding="utf-8")
        lines = [";".join(HEADER)] + [";".join(r[c] for c in HEADER) for r in rows]
        (self.folder / "hr.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return parse_config(
            {
                "pluvo": {"url": "http://127.0.0.1:9", "client_id": "c", "client_secret": "s"},
                "sources": [
                    {"name": "hr", "type": "csv", "path": "hr.csv", "mapping": "mapping.yaml"}
                ],
                "state": {"url": "sqlite:///state.db"},
                "report": {"dir": "reports"},
            },
            base_dir=self.folder,
            env={},
        )

    def run(self, rows: Sequence[dict[str, str]], *, dry: bool) -> Report:
        return run(self.write(rows), dry=dry, api_factory=lambda config: self.fake)

    def store(self) -> StateStore:
        return StateStore(f"sqlite:///{self.folder / 'state.db'}")


@pytest.fixture
def install(tmp_path: Path, migrated_template: Path) -> Any:
    def make(fake: FakePluvo | None = None) -> Install:
        folder = tmp_path / uuid.uuid4().hex[:8]
        folder.mkdir()
        return Install(folder, migrated_template, fake or fake_pluvo())

    return make


def category_reads(fake: FakePluvo) -> int:
    return len(fake.sent("extraCategories"))


def mutations(fake: FakePluvo) -> int:
    return fake.counters.mutations


def stored_values(store: StateStore, ref: str) -> dict[str, str]:
    values = read_owned(store.engine).extra_values
    mine = values[values["user_ref"] == ref]
    return dict(zip(mine["category_ref"], mine["value"], strict=True))


# ---------------------------------------------------------------- configuration errors


@pytest.mark.parametrize("dry", [True, False], ids=["plan", "run"])
def test_a_mistyped_category_stops_before_anything_is_sent(install: Any, dry: bool) -> None:
    setup = install()
    setup.extra = [DEPARTMENT, {**JOB_TITLE, "category": "jobtitle"}, LOCATION]

    with pytest.raises(ConfigError) as info:
        setup.run([row("E1"), row("E2")], dry=dry)

    message = str(info.value)
    assert str(setup.mapping_file) in message
    assert "extra[1].category" in message
    assert "'jobtitle' does not exist in Pluvo" in message
    assert "did you mean 'job_title'?" in message
    assert info.value.exit_code == ExitCode.USAGE
    assert mutations(setup.fake) == 0
    assert setup.fake.sent("updateExtraCategoryValues") == []
    assert setup.fake.users() == {}
    if not dry:
        with setup.store().session() as session:
            (failed,) = session.query(RunRow).all()
        assert (failed.status, failed.exit_code) == (RunStatus.FAILED, ExitCode.USAGE)


@pytest.mark.parametrize(
    ("extra", "pluvo", "key", "says"),
    [
        (
            {**DEPARTMENT, "type": "boolean"},
            None,
            "extra[0].type",
            "'department' is STRING in Pluvo, the mapping says boolean",
        ),
        (
            DEPARTMENT,
            categories(department={"categoryType": "DATETIME"}),
            "extra[0].type",
            "'department' is DATETIME in Pluvo, the mapping says string",
        ),
    ],
    ids=["mapping-type", "pluvo-type"],
)
def test_a_category_pluvo_types_otherwise_is_a_configuration_error(
    install: Any, extra: dict[str, Any], pluvo: list[dict[str, Any]] | None, key: str, says: str
) -> None:
    setup = install(fake_pluvo(pluvo))
    setup.extra = [extra, JOB_TITLE]

    with pytest.raises(ConfigError) as info:
        setup.run([row("E1", dept="ja")], dry=True)

    assert f"mapping {setup.mapping_file}: {key}: extra category {says}" in str(info.value)
    assert mutations(setup.fake) == 0


def test_every_mismatch_is_named_at_once(install: Any) -> None:
    setup = install()
    setup.extra = [
        {**DEPARTMENT, "type": "boolean"},
        {**JOB_TITLE, "category": "job_tilte"},
        LOCATION,
    ]
    with pytest.raises(ConfigError) as info:
        setup.run([row("E1", dept="ja")], dry=True)
    message = str(info.value)
    assert "extra[0].type" in message
    assert "extra[1].category" in message
    assert "extra[2]" not in message


def test_reconcile_checks_the_categories_too(install: Any) -> None:
    setup = install()
    setup.extra = [{**DEPARTMENT, "category": "departement"}]
    config = setup.write([row("E1")])

    with pytest.raises(ConfigError, match=r"extra\[0\]\.category: extra category 'departement'"):
        reconcile(config, apply=False, api_factory=lambda config: setup.fake)
    assert mutations(setup.fake) == 0


# ---------------------------------------------------------------- reads


def test_categories_are_read_once_per_run_with_read_scopes_and_not_without_mapped_ones(
    install: Any,
) -> None:
    read_only = fake_pluvo(scopes=["users.read", "groups.read"])
    planned = install(read_only).run([row("E1"), row("E2")], dry=True)
    assert planned.exit_code == ExitCode.OK
    assert category_reads(read_only) == 1

    setup = install()
    applied = setup.run([row("E1"), row("E2")], dry=False)
    assert applied.exit_code == ExitCode.OK
    assert category_reads(setup.fake) == 1
    assert setup.fake.extra("E1") == {
        "department": "HR",
        "job_title": "Adviseur",
        "location": "Utrecht",
    }

    unmapped = install()
    unmapped.extra = []
    assert unmapped.run([row("E1")], dry=False).exit_code == ExitCode.OK
    assert category_reads(unmapped.fake) == 0


def test_a_refused_category_read_fails_the_plan(install: Any) -> None:
    setup = install()
    setup.fake.inject(Fault.transient("Pluvo answered 503"), field="extraCategories")
    with pytest.raises(Exception, match="503"):
        setup.run([row("E1")], dry=True)
    assert mutations(setup.fake) == 0


# ---------------------------------------------------------------- choice options


def test_an_option_pluvo_lacks_rejects_its_row_and_the_others_sync(install: Any) -> None:
    pluvo = categories(
        location={"choiceOptions": ["Amsterdam", "Utrecht", "Rotterdam", "Eindhoven"]}
    )
    setup = install(fake_pluvo(pluvo))
    setup.groups = {"rules": [{"id": "loc", "ref": "loc-{loc|slug}", "name": "{loc}"}]}
    rows = [row("E1", loc="Amsterdam"), row("E2", loc="Groningen"), row("E3")]

    planned = setup.run(rows, dry=True)

    assert planned.exit_code == ExitCode.PARTIAL
    assert planned.desired is not None
    (rejected,) = planned.desired.rejections.to_dict("records")
    assert (rejected["line"], rejected["column"], rejected["ref"]) == (3, "loc", "E2")
    assert rejected["file"].endswith("hr.csv")
    assert rejected["severity"] == "error"
    assert "'Groningen'" in rejected["reason"]
    assert "location" in rejected["reason"]
    assert "Pluvo" in rejected["reason"]
    assert planned.plan is not None
    assert {op.ref for op in planned.plan} == {"E1", "E3", "loc-amsterdam", "loc-utrecht"}
    assert planned.mapping["hr"]["rejected"] == 1
    assert planned.mapping["hr"]["users"] == 2
    assert mutations(setup.fake) == 0

    applied = setup.run(rows, dry=False)

    assert applied.exit_code == ExitCode.PARTIAL
    assert set(setup.fake.users()) == {"E1", "E3"}
    assert setup.fake.extra("E1")["location"] == "Amsterdam"
    assert set(setup.fake.groups()) == {"loc-amsterdam", "loc-utrecht"}
    again = setup.run(rows, dry=True)
    assert again.plan is not None
    assert list(again.plan) == []
    assert again.exit_code == ExitCode.PARTIAL  # the row stays rejected until fixed


def test_unknown_drop_leaves_out_only_the_option_pluvo_lacks(install: Any) -> None:
    pluvo = categories(skills={"choiceOptions": ["Python", "SQL", "Excel"]})
    setup = install(fake_pluvo(pluvo))
    setup.extra = [DEPARTMENT, {**SKILLS, "unknown": "drop"}]
    rows = [row("E1", skills="Python,Sales"), row("E2", skills="Sales"), row("E3")]

    applied = setup.run(rows, dry=False)

    assert applied.exit_code == ExitCode.OK  # warnings only
    assert applied.desired is not None
    warnings = applied.desired.rejections
    assert is_warning(warnings).all()
    assert sorted(warnings["ref"]) == ["E1", "E2"]
    assert all("'Sales'" in reason for reason in warnings["reason"])
    assert setup.fake.extra("E1") == {"department": "HR", "skills": ["Python"]}
    assert setup.fake.extra("E2") == {"department": "HR"}
    assert setup.fake.extra("E3") == {"department": "HR", "skills": ["Excel"]}
    again = setup.run(rows, dry=True)
    assert again.plan is not None
    assert list(again.plan) == [], "the recomputed hash converges"


# ---------------------------------------------------------------- values Pluvo refuses


def test_a_value_pluvo_refuses_costs_that_value_only(install: Any) -> None:
    pluvo = categories(job_title={"maxLength": 12})
    setup = install(fake_pluvo(pluvo))
    rows = [row("E1", title="Hoofd bedrijfsvoering"), row("E2")]

    applied = setup.run(rows, dry=False)

    assert applied.exit_code == ExitCode.PARTIAL
    assert setup.fake.extra("E1") == {"department": "HR", "location": "Utrecht"}
    assert setup.fake.extra("E2") == {
        "department": "HR",
        "job_title": "Adviseur",
        "location": "Utrecht",
    }
    assert applied.execution is not None
    (failure,) = applied.execution.failed
    assert (failure.kind, failure.ref, failure.error_class) == (
        Kind.SET_VALUES,
        "E1",
        ErrorClass.PARTIAL,
    )
    assert "1 of 3 value(s)" in failure.error
    assert "job_title" in failure.error
    store = setup.store()
    with store.session() as session:
        _, rows_ = journal.run_operations(session, applied.run_id)
    (entry,) = [r for r in rows_ if r.kind == Kind.SET_VALUES and r.ref == "E1"]
    assert (entry.status, entry.error_class) == (OpStatus.FAILED, ErrorClass.PARTIAL)
    assert entry.error == failure.error
    assert stored_values(store, "E1") == {"department": "HR", "location": "Utrecht"}

    again = setup.run(rows, dry=True)
    assert again.plan is not None
    (op,) = again.plan
    assert isinstance(op, SetExtraValues)
    assert op.ref == "E1"
    assert [v.category_ref for v in op.values] == ["job_title"]


def test_values_refused_one_by_one_fail_their_operation_and_nothing_is_recorded(
    install: Any,
) -> None:
    setup = install()
    setup.fake.inject(
        Fault.record("NotFound", "no such user"),
        field="updateExtraCategoryValues",
        ref="E1",
        times=None,
    )

    applied = setup.run([row("E1"), row("E2")], dry=False)

    assert applied.execution is not None
    (failure,) = applied.execution.failed
    assert failure.error_class is ErrorClass.RECORD
    assert "3 of 3 value(s)" in failure.error
    assert "no such user" in failure.error
    sent = [c for c in setup.fake.sent("updateExtraCategoryValues") if c.args["modelRef"] == "E1"]
    assert [len(c.args["values"]) for c in sent] == [3, 1, 1, 1]
    assert stored_values(setup.store(), "E1") == {}
    assert len(stored_values(setup.store(), "E2")) == 3


def test_a_fatal_error_while_splitting_stops_the_run(install: Any) -> None:
    setup = install()
    setup.fake.inject(Fault.record("InvalidInput"), field="updateExtraCategoryValues", ref="E1")
    setup.fake.inject(
        Fault.fatal("credentials revoked"),
        field="updateExtraCategoryValues",
        where=lambda call: len(call.args["values"]) == 1,
    )

    applied = setup.run([row("E1")], dry=False)

    assert applied.exit_code == ExitCode.FAILED
    assert applied.execution is not None
    assert "credentials revoked" in (applied.execution.aborted or "")
    (failure,) = applied.execution.failed
    assert failure.error_class is ErrorClass.FATAL
