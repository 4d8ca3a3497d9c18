"""Which email addresses Pluvo accepts, so the plan refuses exactly what the run would.

Pluvo is a Django application and checks emails with Django's `EmailValidator`
(django/core/validators.py). Its rules, all implemented here:

- at most 320 characters in all (RFC 3696 section 3; Django 3.2.20/4.1.10/4.2.3 on);
  no separate limit on the local part (64) or the domain (253);
- split at the *last* `@`; the local part is a dot-atom of ASCII `atext` or a quoted
  string of ASCII (a space, tab, `"` or `\\` only escaped; never NUL, CR or LF),
  matched case-insensitively, so a non-ASCII local part (`jörg@...`) is refused;
- the domain is `localhost` (exactly), or `[an IPv4 or IPv6 address]`, or host name
  labels of 1 to 63 characters without a leading or trailing `-`, at least two of
  them, with no trailing dot.

Django changed the domain rule in 5.2. Up to 5.1 (4.2 LTS included) it punycodes a
domain that does not match (`domain.encode("idna")`, IDNA 2003) and matches the ASCII
labels again, the last one `[a-z0-9-]{2,63}`. From 5.2 on it matches the Unicode form
as it is: any character from U+00A1 to U+FFFF counts as a letter, and the last label
is letters (`xn--...` aside). The two disagree at the edges: a numeric or `-`-led last
label, an emoji, an ideographic full stop, a label whose punycode is too long. Pluvo
does not say which Django it runs, so an address is accepted only if *both* rules
accept it: a dry run never calls fine what either version would refuse.

The result depends on the exact string: callers check the canonical (lower-cased)
address the engine sends, and the sandbox checks what it is sent.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

MAX_LENGTH = 320
"""Django's limit on a whole address."""

_ATEXT = r"[-!#$%&'*+/=?^_`{}|~0-9A-Z]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
# Any ASCII but NUL, tab, LF, CR, space, `"` and `\`; an escape (`\x`) takes any
# ASCII but NUL, LF and CR (so a quoted space must be escaped).
_QUOTED = r'"(?:[\x01-\x08\x0b\x0c\x0e-\x1f!#-\[\]-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*"'
# re.IGNORECASE is part of Django's rule: besides a-z it lets the Kelvin sign, the long
# s and the dotted/dotless i fold into the ASCII class, and Pluvo takes those too.
_LOCAL = re.compile(rf"(?:{_DOT_ATOM}|{_QUOTED})\Z", re.IGNORECASE)

_LABEL = r"[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?"
# Up to 5.1: ASCII labels (after punycode); the last may hold digits.
_ASCII_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+[A-Z0-9-]{{2,63}}(?<!-)\Z", re.IGNORECASE)
# From 5.2: the same shape over Unicode; the last label is letters or punycode.
_U = "A-Z\u00a1-\uffff"
_UNICODE_DOMAIN = (
    rf"[{_U}0-9](?:[{_U}0-9-]{{0,61}}[{_U}0-9])?"
    rf"(?:\.(?!-)[{_U}0-9-]{{1,63}}(?<!-))*"
    rf"\.(?!-)(?:[{_U}-]{{2,63}}|xn--[A-Z0-9]{{1,59}})(?<!-)\Z"
)


@lru_cache(maxsize=1)
def _unicode_domain() -> re.Pattern[str]:
    """Compiled on first use: case-folding a class up to U+FFFF takes about 30 ms, which
    every start of the command would pay, while most runs never get here (addresses
    PLAIN_EMAIL matches are not checked one by one)."""
    return re.compile(_UNICODE_DOMAIN, re.IGNORECASE)


_LITERAL = re.compile(r"\[([A-F0-9:.]+)\]\Z", re.IGNORECASE)
_ALLOWED_HOSTS = frozenset({"localhost"})
_MAX_IPV6_LENGTH = 39  # Django refuses longer IPv6 text before parsing it

PLAIN_PATTERN = (
    r"[-!#$%&'*+/=?^_`{}|~0-9a-z]+(?:\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?!-)(?:[a-z-]{2,63}|xn--[a-z0-9]{1,59})(?<!-)"
)
"""Lower-case ASCII dot-atom @ ASCII host name: a subset of what both rules accept
(the length aside), for a fast first pass over a column. A miss proves nothing."""

PLAIN_EMAIL = re.compile(PLAIN_PATTERN)


def is_valid_email(address: str) -> bool:
    return email_problem(address) is None


def email_problem(address: str) -> str | None:
    """None when Pluvo accepts `address`, else what is wrong with it, for a person."""
    if "@" not in address:
        return "no @"
    if len(address) > MAX_LENGTH:
        return f"longer than {MAX_LENGTH} characters ({len(address)})"
    local, domain = address.rsplit("@", 1)
    if not _LOCAL.match(local):
        if not local:
            return "nothing before the @"
        if not local.isascii():
            return "non-ASCII characters before the @ (Pluvo allows them only after it)"
        if "@" in local:
            return "more than one @"
        return f"'{local}' is not a valid part before the @"
    return domain_problem(domain)


@lru_cache(maxsize=4096)
def domain_problem(domain: str) -> str | None:
    """The domain half of `email_problem`.

    Cached: a whole organisation shares a handful of domains, and an IDN one costs an
    IDNA encoding per check.
    """
    if domain in _ALLOWED_HOSTS:
        return None
    literal = _LITERAL.match(domain)
    if literal:
        if _is_ip_address(literal[1]):
            return None
        return f"'{literal[1]}' is not an IPv4 or IPv6 address"
    if _before_5_2(domain) and _unicode_domain().match(domain):
        return None
    if not domain:
        return "nothing after the @"
    if domain.endswith("."):
        return f"the domain '{domain}' ends with a dot"
    if "." not in domain:
        return f"the domain '{domain}' has no dot"
    return f"'{domain}' is not a valid domain"


def _before_5_2(domain: str) -> bool:
    if _ASCII_DOMAIN.match(domain):
        return True
    try:
        ascii_form = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return _ASCII_DOMAIN.match(ascii_form) is not None


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        pass
    else:
        return True
    if len(text) > _MAX_IPV6_LENGTH:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True
