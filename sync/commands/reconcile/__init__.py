"""`pluvo-sync reconcile [--apply]`: live Pluvo against the desired and the owned state.

The regular run compares HR (desired) with the state store (owned) and trusts that
Pluvo still holds what the engine applied. Reconcile checks that trust: it reads live
Pluvo (present) and compares the three sets. What it reports:

- users in Pluvo that HR does not know (never touched);
- users in HR whose live fields, values or memberships differ from what the engine
  applied (drift the engine owns);
- members and managers of owned groups that the engine did not add (reported,
  never removed: they are not ours);
- state rows whose Pluvo object vanished.

`--apply` does not invent a second write path. It builds the same `StateView` the
diff engine reads from the store, but from live data restricted to what the engine
owns (foreign members and values are left out, so the diff can never remove them),
and lets the ordinary diff, guards and journaled executor correct the drift. Then
the store is refreshed where Pluvo already matches HR, so that the next run and the
next reconcile agree with Pluvo.
"""

from sync.commands.reconcile.command import Reconciliation, reconcile, reconcile_command
from sync.commands.reconcile.drift import Drift, compute_drift
from sync.commands.reconcile.refresh import Refresh, plan_refresh
from sync.commands.reconcile.view import adoption_from_live, live_view
from sync.state.read import Owned, read_owned

__all__ = [
    "Drift",
    "Owned",
    "Reconciliation",
    "Refresh",
    "adoption_from_live",
    "compute_drift",
    "live_view",
    "plan_refresh",
    "read_owned",
    "reconcile",
    "reconcile_command",
]
