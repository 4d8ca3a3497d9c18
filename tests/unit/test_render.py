"""User-facing text is reviewed like code: plan and report output against snapshots.

To accept an intended change, run with UPDATE_SNAPSHOTS=1 and review the diff.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from sync.commands.render import render_plan, render_report
from sync.core.engine import Report
from sync.core.executor import Execution, Failure
from sync.core.plan import Change, Kind, Operation, Plan
from sync.model import REJECTION_COLUMNS, Desired

SNAPSHOTS = Path(__file__).parent / "snapshots"


def check(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == path.read_text(encoding="utf-8")


def sample_report() -> Report:
    origin = "hr/hr.csv:12"
    plan = Plan(
        operations=[
            Operation(
                Kind.CREATE_GROUP,
                "dept-ict",
                "create group dept-ict (ICT)",
                (Change("name", "", "ICT"),),
                {"name": "ICT"},
            ),
            Operation(
                Kind.CREATE_USER,
                "1007",
                "create user 1007 <thijs@example.nl>",
                tuple(
                    Change(f, "", v, origin)
                    for f, v in (
                        ("email", "thijs@example.nl"),
                        ("name", "Thijs Meijer"),
                        ("language", "NL"),
                        ("roles", "MANAGER,TRAINER"),
                        ("is_active", "true"),
                    )
                ),
                {"send": {}, "fields": {}},
            ),
            Operation(
                Kind.UPDATE_USER,
                "1002",
                "update user 1002: email",
                (Change("email", "daan@old.nl", "daan@new.nl", "hr/hr.csv:3"),),
                {"send": {"email": "daan@new.nl"}, "fields": {}},
            ),
            Operation(
                Kind.SET_VALUES,
                "1002",
                "set 1 extra value(s) of 1002",
                (Change("skills", "Excel", "Excel\nSQL", "hr/hr.csv:3"),),
                {"values": []},
            ),
            Operation(
                Kind.ADD_MEMBERS,
                "dept-ict",
                "add 2 member(s) to group dept-ict",
                (),
                {"users": ["1002", "1007"]},
            ),
            Operation(
                Kind.ARCHIVE_USER,
                "1040",
                "archive leaver 1040 (gone from the sources)",
                (Change("archived", "false", "true"),),
                {},
            ),
        ],
        state_users=40,
        desired_users=41,
    )
    desired = Desired()
    desired.rejections = pd.DataFrame(
        [
            [
                "hr",
                "hr/hr.csv",
                27,
                "E-mailadres",
                "1026",
                "error",
                "invalid email 'gijs@voorbeeld'",
            ],
            [
                "hr",
                "hr/hr.csv",
                31,
                "Leidinggevende",
                "1030",
                "warning",
                "manager '999' is not a synced user; manager link to group 'dept-ict' dropped "
                "(the user still syncs)",
            ],
        ],
        columns=list(REJECTION_COLUMNS),
    )
    return Report(
        run_id="20261124T060000-abcdef",
        mode="plan",
        started_at=datetime(2026, 11, 24, 6, 0, tzinfo=UTC),
        plan=plan,
        desired=desired,
        mapping={
            "hr": {"rows": 45, "filtered": 2, "rejected": 1, "users": 41, "pending": 1,
                   "ended": 0},
        },
    )  # fmt: skip


def test_plan_text() -> None:
    check("plan.txt", render_plan(sample_report()))


def test_guarded_plan_text() -> None:
    report = sample_report()
    report.guards = [
        "safety guard 'leavers': 12 of 40 (30.0%) exceeds the maximum share 5% leavers "
        "(archive/deactivate) planned; if this is intended, rerun with --override leavers "
        "(or raise the bound under `safety:` in the config)"
    ]
    check("plan_guarded.txt", render_plan(report))


def test_report_text() -> None:
    report = sample_report()
    report.mode, report.status, report.exit_code = "run", "partial", 3
    report.execution = Execution(
        done={"create_group": 1, "create_user": 1, "update_user": 1},
        failed=[Failure(4, "add_members", "dept-ict", "1 of 2 user(s) refused by Pluvo: 1007")],
        requests=4,
        seconds=0.42,
    )
    check("report.txt", render_report(report))
