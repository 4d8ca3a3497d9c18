"""A local Pluvo look-alike: token endpoint, GraphQL with real semantics, fault injection.

`SandboxServer` serves it over real HTTP (tests, demos, benches, `pluvo-sync sandbox`);
`SandboxControl` drives a running one. README.md beside this file is the contract.
"""

from sync.sandbox.control import SandboxControl, SandboxControlError
from sync.sandbox.faults import Faults
from sync.sandbox.server import SandboxServer, serve_cli
from sync.sandbox.store import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SandboxError, Seed

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "Faults",
    "SandboxControl",
    "SandboxControlError",
    "SandboxError",
    "SandboxServer",
    "Seed",
    "serve_cli",
]
