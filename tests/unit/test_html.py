"""The HTML report is one self-contained page, and HR data in it is text, never markup."""

from __future__ import annotations

from sync.commands.html import render_html
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
