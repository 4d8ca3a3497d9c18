"""Release and discard against an in-process Pluvo that fails on demand.

A change is released only once Pluvo acknowledged it; one whose content changed since
it was held is not applied; a leaver held as an archive stays held when the leaver
action becomes deactivate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync.config import Config
from sync.core.engine import run
from sync.core.release import discard, release
from sync.errors import ExitCode, UsageError
from sync.state import held as held_store
from sync.state.journal import RunStatus
from sync.state.store import StateStore
from tests.support.fake_pluvo import FakePluvo, Fault
from tests.unit.test_categories import Install, fake_pluvo, row

PEOPLE = ("E1", "E2", "E3", "E4")


class Holding(Install):
    """An installation whose safety policy holds `classes` always, no grace for leavers."""

    def __init__(self, folder: Path, template: Path, fake: FakePluvo, **safety: Any) -> None:
        super().__init__(folder, template, fake)
        self.safety = {"hold": ["leavers", "overwrites"], "min_source_ratio": None, **safety}
        self.leavers: dict[str, Any] = {"grace_runs": 0}

    def write(self, rows: Any) -> Config:
        config = super().write(rows)
        safety = config.safety.model_copy(update=self.safety)
        leavers = config.leavers.model_copy(update=self.leavers)
        return config.model_copy(update={"safety": safety, "leavers": leavers})

    def held(self) -> dict[str, str]:
        store = StateStore(f"sqlite:///{self.folder / 'state.db'}")
        try:
            with store.session() as session:
                return {h.ref: h.key[0] for h in held_store.active(session)}
        finally:
            store.close()


@pytest.fixture
def holding(tmp_path: Path, migrated_template: Path) -> Holding:
    folder = tmp_path / "install"
    folder.mkdir()
    setup = Holding(folder, migrated_template, fake_pluvo())
    assert setup.run([row(r) for r in PEOPLE], dry=False).exit_code == ExitCode.OK
    return setup


def _leave(setup: Holding, *gone: str) -> Config:
    rows = [row(r) for r in PEOPLE if r not in gone]
    report = setup.run(rows, dry=False)
    assert report.exit_code == ExitCode.HELD
    return setup.write(rows)


def test_a_failed_release_leaves_the_change_held(holding: Holding) -> None:
    config = _leave(holding, "E3", "E4")
    holding.fake.inject(Fault.record("InvalidInput"), field="updateOrCreateUser", ref="E3")
    report = release(config, ["E3", "E4"], reason="ok", api_factory=lambda config: holding.fake)
    assert report.exit_code == ExitCode.PARTIAL
    assert holding.held() == {"E3": "leaver"}
    assert [d["ref"] for d in report.sections["release"]["released"]] == ["E4"]
    assert [d["ref"] for d in report.sections["release"]["not_applied"]] == ["E3"]
    user = holding.fake.user("E4")
    assert user is not None
    assert user["archived"] is True
    again = release(config, ["E3"], reason="ok", api_factory=lambda config: holding.fake)
    assert again.exit_code == ExitCode.OK
    assert holding.held() == {}


def test_a_release_stopped_before_pluvo_answers_releases_nothing(holding: Holding) -> None:
    rows = [row(r) if r != "E2" else row(r, last="Anders") for r in PEOPLE if r != "E3"]
    assert holding.run(rows, dry=False).exit_code == ExitCode.HELD
    assert holding.held() == {"E2": "update_user", "E3": "leaver"}
    # The update (first phase) stops the run: the archive (last phase) is never sent.
    holding.fake.inject(Fault.fatal(), field="updateOrCreateUser", ref="E2")
    config = holding.write(rows)
    report = release(config, None, reason="ok", api_factory=lambda config: holding.fake)
    assert report.exit_code == ExitCode.FAILED
    assert holding.held() == {"E2": "update_user", "E3": "leaver"}
    assert holding.fake.user("E3")["archived"] is False  # type: ignore[index]


def test_a_change_that_moved_on_since_it_was_held_is_not_applied(holding: Holding) -> None:
    renamed = [row(r) if r != "E2" else row(r, last="Anders") for r in PEOPLE]
    assert holding.run(renamed, dry=False).exit_code == ExitCode.HELD
    assert holding.held() == {"E2": "update_user"}
    # A new export arrives before the release: what would be sent is not what was held.
    config = holding.write([row(r) if r != "E2" else row(r, last="Anders2") for r in PEOPLE])
    report = release(config, ["E2"], reason="ok", api_factory=lambda config: holding.fake)
    assert report.exit_code == ExitCode.OK
    assert [d["ref"] for d in report.sections["release"]["changed"]] == ["E2"]
    assert holding.fake.user("E2")["name"] == "Person E2"  # type: ignore[index]
    assert holding.held() == {"E2": "update_user"}
    # Listed again with its new content, it is released as it now is.
    again = release(config, ["E2"], reason="ok", api_factory=lambda config: holding.fake)
    assert [d["ref"] for d in again.sections["release"]["released"]] == ["E2"]
    assert holding.fake.user("E2")["name"] == "Person Anders2"  # type: ignore[index]


def test_switching_the_leaver_action_keeps_a_held_leaver_held(holding: Holding) -> None:
    _leave(holding, "E3")
    holding.safety = {"hold": [], "min_source_ratio": None}
    holding.leavers = {"grace_runs": 0, "action": "deactivate"}
    report = holding.run([row(r) for r in PEOPLE if r != "E3"], dry=False)
    assert report.exit_code == ExitCode.HELD
    assert report.plan is not None
    assert [h.operation.kind for h in report.plan.held] == ["deactivate_user"]
    assert holding.fake.user("E3")["isActive"] is True  # type: ignore[index]


def test_nothing_held_is_said_and_recorded_nowhere(holding: Holding) -> None:
    config = holding.write([row(r) for r in PEOPLE])
    report = release(config, None, reason="ok", api_factory=lambda config: holding.fake)
    assert (report.status, report.exit_code, report.message) == (
        RunStatus.SUCCEEDED,
        ExitCode.OK,
        "nothing is held",
    )
    assert discard(config, None, reason="ok").message == "nothing is held"
    with pytest.raises(UsageError, match="nothing is held for E9"):
        release(config, ["E9"], reason="ok", api_factory=lambda config: holding.fake)
    store = holding.store()
    try:
        assert store.last_applied_run() is not None
        with store.session() as session:
            from sqlalchemy import select

            from sync.state.models import RunRow

            modes = set(session.scalars(select(RunRow.mode)))
    finally:
        store.close()
    assert modes == {"run"}


def test_a_release_is_judged_by_its_own_operations(holding: Holding) -> None:
    rows = [row(r) for r in PEOPLE if r != "E4"]
    rows.append(row("E9", mail="not-an-email"))
    assert holding.run(rows, dry=False).exit_code == ExitCode.HELD  # rejected row + held
    report = release(
        holding.write(rows), ["E4"], reason="ok", api_factory=lambda config: holding.fake
    )
    assert report.exit_code == ExitCode.OK


def test_run_is_unchanged_by_release_helpers(holding: Holding) -> None:
    """A dry run shows what is held without recording anything."""
    rows = [row(r) for r in PEOPLE if r != "E1"]
    report = run(holding.write(rows), dry=True, api_factory=lambda config: holding.fake)
    assert report.plan is not None
    assert [h.key for h in report.plan.held] == [("leaver", "E1", "")]
    assert holding.held() == {}
