"""A TCP proxy on loopback that injects network faults into HTTP/1.1 traffic, driven by the test.

    with FaultProxy(server_port) as proxy:
        client = TusClient(proxy.url + "/files/")
        proxy.set_faults(Fault.reset(after_bytes=100_000), Fault.respond(503, nth=2))
        ...
        assert proxy.counters["resets"] == 1

It runs an asyncio loop in a daemon thread.  Requests from the client are parsed just enough (request
line, ``Content-Length``, ``Transfer-Encoding``) to count them on a keep-alive connection and to apply
a fault at an exact byte of one request's body; responses are relayed untouched.  Faults:

* ``reset``: after ``after_bytes`` body bytes have reached the server, both TCP connections are
  aborted with RST (if ``after_bytes`` >= the body length: once the server has answered, so the
  request was processed but the client never sees the reply);
* ``stall``: after ``after_bytes`` body bytes, nothing moves in either direction for ``seconds``,
  then forwarding resumes (a client with a shorter read timeout gives up first);
* ``respond``: the proxy reads the request itself and answers ``status`` (e.g. 503), then closes;
* ``flip``: the body byte at offset ``after_bytes`` is XORed with 0xFF on its way to the server;
* no fault: pass-through.

Counters: connections, requests, resets, stalls, responses, flips, upstream_refused (the server was
down), body_bytes (request body bytes that reached the server, faults included).

A fault fires once, on the ``nth`` request (counted from ``set_faults``) whose method matches
(``method=None`` matches any) and whose target contains ``path_contains`` (if given).  One fault fires
per request.  ``set_target`` points the proxy at another port (a restarted server); ``drop_connections``
aborts every open connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["reset", "stall", "respond", "flip"]
_MAX_HEAD = 64 * 1024
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass
class Fault:
    kind: FaultKind
    method: str | None = "PATCH"
    nth: int = 1
    after_bytes: int = 0
    seconds: float = 0.0
    status: int = 503
    path_contains: str | None = None
    matched: int = field(default=0, compare=False)
    fired: bool = field(default=False, compare=False)

    @classmethod
    def reset(cls, after_bytes: int, *, method: str | None = "PATCH", nth: int = 1) -> Fault:
        return cls("reset", method=method, nth=nth, after_bytes=after_bytes)

    @classmethod
    def stall(cls, seconds: float, *, after_bytes: int = 0, method: str | None = "PATCH", nth: int = 1) -> Fault:
        return cls("stall", method=method, nth=nth, after_bytes=after_bytes, seconds=seconds)

    @classmethod
    def respond(cls, status: int = 503, *, method: str | None = "PATCH", nth: int = 1) -> Fault:
        return cls("respond", method=method, nth=nth, status=status)

    @classmethod
    def flip(cls, offset: int, *, method: str | None = "PATCH", nth: int = 1) -> Fault:
        return cls("flip", method=method, nth=nth, after_bytes=offset)


@dataclass(eq=False)  # hashed by identity: kept in a set of open connections
class _Conn:
    creader: asyncio.StreamReader
    cwriter: asyncio.StreamWriter
    ureader: asyncio.StreamReader
    uwriter: asyncio.StreamWriter
    # Cleared while a reset or stall is pending on the current request, so its response cannot slip
    # through before the fault acts.  requests does not pipeline, so this never holds another response.
    responses_allowed: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when a held response has started to arrive from the server (it has processed the request).
    response_held: asyncio.Event = field(default_factory=asyncio.Event)
    aborted: bool = False


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a dropped link or a crashed peer looks on the wire."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._counters: dict[str, int] = dict.fromkeys(
            ("connections", "requests", "resets", "stalls", "responses", "flips", "upstream_refused", "body_bytes"), 0
        )
        self.requests: list[tuple[str, str]] = []  # (method, target) of every request seen
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._startup_error: BaseException | None = None
        self.port = 0

    # ------------------------------------------------------------------ control (test thread)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        if self._startup_error is not None:
            raise RuntimeError(f"fault proxy failed to start: {self._startup_error}")
        return self

    def close(self) -> None:
        if self._thread is None:
            return
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_faults(self, *faults: Fault) -> None:
        """Replace the pending faults; their request counts start now."""
        with self._lock:
            for fault in faults:
                fault.matched, fault.fired = 0, False
            self._faults = list(faults)

    def pending_faults(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if not f.fired]

    def set_target(self, port: int, host: str = "127.0.0.1") -> None:
        """New connections go to this server (e.g. a receiver restarted on another port)."""
        with self._lock:
            self._target = (host, port)

    def drop_connections(self) -> None:
        """Abort every open connection (RST), as a link drop between requests would."""
        done = threading.Event()

        def drop() -> None:
            for conn in list(self._conns):
                self._abort_conn(conn)
            done.set()

        self._loop.call_soon_threadsafe(drop)
        done.wait(10)

    @property
    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def _count(self, name: str) -> None:
        self._add(name, 1)

    def _add(self, name: str, amount: int) -> None:
        with self._lock:
            self._counters[name] += amount

    # ------------------------------------------------------------------ the loop (proxy thread)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._ready.set()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        except OSError as exc:
            self._startup_error = exc
            return
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        await server.wait_closed()
        for conn in list(self._conns):
            self._abort_conn(conn)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _abort_conn(self, conn: _Conn) -> None:
        conn.aborted = True
        conn.responses_allowed.set()
        _abort(conn.cwriter)
        _abort(conn.uwriter)

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._count("connections")
        with self._lock:
            host, port = self._target
        try:
            try:
                ureader, uwriter = await asyncio.open_connection(host, port)
            except OSError:
                # the server is down (e.g. restarting): the client sees its connection reset
                self._count("upstream_refused")
                _abort(cwriter)
                return
            conn = _Conn(creader, cwriter, ureader, uwriter)
            conn.responses_allowed.set()
            self._conns.add(conn)
            down = asyncio.create_task(self._relay_down(conn))
            try:
                await self._relay_up(conn)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                pass
            finally:
                if not conn.aborted:
                    # the client is done (EOF) or misbehaved: end the upstream side too
                    uwriter.close()
                    cwriter.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(down, 5)
                if not down.done():
                    down.cancel()
                    with contextlib.suppress(BaseException):
                        await down
                self._conns.discard(conn)
                for writer in (uwriter, cwriter):
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()
        except asyncio.CancelledError:
            _abort(cwriter)
        finally:
            self._tasks.discard(task)

    async def _relay_down(self, conn: _Conn) -> None:
        try:
            while True:
                data = await conn.ureader.read(65536)
                if not data:
                    break
                if not conn.responses_allowed.is_set():
                    conn.response_held.set()
                await conn.responses_allowed.wait()
                if conn.aborted:
                    return
                conn.cwriter.write(data)
                await conn.cwriter.drain()
        except (OSError, asyncio.CancelledError):
            return
        if not conn.aborted:
            # the server closed: so does the client side (after what was relayed)
            with contextlib.suppress(OSError):
                conn.cwriter.close()

    def _take_fault(self, method: str, target: str) -> Fault | None:
        with self._lock:
            chosen = None
            for fault in self._faults:
                if fault.fired or (fault.method is not None and fault.method != method):
                    continue
                if fault.path_contains is not None and fault.path_contains not in target:
                    continue
                fault.matched += 1
                if chosen is None and fault.matched >= fault.nth:
                    fault.fired = True
                    chosen = fault
            return chosen

    async def _relay_up(self, conn: _Conn) -> None:
        buf = bytearray()
        while True:
            while b"\r\n\r\n" not in buf:
                if len(buf) > _MAX_HEAD:
                    raise ValueError("request head too large")
                data = await conn.creader.read(65536)
                if not data:
                    return
                buf += data
            end = buf.index(b"\r\n\r\n") + 4
            head = bytes(buf[:end])
            del buf[:end]
            lines = head.decode("latin-1").split("\r\n")
            method, target = [*lines[0].split(" "), "", ""][:2]
            length, chunked = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
                elif name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
            with self._lock:
                self.requests.append((method, target))
                self._counters["requests"] += 1
            fault = self._take_fault(method, target)

            if chunked:
                # not parsed further: the rest of this connection is passed through as is
                conn.uwriter.write(head + bytes(buf))
                buf.clear()
                while data := await conn.creader.read(65536):
                    conn.uwriter.write(data)
                    await conn.uwriter.drain()
                return

            if fault is not None and fault.kind == "respond":
                await self._consume(conn, buf, length)
                self._count("responses")
                reason = _REASONS.get(fault.status, "Error")
                body = f"fault proxy: injected {fault.status}\n".encode()
                conn.cwriter.write(
                    f"HTTP/1.1 {fault.status} {reason}\r\nContent-Type: text/plain\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
                )
                await conn.cwriter.drain()
                conn.cwriter.close()
                conn.uwriter.close()
                conn.aborted = True  # nothing more is relayed on this connection
                return

            holds = fault is not None and fault.kind in ("reset", "stall")
            if holds:
                conn.response_held.clear()
                conn.responses_allowed.clear()
            if fault is not None and fault.kind in ("reset", "stall") and fault.after_bytes == 0:
                if await self._act(conn, fault):
                    return
                fault = None
            conn.uwriter.write(head)
            forwarded = 0
            while forwarded < length:
                if buf:
                    piece = bytearray(buf[: length - forwarded])
                    del buf[: len(piece)]
                else:
                    data = await conn.creader.read(min(65536, length - forwarded))
                    if not data:
                        return  # client gave up mid-body; the finally block closes upstream
                    piece = bytearray(data)
                flip_here = fault is not None and fault.kind == "flip"
                if fault is not None and flip_here and forwarded <= fault.after_bytes < forwarded + len(piece):
                    piece[fault.after_bytes - forwarded] ^= 0xFF
                    self._count("flips")
                    fault = None
                if fault is not None and fault.kind in ("reset", "stall") and fault.after_bytes < length:
                    cut = fault.after_bytes - forwarded
                    if 0 < cut <= len(piece):
                        conn.uwriter.write(bytes(piece[:cut]))
                        await conn.uwriter.drain()
                        self._add("body_bytes", cut)
                        forwarded += cut
                        piece = piece[cut:]
                        if await self._act(conn, fault):
                            return
                        fault = None
                conn.uwriter.write(bytes(piece))
                await conn.uwriter.drain()
                self._add("body_bytes", len(piece))
                forwarded += len(piece)
            if fault is not None and fault.kind in ("reset", "stall"):
                # after_bytes >= the body: act after the whole body, before the response is relayed.  A
                # reset waits until the server has answered: an RST earlier would also discard body bytes
                # still unread in the server's socket, and the point is "stored, but the reply was lost".
                await conn.uwriter.drain()
                if fault.kind == "reset":
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(conn.response_held.wait(), 60)
                if await self._act(conn, fault):
                    return
            if holds:
                conn.responses_allowed.set()

    async def _act(self, conn: _Conn, fault: Fault) -> bool:
        """Apply a reset or stall; True when the connection is gone."""
        if fault.kind == "reset":
            self._count("resets")
            self._abort_conn(conn)
            return True
        self._count("stalls")
        await asyncio.sleep(fault.seconds)
        conn.responses_allowed.set()
        return conn.aborted

    async def _consume(self, conn: _Conn, buf: bytearray, length: int) -> None:
        take = min(len(buf), length)
        del buf[:take]
        remaining = length - take
        while remaining > 0:
            data = await conn.creader.read(min(65536, remaining))
            if not data:
                return
            remaining -= len(data)


def main(argv: list[str] | None = None) -> int:
    """Run a proxy by hand or from a benchmark (its own process, so it does not share the caller's GIL).

    Prints ``listening PORT``, runs until stdin closes, then prints the counters as JSON.
    """
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(prog="python -m tests.faultproxy", description=main.__doc__)
    ap.add_argument("--target", type=int, required=True, help="port of the server on 127.0.0.1")
    ap.add_argument("--reset-after", type=int, help="reset the --nth PATCH after this many body bytes")
    ap.add_argument("--nth", type=int, default=1)
    args = ap.parse_args(argv)
    with FaultProxy(args.target) as proxy:
        if args.reset_after is not None:
            proxy.set_faults(Fault.reset(args.reset_after, nth=args.nth))
        print(f"listening {proxy.port}", flush=True)
        sys.stdin.read()
        print(json.dumps(proxy.counters), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
