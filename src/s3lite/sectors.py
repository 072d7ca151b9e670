"""The ring's sector count, shared by every layer (a leaf module: it imports nothing).

360 sectors: enough that each of dozens of nodes owns several (so arcs can be split
finely), few enough that the sector -> owner table is a 360-entry tuple.
"""

from __future__ import annotations

from .errors import InvalidName

SECTORS = 360


def check_sector(sector: object) -> int:
    """``sector`` if it is an int in [0, 360) (bools refused), else InvalidName."""
    if isinstance(sector, bool) or not isinstance(sector, int) or not 0 <= sector < SECTORS:
        raise InvalidName(f"sector must be an integer in [0, {SECTORS}), got {sector!r}")
    return sector
