"""The end-to-end workspace now lives in tests/support/workspace.py; this name stays
importable for code outside the test tiers (bench/) and older references."""

from tests.support.workspace import (
    DEPARTMENTS,
    HEADER,
    LOCATIONS,
    ROOT,
    SECRET_ENV,
    TITLES,
    Progress,
    Workspace,
    employee,
    employees,
    make_workspace,
    ref_of,
)

__all__ = [
    "DEPARTMENTS",
    "HEADER",
    "LOCATIONS",
    "ROOT",
    "SECRET_ENV",
    "TITLES",
    "Progress",
    "Workspace",
    "employee",
    "employees",
    "make_workspace",
    "ref_of",
]
