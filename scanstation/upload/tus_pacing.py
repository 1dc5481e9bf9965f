"""How often and how fast the tus client sends: backoff between retries, and the bandwidth cap on a PATCH body.

``RetryPolicy`` is public (the upload queue uses it for its own retries too, and callers configure it);
``TokenBucket`` and ``ChunkBody`` are the tus client's (scanstation/upload/tus_client.py) own machinery.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: delay n = min(max_delay, base_delay * 2**(n-1)) * (1 - jitter*U[0,1)).

    ``max_attempts`` counts tries of one step without progress (the first try included); any confirmed
    progress of an upload resets the count.
    """

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("RetryPolicy.jitter must be within [0, 1]")

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        exponent = min(max(failures - 1, 0), 62)  # 2**62 * base is past any max_delay; avoids overflow
        raw = min(self.max_delay, self.base_delay * (2.0**exponent))
        return raw * (1.0 - self.jitter * rng.random())


class BodyCancelled(Exception):
    """Raised inside the PATCH body iterator to abort a request mid-body."""


class TokenBucket:
    """Paces bytes to ``rate`` per second, with a burst of at most ``capacity`` bytes.

    Uses the real clock and ``time.sleep`` (not the client's injectable backoff sleep): pacing is
    about the wire, and a test that fakes backoff delays still wants a real cap.
    """

    def __init__(self, rate: int, capacity: int) -> None:
        self._rate = float(rate)
        self._capacity = float(capacity)
        self._tokens = 0.0  # start empty: the cap holds from the first byte
        self._stamp = time.monotonic()

    def take(self, n: int) -> None:
        while True:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens >= n:
                self._tokens -= n
                return
            time.sleep((n - self._tokens) / self._rate)


class ChunkBody:
    """A PATCH body that requests sends with a Content-Length (it has ``__len__``), block by block.

    Iterating is what lets the bandwidth cap pace a 4 MiB chunk instead of bursting it, and lets a
    cancel abort the request mid-body.  A fresh instance is made for every attempt.
    """

    def __init__(self, data: bytes, block: int, bucket: TokenBucket | None, cancel: threading.Event | None) -> None:
        self._data = memoryview(data)
        self._block = block
        self._bucket = bucket
        self._cancel = cancel

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self._data), self._block):
            if self._cancel is not None and self._cancel.is_set():
                raise BodyCancelled()
            piece = self._data[start : start + self._block]
            if self._bucket is not None:
                self._bucket.take(len(piece))
            yield bytes(piece)  # a small copy; requests' typing (and some adapters) want bytes
