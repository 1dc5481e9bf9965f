"""The unit head's DSC token through PKCS#11: find it, log in with the PIN, find the signing key and certificate.

Indian Class 3 DSCs keep the key on a USB token; the vendor's PKCS#11 library (``[signoff] pkcs11_module``)
is the only way to it.  Every failure is a :class:`~scanstation.errors.TokenError` naming what is missing or
what the token said.  The PIN is passed to the token and nowhere else: never logged, stored, or put in a
message (the messages below are built from the token's flags, never from the PIN).

The library is initialised for one sign-off and finalised after it (:meth:`OpenToken.close`): a token pulled
out and put back, or another token plugged in, is seen afresh by the next sign-off.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509

from scanstation.config import SignoffSection
from scanstation.errors import TokenError

# One sign-off at a time per process: the library is initialised and finalised around each.
_TOKEN_LOCK = threading.Lock()


@dataclass
class OpenToken:
    """A logged-in session on the unit head's token, its signing key and the certificates it carries."""

    module: str
    label: str
    serial: str
    session: Any  # pkcs11.Session
    key: Any  # pkcs11.PrivateKey (SignMixin)
    key_id: bytes
    key_label: str
    certificate: asn1_x509.Certificate
    others: list[asn1_x509.Certificate] = field(default_factory=list)  # intermediates the token carries
    _lib: Any = None

    def describe(self) -> str:
        return f"token '{self.label}' (serial {self.serial})"

    def close(self) -> None:
        """Close the session and finalise the library (errors of a token already gone ignored)."""
        _close_quietly(self.session, self._lib)


def pin_refusal(flags: int, *, locked: bool = False) -> str:
    """The message for a refused PIN, from the token's own flags (CKF_USER_PIN_*), re-read after the failure.

    PKCS#11 has no standard count of tries left; the token says "few left", "final try" or "locked".
    """
    from pkcs11 import TokenFlag

    if locked or flags & TokenFlag.USER_PIN_LOCKED:
        return ("PIN locked: the token refuses the user PIN after too many wrong tries; the token's "
                "security officer (or the CA's unblock procedure) must unblock it")
    if flags & TokenFlag.USER_PIN_FINAL_TRY:
        return "wrong PIN; the token reports one try left (the final try): a wrong PIN now locks it"
    if flags & TokenFlag.USER_PIN_COUNT_LOW:
        return "wrong PIN; the token reports few tries left (PIN count low)"
    return "wrong PIN (the token does not say how many tries are left)"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip().rstrip("\x00").strip()
    return str(value).strip()


def _load_library(path: str) -> Any:
    import pkcs11

    if not path:
        raise TokenError("no DSC token library is configured: set [signoff] pkcs11_module to the token vendor's "
                         "PKCS#11 library (e.g. /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so for ePass2003)")
    if not Path(path).is_file():
        raise TokenError(f"the DSC token library {path} ([signoff] pkcs11_module) does not exist: install the "
                         "token vendor's driver or correct the path")
    try:
        return pkcs11.lib(path)
    except (pkcs11.PKCS11Error, RuntimeError, OSError) as e:
        raise TokenError(f"the DSC token library {path} ([signoff] pkcs11_module) cannot be loaded: "
                         f"{type(e).__name__} {e}".strip()) from e


def _find_token(lib: Any, cfg: SignoffSection) -> Any:
    import pkcs11

    try:
        slots = lib.get_slots(token_present=True)
        tokens = []
        for slot in slots:
            try:
                tokens.append(slot.get_token())
            except pkcs11.PKCS11Error:
                continue  # an empty or unreadable slot
    except pkcs11.PKCS11Error as e:
        raise TokenError(f"the DSC token library cannot list its slots: {type(e).__name__}") from e
    present = [f"'{_text(t.label)}' (serial {_text(t.serial)})" for t in tokens]
    want_label, want_serial = cfg.token_label.strip(), cfg.token_serial.strip()
    if want_label or want_serial:
        found = [t for t in tokens if (not want_label or _text(t.label) == want_label)
                 and (not want_serial or _text(t.serial) == want_serial)]
        what = " and ".join(x for x in (f"label '{want_label}'" if want_label else "",
                                        f"serial '{want_serial}'" if want_serial else "") if x)
        if not found:
            raise TokenError(f"the DSC token with {what} is not present (plug it in); tokens present: "
                             f"{', '.join(present) or 'none'}")
        if len(found) > 1:
            raise TokenError(f"{len(found)} tokens match {what}: set [signoff] token_serial to pick one")
        return found[0]
    if not tokens:
        raise TokenError("no DSC token is present: plug in the unit head's token")
    if len(tokens) > 1:
        raise TokenError(f"{len(tokens)} tokens are present ({', '.join(present)}): set [signoff] token_label or "
                         "token_serial")
    return tokens[0]


def _login(token: Any, pin: str) -> Any:
    import pkcs11

    if not pin:
        raise TokenError(f"no PIN was given for token '{_text(token.label)}'")
    try:
        return token.open(user_pin=pin)
    except pkcs11.PinIncorrect as e:
        raise TokenError(f"token '{_text(token.label)}': {pin_refusal(_fresh_flags(token))}") from e
    except pkcs11.PinLocked as e:
        raise TokenError(f"token '{_text(token.label)}': {pin_refusal(0, locked=True)}") from e
    except pkcs11.PinLenRange as e:
        raise TokenError(f"token '{_text(token.label)}': wrong PIN (its length is outside what the token "
                         "accepts)") from e
    except pkcs11.PKCS11Error as e:
        raise TokenError(f"token '{_text(token.label)}' refused the log-in: {type(e).__name__}") from e


def _fresh_flags(token: Any) -> int:
    """The token's flags read again (C_GetTokenInfo) after a failed log-in: that is where it says what is left."""
    import pkcs11

    try:
        return int(token.slot.get_token().flags)
    except pkcs11.PKCS11Error:
        return 0


def _certificates(session: Any) -> list[tuple[bytes, str, asn1_x509.Certificate]]:
    from pkcs11 import Attribute, ObjectClass

    out = []
    for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
        try:
            cid = bytes(obj[Attribute.ID])
        except Exception:  # an object without CKA_ID
            cid = b""
        try:
            label = _text(obj[Attribute.LABEL])
        except Exception:
            label = ""
        out.append((cid, label, asn1_x509.Certificate.load(bytes(obj[Attribute.VALUE]))))
    return out


def _signing_key(session: Any, key_label: str, where: str) -> tuple[Any, bytes, str]:
    from pkcs11 import Attribute, ObjectClass

    query: dict[Any, Any] = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.SIGN: True}
    if key_label:
        query[Attribute.LABEL] = key_label
    keys = list(session.get_objects(query))
    if not keys:
        if key_label:
            raise TokenError(f"{where} has no signing key labelled '{key_label}' ([signoff] key_label)")
        raise TokenError(f"{where} holds no signing key")
    if len(keys) > 1:
        labels = ", ".join(repr(_text(k[Attribute.LABEL])) for k in keys)
        raise TokenError(f"{where} holds {len(keys)} signing keys ({labels}): set [signoff] key_label to pick one")
    key = keys[0]
    try:
        key_id = bytes(key[Attribute.ID])
    except Exception:
        key_id = b""
    return key, key_id, _text(key[Attribute.LABEL])


@contextmanager
def open_token(cfg: SignoffSection, pin: str) -> Iterator[OpenToken]:
    """The configured token, logged in with ``pin``, with its signing key and certificate; closed afterwards."""
    import pkcs11

    with _TOKEN_LOCK:
        lib = _load_library(cfg.pkcs11_module)
        session = None
        try:
            token = _find_token(lib, cfg)
            where = f"token '{_text(token.label)}'"
            session = _login(token, pin)
            key, key_id, key_label = _signing_key(session, cfg.key_label.strip(), where)
            certs = _certificates(session)
            mine = [c for cid, _l, c in certs if key_id and cid == key_id] or \
                   [c for _i, label, c in certs if label and label == key_label]
            if not mine:
                raise TokenError(f"{where} holds the key '{key_label}' but no certificate for it (same CKA_ID or "
                                 "label): import the DSC certificate onto the token")
            cert = mine[0]
            others = [c for _i, _l, c in certs if c.dump() != cert.dump()]
            opened = OpenToken(module=cfg.pkcs11_module, label=_text(token.label), serial=_text(token.serial),
                               session=session, key=key, key_id=key_id, key_label=key_label, certificate=cert,
                               others=others, _lib=lib)
        except pkcs11.PKCS11Error as e:
            _close_quietly(session, lib)
            raise TokenError(f"the DSC token failed: {type(e).__name__} (was it pulled out?)") from e
        except BaseException:
            _close_quietly(session, lib)
            raise
        try:
            yield opened
        finally:
            opened.close()


def _close_quietly(session: Any, lib: Any) -> None:
    """Close the session and finalise the library; a token pulled out has nothing left to close."""
    import pkcs11

    for step in ((session.close if session is not None else None), (lib.finalize if lib is not None else None)):
        if step is not None:
            with suppress(pkcs11.PKCS11Error, RuntimeError):
                step()


def token_failure(error: BaseException, what: str) -> TokenError:
    """A PKCS#11 failure during a signature as a TokenError (the token pulled out, the session gone)."""
    return TokenError(f"the DSC token failed during {what}: {type(error).__name__} {error}".strip()
                      + " - nothing was signed; plug the token in and sign off again")
