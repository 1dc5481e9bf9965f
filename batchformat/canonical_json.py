"""Canonical JSON (sorted keys, no floats, NFC strings) and the strict parser that refuses anything else."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from batchformat.errors import PackageCheckError, PackageError

# --------------------------------------------------------------------------------------------------
# canonical JSON


def canonical_json(obj: Any) -> bytes:
    """The one byte encoding that is signed and hashed: sorted keys, no spaces, UTF-8, NFC strings.

    Only dicts (string keys), lists, strings, ints, bools and None are allowed: floats have no
    canonical text form, so they are refused rather than silently rounded.  Non-NFC strings are
    refused too (write_package normalises before signing) so two spellings of one name can never
    produce two valid signatures.
    """
    _check_canonical_value(obj, "$")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _check_canonical_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        if not unicodedata.is_normalized("NFC", value):
            raise PackageError(f"canonical JSON: string at {where} is not in Unicode NFC")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_canonical_value(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PackageError(f"canonical JSON: key {key!r} at {where} is not a string")
            _check_canonical_value(key, f"{where} key")
            _check_canonical_value(item, f"{where}.{key}")
        return
    raise PackageError(f"canonical JSON: {type(value).__name__} at {where} is not allowed (no floats, no bytes)")


def nfc(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, list | tuple):
        return [nfc(v) for v in value]
    if isinstance(value, dict):
        return {nfc(k): nfc(v) for k, v in value.items()}
    return value


def strict_json(data: bytes, member: str, *, require_canonical: bool) -> Any:
    """Parse JSON refusing duplicate keys, floats, NaN; optionally require the canonical encoding."""

    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise PackageCheckError(member, "json", f"duplicate key {key!r}")
            out[key] = value
        return out

    def no_float(text: str) -> Any:
        raise PackageCheckError(member, "json", f"float {text} not allowed")

    def no_constant(text: str) -> Any:
        raise PackageCheckError(member, "json", f"{text} not allowed")

    try:
        text = data.decode("utf-8")
        value = json.loads(text, object_pairs_hook=no_dupes, parse_float=no_float, parse_constant=no_constant)
    except PackageCheckError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise PackageCheckError(member, "json", f"not valid UTF-8 JSON ({e})") from None
    if require_canonical:
        try:
            again = canonical_json(value)
        except PackageError as e:
            raise PackageCheckError(member, "json", str(e)) from None
        if again != data:
            raise PackageCheckError(member, "json", "not in canonical JSON form")
    return value
