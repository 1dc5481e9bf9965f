"""Service operations (issue 14) for the roster: search by code or name (Devanagari or Latin) and the
index check at entry.
"""

from __future__ import annotations

from scanstation.service.op_types import Operations

OPERATIONS: Operations = {}
