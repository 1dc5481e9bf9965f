"""One audit entry and the exact bytes that become its Merkle leaf.

The leaf of entry *n* is the canonical JSON (:func:`batchformat.canonical_json`: sorted keys, no
spaces, UTF-8, NFC) of the object::

    {"action": ..., "actor": ..., "batch": <batch id or null>, "detail": {...}, "role": ...,
     "sealed": <base64 of the age ciphertext of the personal fields, or null>, "seq": n,
     "subject": ..., "ts": "<UTC ISO 8601, milliseconds>"}

and its leaf hash is SHA-256(0x00 || those bytes) (:func:`batchformat.leaf_hash`).  Every stored
column is in the leaf, the batch id included (it decides which entries ``audit show --batch`` lists),
so no column of audit.db can change without changing the leaf.  ``sealed`` is the ciphertext, not the
plaintext: purging a batch destroys the key that opens it, and the leaf, the tree and every
checkpoint stay verifiable.

Canonical JSON has no floats: a float in ``detail`` or ``personal`` (an OCR confidence, say) is
recorded as its shortest ``repr`` string; tuples become lists and strings are NFC-normalised.  Any
other non-JSON value is a programming error (:class:`TypeError` naming where it is).
"""

from __future__ import annotations

import base64
import binascii
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batchformat import canonical_json, leaf_hash

LEAF_FIELDS = ("action", "actor", "batch", "detail", "role", "sealed", "seq", "subject", "ts")


def jsonable(value: Any, where: str = "detail") -> Any:
    """``value`` made representable in canonical JSON (see the module docstring)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, list | tuple):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"audit {where}: key {k!r} is not a string")
            out[unicodedata.normalize("NFC", k)] = jsonable(v, f"{where}.{k}")
        return out
    raise TypeError(f"audit {where}: a {type(value).__name__} cannot be recorded (JSON values only)")


@dataclass(frozen=True)
class AuditEntry:
    """One action: leaf ``seq`` of the audit tree (seq counts from 0 and equals the leaf index)."""

    seq: int
    ts: str
    actor: str
    role: str
    action: str
    subject: str
    detail: dict[str, Any] = field(default_factory=dict)
    sealed: str | None = None
    batch_id: int | None = None

    def leaf_object(self) -> dict[str, Any]:
        return {
            "action": self.action, "actor": self.actor, "batch": self.batch_id, "detail": self.detail,
            "role": self.role, "sealed": self.sealed, "seq": self.seq, "subject": self.subject, "ts": self.ts,
        }

    def leaf_bytes(self) -> bytes:
        """The canonical JSON that is this entry's Merkle leaf."""
        return canonical_json(self.leaf_object())

    def leaf_hash(self) -> bytes:
        return leaf_hash(self.leaf_bytes())

    def detail_text(self) -> str:
        """``detail`` as stored in audit.db (its canonical JSON)."""
        return canonical_json(self.detail).decode("utf-8")

    def sealed_bytes(self) -> bytes | None:
        """The age ciphertext of the personal fields (None when there were none)."""
        if self.sealed is None:
            return None
        try:
            return base64.b64decode(self.sealed, validate=True)
        except (binascii.Error, ValueError):
            return None


def stored_leaf_bytes(entry: AuditEntry, detail_text: str) -> bytes:
    """:meth:`AuditEntry.leaf_bytes` for an entry read back from audit.db, without walking ``detail`` twice.

    ``detail_text`` must already be known canonical (:func:`parse_detail` checked it); the other fields
    are checked here (NFC strings, integers), and the result is byte-for-byte the canonical JSON of
    :meth:`AuditEntry.leaf_object` (a test holds the two together).
    """
    def text(value: str) -> str:
        if not isinstance(value, str) or not unicodedata.is_normalized("NFC", value):
            raise ValueError(f"{value!r} is not an NFC string")
        return json.dumps(value, ensure_ascii=False)

    def integer(value: int | None) -> str:
        if value is None:
            return "null"
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{value!r} is not an integer")
        return str(value)

    sealed = "null" if entry.sealed is None else text(entry.sealed)
    return (f'{{"action":{text(entry.action)},"actor":{text(entry.actor)},"batch":{integer(entry.batch_id)},'
            f'"detail":{detail_text},"role":{text(entry.role)},"sealed":{sealed},"seq":{integer(entry.seq)},'
            f'"subject":{text(entry.subject)},"ts":{text(entry.ts)}}}').encode()


def parse_detail(text: str) -> dict[str, Any]:
    """The stored ``detail`` column back as a dict; ValueError unless it is a canonical JSON object."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("detail is not a JSON object")
    if canonical_json(value).decode("utf-8") != text:
        raise ValueError("detail is not in canonical JSON form")
    return value
