"""What a service operation is: a handler called with the service, the signed-in caller, the request's
arguments and an emitter for progress events.  Shared by :mod:`scanstation.service.server` and the modules
that contribute operations (``ops_*``), so that those need not import the server."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scanstation.errors import StateError

if TYPE_CHECKING:
    from scanstation.service.core import Caller, StationService

Emit = Callable[[str, dict[str, Any]], None]
Handler = Callable[["StationService", "Caller | None", dict[str, Any], Emit], Any]
# name -> (handler, needs a session)
Operations = dict[str, tuple[Handler, bool]]


def text_arg(args: dict[str, Any], key: str) -> str:
    """A required text field of a request."""
    value = args.get(key)
    if not isinstance(value, str):
        raise StateError(f"request field '{key}' must be text")
    return value


def int_arg(args: dict[str, Any], key: str) -> int:
    """A required whole-number field of a request (not a bool)."""
    value = args.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise StateError(f"request field '{key}' must be a whole number")
    return value
