"""Service operations (issue 14) for the operator's screen: scan profiles, scanning with progress
events, device prompts answered with "continue", rescans.
"""

from __future__ import annotations

from scanstation.service.op_types import Operations

OPERATIONS: Operations = {}
