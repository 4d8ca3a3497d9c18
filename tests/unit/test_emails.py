"""Which addresses Pluvo takes: Django's EmailValidator, each verdict checked against it.

Every address below was run through `django.core.validators.validate_email` of Django
4.2.30 (the rule of 4.2 LTS to 5.1: punycode the domain, then match ASCII labels) and
of Django 5.2/6.1 (Unicode labels matched as they are). Where the two agree the table
says so; where they disagree the address is refused here, because Pluvo does not say
which Django it runs and a plan must never accept what the run will see refused.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.core.mapping.transforms import text, validate_emails
from sync.emails import MAX_LENGTH, PLAIN_EMAIL, email_problem, is_valid_email

LABEL_63 = "a" * 63

ACCEPTED_BY_DJANGO = [
    "jan@example.com",
    "Jan.de.Vries@Example.COM",
    "jan+hr@sub.voorbeeld-bv.nl",
    "!#$%&'*+/=?^_`{|}~-@example.com",
    "o'brien@example.ie",
    "1234@123.example.com",
    # IDN domains: punycoded by Django before 5.2, matched as Unicode from 5.2 on.
    "jorg@exämple.de",
    "jorg@EXÄMPLE.de",
    "info@例え.テスト",
    "a@xn--exmple-cua.de",
    "a@example.xn--p1ai",
    "a@пример.рф",
    # Quoted local parts: printable ASCII except space, `"` and `\` unless escaped.
    '"john"@example.com',
    '"john\\ doe"@example.com',
    '"a@b"@example.com',
    '""@example.com',
    # Domain literals: a real IPv4 or IPv6 address in brackets.
    "a@[127.0.0.1]",
    "a@[::1]",
    "a@[2001:DB8::1]",
    "a@localhost",
    # Special-use names are still names (email-validator refused these).
    "a@b.local",
    "a@b.test",
    "a@b.invalid",
    # Django has no 64-character limit on the local part, nor 253 on the domain.
    "x" * 65 + "@example.com",
    "a@" + ".".join([LABEL_63] * 4) + ".nl",
    f"a@{LABEL_63}.nl",
    "a@b." + "z" * 63,
    # Exactly 320 characters.
    "x" * (MAX_LENGTH - len("@example.com")) + "@example.com",
    # A Kelvin sign folds to "k" under Django's case-insensitive ASCII class.
    "\u212a@example.com",
]

REFUSED_BY_DJANGO = [
    "",
    "jan",
    "jan@",
    "@example.com",
    # Non-ASCII local parts, whatever the domain.
    "jörg@exämple.de",
    "jörg@example.de",
    "zoë@example.com",
    "用户@例子.广告",
    # Dot-atom rules.
    ".jan@example.com",
    "jan.@example.com",
    "j..an@example.com",
    "jan de vries@example.com",
    "a@b@example.com",
    "jan(x)@example.com",
    '"john doe"@example.com',
    '"john"doe@example.com',
    "jan@example.com\n",
    # Domains.
    "gijs@voorbeeld",
    "a@example.com.",
    "a@.example.com",
    "a@example..com",
    "a@-example.com",
    "a@example-.com",
    "a@exa_mple.com",
    "a@exa mple.com",
    "a@example.c",
    "a@example.co-",
    "a@LOCALHOST",
    f"a@{LABEL_63}a.nl",
    "a@b." + "z" * 64,
    # Domain literals that are no address.
    "a@[1.2.3.256]",
    "a@[01.2.3.4]",
    "a@[IPv6:::1]",
    "a@[::g]",
    "a@[1.2.3.4",
    # 321 characters.
    "x" * (MAX_LENGTH + 1 - len("@example.com")) + "@example.com",
]

DJANGO_VERSIONS_DISAGREE = [
    # Accepted before 5.2 only: a TLD with digits or a leading dash, a domain whose
    # punycode is fine but whose Unicode form the newer pattern does not match.
    "a@example.123",
    "a@example.-co",
    "a@\U0001f600.com",
    "a@example\u3002com",
    # Accepted from 5.2 on only: a label of 60 characters that punycodes to over 63.
    "a@" + "ä" * 60 + ".de",
    # The replacement character is refused by the IDNA codec, taken by the newer pattern.
    "a@\ufffd.de",
]


@pytest.mark.parametrize("address", ACCEPTED_BY_DJANGO)
def test_django_accepts(address: str) -> None:
    assert email_problem(address) is None
    assert is_valid_email(address)


@pytest.mark.parametrize("address", REFUSED_BY_DJANGO + DJANGO_VERSIONS_DISAGREE)
def test_django_refuses_or_one_version_refuses(address: str) -> None:
    reason = email_problem(address)
    assert reason
    assert not is_valid_email(address)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("jan", "no @"),
        ("@example.com", "nothing before the @"),
        ("jörg@exämple.de", "non-ASCII characters before the @ (Pluvo allows them only after it)"),
        ("j..an@example.com", "'j..an' is not a valid part before the @"),
        ("user@@x.nl", "more than one @"),
        ("a@", "nothing after the @"),
        ("gijs@voorbeeld", "the domain 'voorbeeld' has no dot"),
        ("a@example.com.", "the domain 'example.com.' ends with a dot"),
        ("a@[1.2.3.256]", "'1.2.3.256' is not an IPv4 or IPv6 address"),
        ("a@exa_mple.com", "'exa_mple.com' is not a valid domain"),
        ("x" * 330 + "@example.com", f"longer than {MAX_LENGTH} characters (342)"),
    ],
)
def test_reasons_say_what_is_wrong(address: str, reason: str) -> None:
    assert email_problem(address) == reason


def test_jorg_at_an_idn_domain_is_a_local_part_problem_not_a_domain_one() -> None:
    assert email_problem("jorg@exämple.de") is None
    assert "before the @" in (email_problem("jörg@exämple.de") or "")


def test_the_mapping_gives_the_same_verdicts_as_the_rule() -> None:
    """The mapping checks the lower-cased column; every table row lower-cased is judged
    as the rule judges it, with the rule's reason after the address."""
    values = [v.lower() for v in ACCEPTED_BY_DJANGO + REFUSED_BY_DJANGO + DJANGO_VERSIONS_DISAGREE]
    problem = validate_emails(text(values), "mail")
    assert problem is not None
    expected = [i for i, v in enumerate(values) if v and not is_valid_email(v)]
    assert list(problem.positions) == expected
    for position, reason in zip(problem.positions, problem.reasons, strict=True):
        value = values[position]
        assert reason == f"invalid email '{value}': {email_problem(value)}"


PLAIN_PARTS = st.sampled_from(
    ["a", "z9", "x.y", "@", ".", "-", "voorbeeld-bv", ".nl", ".xn--p1ai", ".1", "..", "+", "_"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(PLAIN_PARTS, max_size=8).map("".join))
def test_the_fast_pattern_accepts_only_what_the_rule_accepts(address: str) -> None:
    if PLAIN_EMAIL.fullmatch(address):
        assert is_valid_email(address), address


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_gets_a_verdict_without_an_error(address: str) -> None:
    reason = email_problem(address)
    assert reason is None or reason
