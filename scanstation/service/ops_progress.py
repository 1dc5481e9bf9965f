"""Service operations (issue 14) for progress against the roster: the supervisor's and unit head's
dashboard.
"""

from __future__ import annotations

from scanstation.service.op_types import Operations

OPERATIONS: Operations = {}
