"""The key packages' versions in the interpreter that runs this, one line.

    python scripts/versions.py              # cryptography==51.0.1 asyncssh==... ...
    python scripts/versions.py --lock FILE  # the installed packages not at FILE's pins

Used by .ci/run (the locked environment) and scripts/check_wheel.sh (the newest
versions the ranges allow), so a failing CI names the versions it ran with.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, distributions, version

KEY_PACKAGES = ("cryptography", "asyncssh", "pandas", "sqlalchemy", "aiohttp", "pydantic")
SEED = ("pip", "setuptools", "wheel")  # a venv's own, not dependencies


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def key_versions() -> str:
    def one(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    return " ".join(f"{name}=={one(name)}" for name in KEY_PACKAGES)


def not_as_locked(lock: str) -> str:
    locked: dict[str, set[str]] = {}
    with open(lock, encoding="utf-8") as handle:
        for line in handle:
            match = re.match(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", line)
            if match:
                locked.setdefault(_normal(match.group(1)), set()).add(match.group(2))
    moved = []
    for dist in distributions():
        name = _normal(dist.metadata["Name"])
        if name not in SEED and name in locked and dist.version not in locked[name]:
            moved.append(f"{name} {dist.version} (lock: {'/'.join(sorted(locked[name]))})")
    return "; ".join(sorted(moved)) or "none"


if __name__ == "__main__":
    print(not_as_locked(sys.argv[2]) if sys.argv[1:2] == ["--lock"] else key_versions())
