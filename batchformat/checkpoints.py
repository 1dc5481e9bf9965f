"""Signed tree heads: C2SP tlog-checkpoint bodies in the C2SP signed-note format, Ed25519 only.

A checkpoint (https://c2sp.org/tlog-checkpoint) is the note text::

    <origin>\\n<tree size in decimal>\\n<base64 of the 32-byte RFC 6962 root>\\n[<extension line>\\n ...]

and a signed note (https://c2sp.org/signed-note) is that text, a blank line, and one or more lines
``— <key name> <base64(4-byte key id || signature)>\\n`` (U+2014 EM DASH).  An Ed25519 key's id is the
first four bytes of SHA-256(key name || 0x0A || 0x01 || 32-byte public key), and its verifier key
("vkey") is the text ``<key name>+<hex key id>+<base64(0x01 || public key)>``.  This is the format of
golang.org/x/mod/sumdb/note, Sigsum and the transparency-dev witnesses; the tests check the published
vectors of the specification and of the Go implementation.

Parsing is strict: a note that is not valid UTF-8, holds a control character other than newline, has
no signature block, a malformed signature line, a bad key name, more than :data:`MAX_SIGNATURES`
signatures or more than :data:`MAX_NOTE_BYTES` bytes raises :class:`NoteFormatError`; a checkpoint
body with fewer than three lines, an empty line, a size with leading zeros or a root that is not the
canonical base64 of 32 bytes raises :class:`CheckpointFormatError`.  Verification follows the
specification: signatures from other keys are ignored, a signature by the known key (name and id both
match) that fails rejects the whole note, and a note without a good signature by the known key is
rejected (:class:`NoteSignatureError`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from batchformat.errors import FormatError

SIGNATURE_TYPE_ED25519 = 0x01
EM_DASH = "\u2014"
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 64 * 1024

_SIG_PREFIX = EM_DASH + " "
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX_ID = re.compile(r"[0-9a-f]{8}")


class NoteFormatError(FormatError):
    """A signed note or verifier key is malformed; the message names the part and the rule broken."""


class CheckpointFormatError(NoteFormatError):
    """A checkpoint's note text is not a C2SP tlog-checkpoint body; the message names the line."""


class NoteSignatureError(FormatError):
    """A signed note has no valid signature by the expected key (or one by that key fails to verify)."""


# --------------------------------------------------------------------------------------------------
# keys


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _check_key_name(name: str, what: str = "key name") -> None:
    if not isinstance(name, str) or not name:
        raise NoteFormatError(f"{what} must be a non-empty string")
    if "+" in name or any(ch.isspace() or unicodedata.category(ch) == "Zs" for ch in name):
        raise NoteFormatError(f"{what} {name!r} must not contain spaces or '+'")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise NoteFormatError(f"{what} {name!r} must not contain control characters")


def note_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte id of an Ed25519 note key: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    _check_key_name(name)
    data = name.encode("utf-8") + b"\n" + bytes([SIGNATURE_TYPE_ED25519]) + _raw(public_key)
    return hashlib.sha256(data).digest()[:4]


@dataclass(frozen=True)
class VerifierKey:
    """An Ed25519 note verifier: key name, 4-byte key id and public key."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey) -> VerifierKey:
        return cls(name, note_key_id(name, public_key), public_key)

    @property
    def text(self) -> str:
        """The vkey form ``<name>+<hex key id>+<base64(0x01 || public key)>``."""
        blob = bytes([SIGNATURE_TYPE_ED25519]) + _raw(self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(blob).decode('ascii')}"

    def __str__(self) -> str:
        return self.text


def vkey(name: str, public_key: Ed25519PublicKey) -> str:
    """The verifier-key text of an Ed25519 key under ``name``."""
    return VerifierKey.from_public_key(name, public_key).text


def _b64decode_strict(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise NoteFormatError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteFormatError(f"{what} is not canonical base64 (padding or trailing bits)")
    return raw


def parse_vkey(text: str) -> VerifierKey:
    """Parse an Ed25519 verifier key; the key id must be the one its name and key imply."""
    parts = text.split("+", 2)  # the base64 key may itself hold '+'
    if len(parts) != 3:
        raise NoteFormatError("verifier key must be <name>+<hex key id>+<base64 key> (three parts)")
    name, id_hex, key_b64 = parts
    _check_key_name(name, "verifier key name")
    if not _HEX_ID.fullmatch(id_hex):
        raise NoteFormatError(f"verifier key id {id_hex!r} must be 8 lowercase hex digits")
    blob = _b64decode_strict(key_b64, "verifier key material")
    if len(blob) != 33 or blob[0] != SIGNATURE_TYPE_ED25519:
        raise NoteFormatError("verifier key material must be 0x01 (Ed25519) followed by a 32-byte public key")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(blob[1:])
    except ValueError:
        raise NoteFormatError("verifier key material is not an Ed25519 public key") from None
    key = VerifierKey.from_public_key(name, public_key)
    if key.key_id.hex() != id_hex:
        raise NoteFormatError(f"verifier key id {id_hex} does not match its name and key ({key.key_id.hex()})")
    return key


# --------------------------------------------------------------------------------------------------
# signed notes


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key id, signature bytes (64 for Ed25519)."""

    name: str
    key_id: bytes
    signature: bytes

    @property
    def line(self) -> str:
        blob = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{_SIG_PREFIX}{self.name} {blob}\n"


@dataclass(frozen=True)
class SignedNote:
    """A parsed (not yet verified) note: the signed text (ending in newline) and its signatures."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def render(self) -> str:
        return self.text + "\n" + "".join(s.line for s in self.signatures)


def _check_text(text: str, what: str) -> None:
    for ch in text:
        if ord(ch) < 0x20 and ch != "\n":
            raise NoteFormatError(f"{what} holds the control character U+{ord(ch):04X} (only newline is allowed)")


def sign_note(text: str, name: str, key: Ed25519PrivateKey) -> str:
    """The signed note: ``text`` (must end in a newline), a blank line, one Ed25519 signature line."""
    if not text.endswith("\n"):
        raise NoteFormatError("note text must end with a newline")
    _check_text(text, "note text")
    _check_key_name(name)
    key_id = note_key_id(name, key.public_key())
    signature = NoteSignature(name, key_id, key.sign(text.encode("utf-8")))
    return SignedNote(text, (signature,)).render()


def parse_note(note: str | bytes) -> SignedNote:
    """Split a signed note into text and signature lines, refusing anything the format does not allow."""
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise NoteFormatError(f"note is larger than {MAX_NOTE_BYTES} bytes")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteFormatError("note is not valid UTF-8") from None
    elif len(note.encode("utf-8", errors="surrogatepass")) > MAX_NOTE_BYTES:
        raise NoteFormatError(f"note is larger than {MAX_NOTE_BYTES} bytes")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in note):
        raise NoteFormatError("note is not valid UTF-8 (lone surrogate)")
    _check_text(note, "note")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteFormatError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2:]
    if not block:
        raise NoteFormatError("note has no signature lines after its blank line")
    if not block.endswith("\n"):
        raise NoteFormatError("note's last signature line does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteFormatError(f"note has {len(lines)} signature lines (at most {MAX_SIGNATURES})")
    signatures = []
    for number, line in enumerate(lines, start=1):
        where = f"signature line {number}"
        if not line.startswith(_SIG_PREFIX):
            raise NoteFormatError(f"{where} does not start with an em dash (U+2014) and a space")
        name, sep, blob = line[len(_SIG_PREFIX):].partition(" ")
        if not sep:
            raise NoteFormatError(f"{where} has no space between key name and signature")
        _check_key_name(name, f"{where}: key name")
        raw = _b64decode_strict(blob, f"{where}: signature")
        if len(raw) < 5:
            raise NoteFormatError(f"{where}: signature is shorter than a key id and one byte")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return SignedNote(text, tuple(signatures))


def verify_note(note: str | bytes, verifier: VerifierKey) -> SignedNote:
    """Parse ``note`` and check its signature by ``verifier``; returns the parsed note.

    Signatures by other keys (a different name or key id) are ignored, as the specification requires.
    """
    parsed = parse_note(note)
    good = False
    for sig in parsed.signatures:
        if sig.name != verifier.name or sig.key_id != verifier.key_id:
            continue
        try:
            if len(sig.signature) != 64:
                raise InvalidSignature
            verifier.public_key.verify(sig.signature, parsed.text.encode("utf-8"))
        except InvalidSignature:
            raise NoteSignatureError(
                f"the signature by {verifier.name}+{verifier.key_id.hex()} does not verify (note altered or forged)"
            ) from None
        good = True
    if not good:
        raise NoteSignatureError(f"note carries no signature by the key {verifier.name}+{verifier.key_id.hex()}")
    return parsed


# --------------------------------------------------------------------------------------------------
# checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, size, 32-byte RFC 6962 root, optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    @property
    def body(self) -> str:
        """The checkpoint's note text (what is signed)."""
        return format_checkpoint(self)


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint and its signed note text (what is stored, carried in packages and compared)."""

    checkpoint: Checkpoint
    note: str

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


def format_checkpoint(cp: Checkpoint) -> str:
    """``<origin>\\n<size>\\n<base64 root>\\n`` plus extension lines, after checking every part."""
    _check_origin(cp.origin)
    if isinstance(cp.size, bool) or not isinstance(cp.size, int) or cp.size < 0 or cp.size >= 1 << 64:
        raise CheckpointFormatError(f"checkpoint size {cp.size!r} must be an integer in 0..2^64-1")
    if not isinstance(cp.root, bytes) or len(cp.root) != 32:
        raise CheckpointFormatError("checkpoint root must be 32 bytes")
    for ext in cp.extensions:
        if not ext or "\n" in ext:
            raise CheckpointFormatError("checkpoint extension lines must be non-empty single lines")
        _check_text(ext, "checkpoint extension line")
    lines = [cp.origin, str(cp.size), base64.b64encode(cp.root).decode("ascii"), *cp.extensions]
    return "".join(line + "\n" for line in lines)


def _check_origin(origin: str) -> None:
    if not isinstance(origin, str) or not origin or "\n" in origin:
        raise CheckpointFormatError("checkpoint origin must be a non-empty single line")
    _check_text(origin, "checkpoint origin")


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body (a note's text, ending in a newline)."""
    if not text.endswith("\n"):
        raise CheckpointFormatError("checkpoint text must end with a newline")
    _check_text(text, "checkpoint text")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointFormatError(f"checkpoint has {len(lines)} lines; needs origin, size and root")
    for number, line in enumerate(lines, start=1):
        if not line:
            raise CheckpointFormatError(f"checkpoint line {number} is empty")
    origin, size_text, root_text, *extensions = lines
    if not _DECIMAL.fullmatch(size_text):
        raise CheckpointFormatError(f"checkpoint size {size_text!r} is not a decimal number without leading zeros")
    size = int(size_text)
    if size >= 1 << 64:
        raise CheckpointFormatError(f"checkpoint size {size_text} does not fit in 64 bits")
    try:
        root = _b64decode_strict(root_text, "checkpoint root")
    except NoteFormatError as e:
        raise CheckpointFormatError(e.message) from None
    if len(root) != 32:
        raise CheckpointFormatError(f"checkpoint root is {len(root)} bytes, not 32")
    return Checkpoint(origin, size, root, tuple(extensions))


def sign_checkpoint(cp: Checkpoint, name: str, key: Ed25519PrivateKey) -> SignedCheckpoint:
    """Sign ``cp`` with ``key`` under the key name ``name`` (by convention the origin)."""
    return SignedCheckpoint(cp, sign_note(format_checkpoint(cp), name, key))


def open_checkpoint(note: str | bytes, verifier: VerifierKey, *, origin: str | None = None) -> SignedCheckpoint:
    """Verify a signed checkpoint note with ``verifier`` and parse its body.

    With ``origin``, the checkpoint must name that origin (a note from another log is refused even if
    the same key signed it).
    """
    parsed = verify_note(note, verifier)
    cp = parse_checkpoint(parsed.text)
    if origin is not None and cp.origin != origin:
        raise NoteSignatureError(f"checkpoint is for the log {cp.origin!r}, expected {origin!r}")
    text = note.decode("utf-8") if isinstance(note, bytes) else note
    return SignedCheckpoint(cp, text)
