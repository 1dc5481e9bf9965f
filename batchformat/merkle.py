"""RFC 6962 / RFC 9162 Merkle tree hashing: tree heads, inclusion and consistency proofs.

The tree is the one of RFC 9162 §2.1 (identical to RFC 6962 §2.1) with SHA-256:

* a leaf hash is ``SHA-256(0x00 || leaf data)`` (:func:`leaf_hash`),
* an interior node is ``SHA-256(0x01 || left || right)`` (:func:`node_hash`),
* the head of n leaves (MTH) splits them at k, the largest power of two smaller than n, and the head of
  the empty tree is ``SHA-256()`` (:func:`root_hash`).

Proofs are lists of 32-byte hashes, in the order RFC 9162 §2.1.3.1 (PATH) and §2.1.4.1 (PROOF /
SUBPROOF) produce them, so they interoperate with Certificate Transparency logs and with
transparency-dev/merkle (the tests check its published vectors).  The verifiers implement the
bit-wise algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 and raise :class:`MerkleProofError` naming what
failed; they never return False.

:class:`MerkleTree` holds the leaf hashes of a growing log and caches every complete (power-of-two,
aligned) subtree, so the head at any size and any proof costs O(log² n) hashes after the O(n) build;
the module-level functions are the stateless form for a list of leaf hashes.

A consistency proof from the empty tree does not exist (RFC 9162 defines none and transparency-dev
refuses one): any log extends the empty tree, so callers treat ``old_size == 0`` as trivially
consistent and must not ask :func:`verify_consistency` to check it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from batchformat.errors import FormatError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class MerkleProofError(FormatError):
    """A Merkle inclusion or consistency proof (or its sizes or hashes) does not verify; says which part."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k (n >= 2): the split point of MTH."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise MerkleProofError(f"{what} must be {HASH_SIZE} bytes")


# --------------------------------------------------------------------------------------------------
# the tree


class MerkleTree:
    """The leaf hashes of an append-only log, with every complete subtree's hash cached.

    ``levels[h][i]`` is the hash of the complete subtree of ``2**h`` leaves starting at leaf ``i * 2**h``.
    Appending a leaf adds at most one node per level, so building a tree of n leaves costs n - 1 node
    hashes, and :meth:`root`, :meth:`inclusion_proof` and :meth:`consistency_proof` for any earlier size
    reuse the cache.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for h in leaf_hashes:
            self.append(h)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def __len__(self) -> int:
        return self.size

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def append(self, leaf: bytes) -> int:
        """Add a leaf hash (not leaf data: see :func:`leaf_hash`); returns its index."""
        if not isinstance(leaf, bytes | bytearray) or len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash must be {HASH_SIZE} bytes")
        node = bytes(leaf)
        level = 0
        while True:
            row = self._levels[level]
            row.append(node)
            if len(row) % 2:
                break
            node = node_hash(row[-2], row[-1])
            level += 1
            if level == len(self._levels):
                self._levels.append([])
        return self.size - 1

    def truncate(self, size: int) -> None:
        """Forget every leaf from ``size`` on (used when a reload finds a shorter log)."""
        if not 0 <= size <= self.size:
            raise ValueError(f"cannot truncate a tree of {self.size} leaves to {size}")
        for h, row in enumerate(self._levels):
            del row[size >> h:]

    def _range(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for the ranges the RFC recursion visits (start aligned to the split)."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        h = n.bit_length() - 1
        if n == 1 << h and start % n == 0:
            return self._levels[h][start >> h]
        k = _largest_power_of_two_below(n)
        return node_hash(self._range(start, start + k), self._range(start + k, end))

    def _checked_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is outside 0..{self.size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """The tree head (MTH) of the first ``size`` leaves (all of them by default)."""
        return self._range(0, self._checked_size(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1."""
        n = self._checked_size(size)
        if not 0 <= index < n:
            raise ValueError(f"leaf index {index} is outside a tree of {n} leaves")
        return self._path(index, 0, n)

    def _path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _largest_power_of_two_below(n)
        if m < k:
            return [*self._path(m, start, start + k), self._range(start + k, end)]
        return [*self._path(m - k, start + k, end), self._range(start, start + k)]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1 (empty when the sizes are equal)."""
        n = self._checked_size(new_size)
        if not 0 < old_size <= n:
            raise ValueError(f"no consistency proof from size {old_size} to size {n} (needs 0 < old <= new)")
        return self._subproof(old_size, 0, n, True)

    def _subproof(self, m: int, start: int, end: int, b: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if b else [self._range(start, end)]
        k = _largest_power_of_two_below(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, b), self._range(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self._range(start, start + k)]


# --------------------------------------------------------------------------------------------------
# stateless forms over a list of leaf hashes


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes."""
    return MerkleTree(leaf_hashes).root()


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of all ``leaf_hashes``."""
    return MerkleTree(leaf_hashes).inclusion_proof(index)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """The consistency proof from the first ``old_size`` leaves to all ``leaf_hashes``."""
    return MerkleTree(leaf_hashes).consistency_proof(old_size)


# --------------------------------------------------------------------------------------------------
# verification (RFC 9162 §2.1.3.2 and §2.1.4.2)


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The tree head that ``proof`` implies for ``leaf`` at ``index`` in a tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise MerkleProofError(f"inclusion proof: leaf index {index} is not inside a tree of {size} leaves")
    _check_hash(leaf, "inclusion proof: the leaf hash")
    fn, sn = index, size - 1
    r = bytes(leaf)
    for i, p in enumerate(proof):
        _check_hash(p, f"inclusion proof: hash {i}")
        if sn == 0:
            raise MerkleProofError(f"inclusion proof: too long ({len(proof)} hashes for leaf {index} of {size})")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleProofError(f"inclusion proof: too short ({len(proof)} hashes for leaf {index} of {size})")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf`` (a leaf hash) is leaf ``index`` of the tree of ``size`` leaves with head ``root``."""
    _check_hash(root, "inclusion proof: the root hash")
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise MerkleProofError(f"inclusion proof: leaf {index} does not lead to the root of the tree of {size} leaves")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Check that the tree of ``new_size`` leaves (head ``new_root``) extends the one of ``old_size``.

    Requires ``0 < old_size <= new_size`` (see the module docstring for the empty tree); equal sizes
    need an empty proof and equal roots.
    """
    _check_hash(old_root, "consistency proof: the old root")
    _check_hash(new_root, "consistency proof: the new root")
    for i, c in enumerate(proof):
        _check_hash(c, f"consistency proof: hash {i}")
    if new_size < old_size:
        raise MerkleProofError(f"consistency proof: the new size {new_size} is smaller than the old size {old_size}")
    if old_size <= 0:
        raise MerkleProofError("consistency proof: none exists from the empty tree (any log extends it)")
    if old_size == new_size:
        if proof:
            raise MerkleProofError("consistency proof: must be empty between trees of the same size")
        if old_root != new_root:
            raise MerkleProofError(f"consistency proof: two different roots for the same size {old_size}")
        return
    if not proof:
        raise MerkleProofError(f"consistency proof: empty, but the sizes differ ({old_size} -> {new_size})")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise MerkleProofError(f"consistency proof: too long ({len(proof)} hashes for {old_size} -> {new_size})")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleProofError(f"consistency proof: too short ({len(proof)} hashes for {old_size} -> {new_size})")
    if fr != old_root:
        raise MerkleProofError(f"consistency proof: does not lead to the old root (size {old_size})")
    if sr != new_root:
        raise MerkleProofError(f"consistency proof: does not lead to the new root (size {new_size})")
