"""The cyclic garbage collector, paused while a command builds objects without cycles.

Reference counting frees what a plan allocates; the cyclic collector only looks for
cycles, and it looks each time allocations outnumber deallocations by a few hundred.
Importing pandas, SQLAlchemy and aiohttp, and reading, mapping and diffing a million
rows, allocate millions of objects that stay alive, so it would scan them over and
over to find nothing: about 0.15 s of every start-up, and about 2 s at a million users.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused(*, resume: bool = True) -> Iterator[None]:
    """No cyclic collection inside; nested uses leave it to the outermost one.

    `resume=False` leaves it off after, for a block the process ends with: nothing it
    allocated was ever scanned, so the first collection after it would scan it all
    (most of a plan's objects), just before the process frees everything anyway."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled and resume:
            gc.enable()
