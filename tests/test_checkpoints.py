"""batchformat.checkpoints: C2SP signed notes and tlog checkpoints, checked against the published vectors
of the specification (c2sp.org/signed-note, c2sp.org/tlog-checkpoint) and of golang.org/x/mod/sumdb/note
and sumdb/tlog (the Go implementation the Go checksum database, Sigsum and the witnesses use), not only
against our own round trips."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from batchformat import FormatError
from batchformat.checkpoints import (
    Checkpoint,
    CheckpointFormatError,
    NoteFormatError,
    NoteSignatureError,
    VerifierKey,
    format_checkpoint,
    note_key_id,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    parse_vkey,
    sign_checkpoint,
    sign_note,
    verify_note,
    vkey,
)
from batchformat.merkle import leaf_hash

# golang.org/x/mod sumdb/note/note_test.go (BSD-3-Clause, The Go Authors)
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_B64 = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
ENOCH_B64 = "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ="
PETER_SIG = f"\u2014 PeterNeumann {PETER_B64}\n"
ENOCH_SIG = f"\u2014 EnochRoot {ENOCH_B64}\n"

# c2sp.org/signed-note, "Verifier keys / Example"
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n\u2014 example.com/foo "
             "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")

# c2sp.org/tlog-checkpoint, the example body
SPEC_CHECKPOINT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"

# golang.org/x/mod sumdb/tlog/note_test.go: the checksum database's tree note, a checkpoint body whose
# root is RecordHash("hello world") = the RFC 6962 leaf hash of those bytes.
GO_TREE = "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n"


def peter_private_key() -> Ed25519PrivateKey:
    blob = base64.b64decode(PETER_SKEY.split("+", 4)[4])  # PRIVATE+KEY+name+id+base64(0x01 || seed)
    assert blob[0] == 1
    return Ed25519PrivateKey.from_private_bytes(blob[1:])


# --------------------------------------------------------------------------------------------------
# the published vectors


def test_go_signer_vector_signs_byte_for_byte() -> None:
    key = peter_private_key()
    assert vkey("PeterNeumann", key.public_key()) == PETER_VKEY
    assert note_key_id("PeterNeumann", key.public_key()).hex() == "c74f20a3"
    assert sign_note(GO_TEXT, "PeterNeumann", key) == GO_TEXT + "\n" + PETER_SIG  # Ed25519 is deterministic


def test_go_open_vectors() -> None:
    peter, enoch = parse_vkey(PETER_VKEY), parse_vkey(ENOCH_VKEY)
    both = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert verify_note(both, peter).text == GO_TEXT      # Enoch's signature is ignored by Peter's verifier
    assert len(verify_note(both, enoch).signatures) == 2
    with pytest.raises(NoteSignatureError, match="no signature by the key PeterNeumann"):
        verify_note(GO_TEXT + "\n" + ENOCH_SIG, peter)
    # "Invalid signature": four characters inserted into Peter's signature
    with pytest.raises((NoteSignatureError, NoteFormatError)):
        verify_note(GO_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], peter)


@pytest.mark.parametrize("bad", [
    GO_TEXT,
    GO_TEXT + "\n",
    GO_TEXT + "\n" + PETER_SIG[:-1],
    "\x01" + GO_TEXT + "\n" + PETER_SIG,
    GO_TEXT + "\n" + f"\u2014 Bad Name {PETER_B64}",
    GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    GO_TEXT + "\n" + PETER_SIG * 101,
])
def test_go_malformed_notes(bad: str) -> None:
    with pytest.raises(NoteFormatError):
        parse_note(bad)


def test_go_malformed_note_bytes() -> None:
    with pytest.raises(NoteFormatError, match="UTF-8"):
        parse_note(b"\xff" + (GO_TEXT + "\n" + PETER_SIG).encode())


def test_go_verifier_key_manglings_are_refused() -> None:
    assert parse_vkey(PETER_VKEY).text == PETER_VKEY
    b = PETER_VKEY.encode()
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if i != 0 or j != len(b):
                with pytest.raises(NoteFormatError):
                    parse_vkey(b[i:j].decode())
    for i in range(len(b)):
        mangled = bytearray(b)
        mangled[i] += 1
        with pytest.raises(NoteFormatError):
            parse_vkey(mangled.decode())
    for bad in ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",   # wrong length
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"):          # unknown type
        with pytest.raises(NoteFormatError):
            parse_vkey(bad)


def test_spec_signed_note_example() -> None:
    key = parse_vkey(SPEC_VKEY)
    assert key.name == "example.com/foo" and key.key_id.hex() == "530d903a"
    assert verify_note(SPEC_NOTE, key).text == "This is an example message.\n"
    with pytest.raises(NoteSignatureError, match="does not verify"):
        verify_note(SPEC_NOTE.replace("example message", "exemplary message"), key)


def test_spec_checkpoint_example_and_go_tree_note() -> None:
    cp = parse_checkpoint(SPEC_CHECKPOINT)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert format_checkpoint(cp) == SPEC_CHECKPOINT
    tree = parse_checkpoint(GO_TREE)
    assert tree.size == 123456789012 and tree.root == leaf_hash(b"hello world")
    assert format_checkpoint(Checkpoint("go.sum database tree", 123456789012, leaf_hash(b"hello world"))) == GO_TREE


@pytest.mark.parametrize(("bad", "what"), [
    # the two malformed tree notes of sumdb/tlog/note_test.go
    ("go.sum database tree\n0xabcdef\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n", "decimal"),
    ("go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n", "base64"),
    ("origin\n007\n" + base64.b64encode(bytes(32)).decode() + "\n", "leading zeros"),
    ("origin\n7\n" + base64.b64encode(bytes(31)).decode() + "\n", "31 bytes"),
    ("origin\n7\n" + base64.b64encode(bytes(32)).decode(), "newline"),
    ("origin\n7\n", "2 lines"),
    ("origin\n7\n" + base64.b64encode(bytes(32)).decode() + "\n\next\n", "line 4 is empty"),
    ("\n7\n" + base64.b64encode(bytes(32)).decode() + "\n", "line 1 is empty"),
    ("o\n18446744073709551616\n" + base64.b64encode(bytes(32)).decode() + "\n", "64 bits"),
    ("o\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n", "decimal"),
])
def test_malformed_checkpoints(bad: str, what: str) -> None:
    with pytest.raises(CheckpointFormatError, match=what):
        parse_checkpoint(bad)


# --------------------------------------------------------------------------------------------------
# our own use: sign, open, refuse


def test_checkpoint_round_trip_and_refusals() -> None:
    key = Ed25519PrivateKey.generate()
    origin = "scanstation/ST-01"
    verifier = VerifierKey.from_public_key(origin, key.public_key())
    assert parse_vkey(verifier.text).text == verifier.text
    cp = Checkpoint(origin, 250, leaf_hash(b"x"), ("ext one",))
    signed = sign_checkpoint(cp, origin, key)
    assert signed.note.startswith(f"{origin}\n250\n{base64.b64encode(cp.root).decode()}\next one\n\n\u2014 {origin} ")
    opened = open_checkpoint(signed.note, verifier, origin=origin)
    assert opened.checkpoint == cp and opened.note == signed.note
    assert open_checkpoint(signed.note.encode(), verifier).checkpoint == cp

    with pytest.raises(NoteSignatureError, match="expected"):
        open_checkpoint(signed.note, verifier, origin="scanstation/ST-02")
    # the size or the root changed after signing
    with pytest.raises(NoteSignatureError, match="does not verify"):
        open_checkpoint(signed.note.replace("\n250\n", "\n251\n"), verifier)
    # signed by someone else under the station's name: a different key id, so "no signature by the key"
    forged = sign_checkpoint(cp, origin, Ed25519PrivateKey.generate())
    with pytest.raises(NoteSignatureError, match="no signature"):
        open_checkpoint(forged.note, verifier)
    # a forged signature line that claims the station's key id fails verification outright
    sig_line = forged.note.split("\n\n")[1]
    blob = base64.b64decode(sig_line.split(" ")[2])
    claimed = f"\u2014 {origin} {base64.b64encode(verifier.key_id + blob[4:]).decode()}\n"
    with pytest.raises(NoteSignatureError, match="does not verify"):
        open_checkpoint(cp.body + "\n" + claimed, verifier)
    # a cosignature from an unknown key next to the station's is ignored
    cosigned = signed.note + sign_note(cp.body, "witness.example/w1", Ed25519PrivateKey.generate()).split("\n\n")[1]
    assert open_checkpoint(cosigned, verifier).checkpoint == cp


def test_vkeys_whose_base64_holds_a_plus_sign() -> None:
    seen = 0
    for _ in range(200):
        key = Ed25519PrivateKey.generate().public_key()
        text = vkey("example.com/log", key)
        if "+" in text.split("+", 2)[2]:
            seen += 1
            assert parse_vkey(text).key_id == note_key_id("example.com/log", key)
    assert seen > 0


@pytest.mark.parametrize("text", ["no newline", "tab\there\n", "a\rb\n"])
def test_sign_refuses_bad_text(text: str) -> None:
    with pytest.raises(NoteFormatError):
        sign_note(text, "name", Ed25519PrivateKey.generate())


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b"])
def test_bad_key_names(name: str) -> None:
    with pytest.raises(NoteFormatError):
        sign_note("text\n", name, Ed25519PrivateKey.generate())


def test_errors_are_format_errors_with_the_format_exit_code() -> None:
    for cls in (NoteFormatError, CheckpointFormatError, NoteSignatureError):
        assert issubclass(cls, FormatError) and cls.exit_code == FormatError.exit_code


def test_oversized_note_refused() -> None:
    with pytest.raises(NoteFormatError, match="larger"):
        parse_note(("x" * 70000 + "\n\n" + PETER_SIG).encode())
