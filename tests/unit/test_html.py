"""The HTML report is one self-contained page, and HR data in it is text, never markup."""

from __future__ import annotations

import pytest

from sync.commands.html import render_html
from sync.state.journal import RunStatus
from tests.unit.test_render import sample_report


def test_html_escapes_hr_data_and_fetches_nothing() -> None:
    report = sample_report()
    assert report.desired is not None
    report.desired.users.loc["1007", "name"] = "<img src=x onerror=alert(1)>"
    page = render_html(report)
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "http" not in page.split("<body>", 1)[1]  # no link, script or style from elsewhere
    assert "connect-src &#x27;none&#x27;" in page  # the CSP, in an attribute
    assert page.count("<script>") == 1
    assert page.index("Leaving") < page.index("Joining and added (")
    assert "hr/hr.csv" in page
    assert "invalid email &#x27;gijs@voorbeeld&#x27;" in page


def test_held_changes_come_first_with_why_and_names_escaped() -> None:
    from dataclasses import replace

    from sync.core.hold import always_held, hold

    report = sample_report()
    assert report.plan is not None
    report.plan = hold(report.plan, always_held(["leavers"]), {})
    report.holding = ["safety guard 'leavers': <b>3</b> exceeds the maximum"]
    held = report.plan.held[0].operation
    assert held.who is not None  # type: ignore[attr-defined]
    who = replace(held.who, name="<script>x</script>")  # type: ignore[attr-defined]
    report.plan = replace(
        report.plan, held=(replace(report.plan.held[0], operation=replace(held, who=who)),)
    )
    page = render_html(report)
    body = page.split("<body>", 1)[1]
    assert body.index("Held for release, not applied (") < body.index("Joining and added (")
    assert "Leaving (" not in body  # the leaver is held, not planned
    assert "&lt;script&gt;x&lt;/script&gt;" in body
    assert "<script>x" not in body
    assert "why: safety.hold lists leavers" in body
    assert "&lt;b&gt;3&lt;/b&gt;" in body


def test_rejected_rows_are_counted_as_the_text_counts_them() -> None:
    import re

    from sync.commands.render import render_plan
    from sync.model import rejection_keys

    report = sample_report()
    assert report.desired is not None
    text = render_plan(report)
    found = re.search(r"Rejected rows: (\d+) .*; (\d+) warning", text)
    assert found is not None, text
    errors, warnings = int(found[1]), int(found[2])
    assert (errors, warnings) == (1, 1)
    page = render_html(report)
    assert f'<div class="count rejected"><b>{errors}</b>Rejected rows</div>' in page
    assert f'<div class="count warning"><b>{warnings}</b>Warnings</div>' in page
    assert f"Rejected rows ({errors}) and warnings ({warnings})" in page
    assert "<td>new</td>" in page
    assert "<td>the last run</td>" not in page

    report.known_rejections = frozenset(rejection_keys(report.desired.rejections))
    page = render_html(report)
    assert "<td>new</td>" not in page
    assert "<td>the last run</td>" in page


def test_the_page_speaks_to_its_reviewer_and_folds_the_engineers_details(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    monkeypatch.setenv("TZ", "Europe/Amsterdam")
    time.tzset()
    report = sample_report()
    report.status = RunStatus.PLANNED
    try:
        page = render_html(report)
    finally:
        monkeypatch.undo()
        time.tzset()
    meta = page.split('<p class="meta">', 1)[1].split("</p>", 1)[0]
    assert meta == "Planned 2026-11-24 07:00 CET; nothing was sent to Pluvo. 1 row rejected."
    assert "operation(s)" not in page.split("<details>", 1)[0]
    assert "3 people in today's sources; 3 people synced before." in page
    admin = page.split("<details><summary>For the administrator</summary>", 1)[1]
    assert "20261124T060000-abcdef" in admin
    assert "planned (exit 0)" in admin
    assert "2026-11-24T06:00:00+00:00" in admin
