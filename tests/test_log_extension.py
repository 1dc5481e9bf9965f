"""batchformat.log_extension: the checkpoint + consistency proof a package carries, and the receiver's
check that a station's log extends the last checkpoint it acknowledged."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from batchformat import (
    Checkpoint,
    FormatError,
    MerkleProofError,
    MerkleTree,
    NoteFormatError,
    NoteSignatureError,
    SignedCheckpoint,
    canonical_json,
    leaf_hash,
    sign_checkpoint,
    vkey,
)
from batchformat.log_extension import (
    LOG_EXTENSION_FORMAT,
    make_log_extension,
    parse_log_extension,
    verify_extension,
    verify_log_extension,
)

ORIGIN = "scanstation/ST-07"
KEY = Ed25519PrivateKey.generate()
VKEY = vkey(ORIGIN, KEY.public_key())


def log(n: int, salt: str = "") -> MerkleTree:
    return MerkleTree(leaf_hash(f"{salt}entry {i}".encode()) for i in range(n))


def signed(tree: MerkleTree, size: int, key: Ed25519PrivateKey = KEY, origin: str = ORIGIN) -> SignedCheckpoint:
    return sign_checkpoint(Checkpoint(origin, size, tree.root(size)), origin, key)


def test_extension_round_trip_through_json() -> None:
    tree = log(321)
    old, new = signed(tree, 200), signed(tree, 321)
    ext = make_log_extension(new, 200, tree.consistency_proof(200, 321))
    data = canonical_json(ext.to_json())
    parsed = parse_log_extension(json.loads(data))
    assert parsed == ext and ext.to_json()["format"] == LOG_EXTENSION_FORMAT
    assert verify_log_extension(old.note, parsed, VKEY).checkpoint == new.checkpoint
    assert verify_extension(old.note, new.note, parsed.consistency, VKEY).size == 321


def test_first_package_and_same_size() -> None:
    tree = log(50)
    new = signed(tree, 50)
    assert verify_log_extension(None, make_log_extension(new, 0, []), VKEY).size == 50
    assert verify_extension(new.note, new.note, [], VKEY).size == 50
    with pytest.raises(MerkleProofError):
        verify_log_extension(None, make_log_extension(new, 10, tree.consistency_proof(10, 50)), VKEY)


def test_cut_back_or_rewritten_logs_are_refused() -> None:
    tree = log(300)
    acknowledged = signed(tree, 250)
    # cut back to 220 and grown again to 300 with other entries: no valid proof exists
    regrown = MerkleTree([tree.leaf(i) for i in range(220)] + [leaf_hash(b"new %d" % i) for i in range(80)])
    new = signed(regrown, 300)
    with pytest.raises(MerkleProofError):
        verify_extension(acknowledged.note, new.note, regrown.consistency_proof(250, 300), VKEY)
    # simply smaller
    with pytest.raises(MerkleProofError, match="cut back"):
        verify_extension(acknowledged.note, signed(tree, 240).note, [], VKEY)
    # one entry rewritten before the acknowledged size, everything re-hashed and re-signed by the station key
    rewritten = MerkleTree([leaf_hash(b"forged") if i == 17 else tree.leaf(i) for i in range(300)])
    with pytest.raises(MerkleProofError):
        verify_extension(acknowledged.note, signed(rewritten, 300).note, rewritten.consistency_proof(250, 300), VKEY)
    # same size, different root
    with pytest.raises(MerkleProofError):
        verify_extension(acknowledged.note, signed(rewritten, 250).note, [], VKEY)


def test_signatures_and_origins() -> None:
    tree = log(120)
    old = signed(tree, 100)
    proof = tree.consistency_proof(100, 120)
    with pytest.raises(NoteSignatureError):
        verify_extension(old.note, signed(tree, 120, key=Ed25519PrivateKey.generate()).note, proof, VKEY)
    other = Ed25519PrivateKey.generate()
    with pytest.raises(NoteSignatureError):   # another station's checkpoint, even under a correct signature
        verify_extension(None, signed(tree, 120, key=other, origin="scanstation/ST-08").note, [],
                         vkey(ORIGIN, other.public_key()))
    with pytest.raises(MerkleProofError):
        verify_log_extension(old.note, make_log_extension(signed(tree, 120), 90, tree.consistency_proof(90, 120)),
                             VKEY)


@pytest.mark.parametrize("mangle", [
    lambda o: {**o, "format": "x"},
    lambda o: {**o, "old_size": -1},
    lambda o: {**o, "old_size": True},
    lambda o: {**o, "consistency": ["AAAA"]},
    lambda o: {**o, "consistency": ["not base64!"]},
    lambda o: {**o, "checkpoint": 7},
    lambda o: {**o, "extra": 1},
    lambda o: {k: v for k, v in o.items() if k != "checkpoint"},
])
def test_malformed_json_refused(mangle: object) -> None:
    tree = log(20)
    obj = make_log_extension(signed(tree, 20), 10, tree.consistency_proof(10, 20)).to_json()
    with pytest.raises(NoteFormatError):
        parse_log_extension(mangle(obj))  # type: ignore[operator]
    assert issubclass(NoteFormatError, FormatError)
