"""The plan as the HR administrator reviews it: leavers first and by name, one person
explained, and the HTML report as a browser shows it (headless Chromium).

The HTML test needs Debian's `chromium` (apt-get install -y chromium); without it the
test is skipped locally and fails under CI (CI=1), where it must be installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sync.sandbox import SandboxServer
from tests.support.workspace import Workspace, employee, make_workspace, ref_of

SNAPSHOTS = Path(__file__).parent / "snapshots"
MARKUP = "<script>document.title='pwned'</script>"
FORMULA = '=HYPERLINK("http://evil.example","klik")'
LEAVERS = (7, 8, 9)
MOVER = 13  # ICT → Marketing
COUNT = 40


def day1() -> dict[int, dict[str, str]]:
    rows = {n: employee(n) for n in range(COUNT)}
    rows[7]["Voornaam"] = MARKUP
    rows[8]["Voornaam"] = FORMULA
    return rows


def day2() -> list[dict[str, str]]:
    rows = day1()
    for n in LEAVERS:
        del rows[n]
    rows[MOVER]["Afdeling"] = "Marketing"
    rows[COUNT] = employee(COUNT)  # a joiner (in Logistiek, as HR still calls it)
    for row in rows.values():  # HR renames a department
        if row["Afdeling"] == "Logistiek":
            row["Afdeling"] = "Supply Chain"
    rows[20]["Functie"] = "Teamleider"
    return list(rows.values())


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """Day 1 applied, day 2 written (leavers, a move, a renamed department, a joiner)."""
    server = SandboxServer(port=0)
    server.start()
    try:
        ws = make_workspace(
            tmp_path_factory.mktemp("review") / "ws",
            server.url,
            **{"safety.max_leavers": {"share": 0.5, "count": 200}},
        )
        ws.write_hr(day1().values())
        first = ws.cli("run")
        assert first.returncode == 0, first.stdout + first.stderr
        ws.write_hr(day2())
        yield ws
    finally:
        server.stop()


def leaver_name(n: int) -> str:
    first = day1()[n]["Voornaam"]
    middle = ["", "de", "van der"][n % 3]
    return " ".join(p for p in (first, middle, f"Tester{n}") if p)


def normalised(text: str) -> str:
    text = re.sub(r"[^\s\[]*/hr/hr\.csv", "hr/hr.csv", text)
    return re.sub(r"\d{4}-\d{2}-\d{2}", "<date>", text)


def test_day2_plan_starts_with_its_leavers_by_name(planned: Workspace) -> None:
    result = planned.cli("plan", "--out", "plan.json")
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    sections = re.findall(r"^(\S[^\n]*) \(\d+\):$", text, re.MULTILINE)
    assert sections[0] == "Leaving", sections
    assert sections == sorted(sections, key=[
        "Leaving", "Removed from groups and manager roles", "Existing values overwritten",
        "Moves and renames", "Joining and added"].index)  # fmt: skip
    short = text.split("In short:\n", 1)[1].splitlines()
    assert short[0].startswith("  3 people leave: "), short
    leaving = text.split("Leaving (3):\n", 1)[1].split("\n\n", 1)[0].splitlines()
    for line, n in zip(leaving, LEAVERS, strict=True):
        assert line.startswith(f"  {leaver_name(n)} <user{n}@voorbeeld-bv.nl> ({ref_of(n)}): ")
        assert "archived, gone from the sources since" in line
    assert "department renamed? new group Supply Chain, old group Logistiek left empty" in text, (
        text
    )
    assert "1 person moves ICT → Marketing" in text
    assert "archive_user" not in text
    assert "set_extra_values" not in text
    # The JSON keeps execution order and adds the review, riskiest first.
    data = json.loads((planned.root / "plan.json").read_text(encoding="utf-8"))
    kinds = [op["kind"] for op in data["plan"]["operations"]]
    assert kinds[-3:] == ["archive_user"] * 3
    assert data["review"]["sections"][0]["class"] == "leavers"
    names = [i["name"] for i in data["review"]["sections"][0]["items"]]
    assert names == [leaver_name(n) for n in LEAVERS]
    snapshot = SNAPSHOTS / "day2_plan.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        snapshot.write_text(normalised(text), encoding="utf-8")
    assert normalised(text) == snapshot.read_text(encoding="utf-8")


def test_explain_a_mover(planned: Workspace) -> None:
    result = planned.cli("explain", ref_of(MOVER))
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    line = MOVER + 2 - len(LEAVERS)  # the leavers' rows are gone from above it
    assert re.search(rf"^  .*hr\.csv:{line} \(source hr\)$", text, re.MULTILINE), text
    assert "      Afdeling: 'Marketing'" in text
    assert "  department (string): 'Marketing' ← column 'Afdeling'" in text
    assert "  name: 'René de Tester13' ← template '{Voornaam} {Tussenvoegsel} {Achternaam}'" in text
    assert "  member of group 'Marketing' (dept-marketing) ← group rule department" in text
    store = text.split("State store", 1)[1].split("Planned now", 1)[0]
    assert "member of group 'ICT' (dept-ict)" in store
    planned_part = text.split("Planned now", 1)[1].split("Journal", 1)[0]
    assert "ICT → Marketing" in planned_part
    assert "department: 'ICT' → 'Marketing'" in planned_part
    journal = text.split("Journal (newest first):", 1)[1]
    assert "new person done" in journal
    assert "group gaining members, group dept-ict done" in journal


class _Text(HTMLParser):
    """The text a person sees: text nodes outside script and style, and the title."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0
        self.tags: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.skip += tag in ("script", "style")
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self.skip -= tag in ("script", "style")
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self.skip:
            self.parts.append(data)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (apt-get install -y chromium)")
        pytest.skip("needs Debian's chromium (apt-get install -y chromium)")
    return found


def test_html_report_in_a_real_browser(planned: Workspace) -> None:
    browser = chromium()
    page = planned.root / "plan.html"
    result = planned.cli("plan", "--html", str(page))
    assert result.returncode == 0, result.stdout + result.stderr
    source = page.read_text(encoding="utf-8")
    assert not re.search(r"(src|href)=\"?https?:", source), "self-contained: nothing fetched"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={planned.root / 'chromium'}"]  # fmt: skip
    shot = planned.root / "plan.png"
    subprocess.run(
        [browser, *flags, "--window-size=1280,1800", f"--screenshot={shot}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert shot.stat().st_size > 10_000
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    seen = _Text()
    seen.feed(dom)
    text = " ".join("".join(seen.parts).split())
    assert "pwned" not in seen.title, "a name with markup ran as a script"
    assert seen.tags.count("script") == 1, "only the report's own script is on the page"
    for n in LEAVERS:
        assert leaver_name(n) in text, leaver_name(n)
    assert MARKUP in text  # shown as the text it is
    assert FORMULA in text
    assert text.index("Leaving (3 of 3)") < text.index("Joining and added (")
    assert "department renamed? new group Supply Chain" in text
    keep = os.environ.get("PLUVO_SYNC_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_run_keeps_its_html_report_beside_the_json(planned: Workspace) -> None:
    """Last in this module: it applies day 2."""
    result = planned.cli("run")
    assert result.returncode == 0, result.stdout + result.stderr
    pages = sorted((planned.root / "reports").glob("run-*.html"))
    assert [p.stem for p in pages][-1] == sorted(
        p.stem for p in (planned.root / "reports").glob("run-*.json")
    )[-1]
    page = pages[-1].read_text(encoding="utf-8")
    assert "Run report" in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "<h2>Applied</h2>" in page
    assert oct(pages[-1].stat().st_mode & 0o777) == "0o600"
