"""The unit head's sign-off through the station service (issue 15; being built): the kiosk's operations."""

from __future__ import annotations

from scanstation.service.op_types import Operations

OPERATIONS: Operations = {}
