"""Service operations (issue 14) for verification: the supervisor's queue, a batch's detail, page
verdicts, assembly fixes (move, reorder, insert, split, merge, re-index), approve and return.
"""

from __future__ import annotations

from scanstation.service.op_types import Operations

OPERATIONS: Operations = {}
