"""Doctor's checklist text and verdicts that need no server: folding, remedies, secrets."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from sync.commands.doctor import collect, exit_code, render, render_lines
from sync.commands.doctor.checks import Status, fail, ok, skip, warn
from sync.commands.doctor.remote import NEEDED_SCOPES, scope_result
from sync.config.pluvo import PluvoConfig
from sync.logs import register_secret


def test_failure_shows_remedy_after_a_dash() -> None:
    result = fail("token", "refused", "check pluvo.client_secret")
    assert render_lines(result) == ["[FAIL] token: refused — check pluvo.client_secret"]


def test_one_item_message_is_folded_into_one_line() -> None:
    result = fail("config", "invalid configuration in c.yaml:\n  pluvo.url: field required")
    assert result.summary == "invalid configuration in c.yaml: pluvo.url: field required"
    assert result.details == ()


def test_many_item_message_keeps_one_line_per_item() -> None:
    result = fail("config", "invalid configuration in c.yaml:\n  a: x\n  b: y", "fix it")
    assert render_lines(result) == [
        "[FAIL] config: invalid configuration in c.yaml — fix it",
        "       a: x",
        "       b: y",
    ]


def test_details_of_passing_checks_only_when_verbose() -> None:
    result = ok("schema", "all valid", "updateOrCreateUser (upsert)")
    assert render_lines(result) == ["[ ok ] schema: all valid"]
    assert render_lines(result, verbose=True)[1].strip() == "updateOrCreateUser (upsert)"


def test_secrets_are_redacted_from_every_line() -> None:
    register_secret("hunter2-doctor-secret")
    text = render([fail("token", "sent hunter2-doctor-secret", None, "hunter2-doctor-secret")])
    assert "hunter2-doctor-secret" not in text


def test_exit_code_counts_failures_only() -> None:
    passing = [ok("a", "x"), warn("b", "y"), skip("c", "z")]
    assert exit_code(passing) == 0
    assert render(passing).endswith("doctor: all checks passed")
    failing = [*passing, fail("d", "w")]
    assert exit_code(failing) == 1
    assert render(failing).endswith("doctor: 1 check(s) failed")


def test_missing_config_file_fails_and_skips_everything(tmp_path: Path) -> None:
    results = collect(tmp_path / "absent.yaml")
    assert results[0].status is Status.FAIL
    assert "absent.yaml not found" in results[0].summary
    assert results[0].remedy is not None
    assert "pass -c PATH" in results[0].remedy
    assert all(r.status is Status.SKIP for r in results[1:])
    assert exit_code(results) == 1


def pluvo(scopes: list[str] | None = None) -> PluvoConfig:
    config = PluvoConfig(url="http://x/", client_id="c1", client_secret=SecretStr("s"))
    return config if scopes is None else config.model_copy(update={"scopes": scopes})


def test_scopes_all_granted() -> None:
    assert scope_result(pluvo(), frozenset(NEEDED_SCOPES)).status is Status.OK


def test_scopes_not_reported_is_a_warning_not_a_pass() -> None:
    result = scope_result(pluvo(), None)
    assert result.status is Status.WARN
    assert "cannot be verified" in result.summary


def test_scope_neither_configured_nor_granted() -> None:
    result = scope_result(pluvo(["users.read", "users.write"]), frozenset({"users.read"}))
    assert result.status is Status.FAIL
    assert result.summary == "missing users.write groups.read groups.write extra_categories.write"
    assert result.remedy == (
        "add groups.read groups.write extra_categories.write to pluvo.scopes and ask Pluvo "
        "to grant users.write groups.read groups.write extra_categories.write to the API "
        "client 'c1'"
    )
