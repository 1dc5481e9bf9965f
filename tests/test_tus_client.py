"""The tus client against real servers on loopback: a strict small tus server (tests/minitus.py) behind the
fault proxy, a deliberately hostile scripted server, and an https server with its own CA."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from scanstation.errors import PortalRejected, UploadError
from scanstation.upload.tus_client import Progress, RetryPolicy, TusClient, UploadCancelled, encode_metadata
from tests.faultproxy import Fault, FaultProxy
from tests.minitus import MiniTus
from tests.tlskit import self_signed

pytestmark = pytest.mark.timeout(180)

CHUNK = 256 * 1024
FAST = RetryPolicy(max_attempts=6, base_delay=0.02, max_delay=0.2)


@pytest.fixture
def server() -> Iterator[MiniTus]:
    with MiniTus() as srv:
        yield srv


@pytest.fixture
def proxy(server: MiniTus) -> Iterator[FaultProxy]:
    with FaultProxy(server.port) as prx:
        yield prx


def _upload_via(proxy: FaultProxy, data: bytes) -> str:
    """Upload ``data`` through the fault proxy in CHUNK-sized PATCHes, fast retries; the upload URL."""
    with TusClient(proxy.url + "/files/", chunk_bytes=CHUNK, retry=FAST) as client:
        return client.upload(io.BytesIO(data), len(data))


def _data(n: int) -> bytes:
    return os.urandom(n)


# ---------------------------------------------------------------------------------------------- happy paths


def test_multi_chunk_upload_reports_progress(server: MiniTus, tmp_path: Path) -> None:
    data = _data(3 * CHUNK + 1234)
    path = tmp_path / "pkg.bin"
    path.write_bytes(data)
    created: list[str] = []
    seen: list[Progress] = []
    with TusClient(server.endpoint, chunk_bytes=CHUNK) as client:
        url = client.upload(path, len(data), metadata={"filename": "pkg.bin"}, on_created=created.append,
                            on_progress=seen.append)
    assert created == [url] and url.startswith(server.endpoint)
    assert server.data(url) == data
    assert [p.offset for p in seen] == [0, CHUNK, 2 * CHUNK, 3 * CHUNK, len(data)]
    assert all(p.url == url and p.size == len(data) for p in seen)
    assert seen[-1].bytes_per_second > 0
    assert server.counters["patches"] == 4 and server.counters.get("checksum_failures", 0) == 0


def test_server_info(server: MiniTus) -> None:
    with TusClient(server.endpoint) as client:
        info = client.server_info()
    assert info == {"versions": ["1.0.0"], "extensions": ["creation", "checksum", "termination", "expiration"],
                    "max_size": server.max_size, "checksum_algorithms": ["sha256"]}


def test_absolute_location_on_same_origin_is_accepted() -> None:
    with MiniTus(relative_location=False) as srv, TusClient(srv.endpoint) as client:
        url = client.create(10, {})
        assert url.startswith(srv.endpoint)


def test_empty_upload(server: MiniTus) -> None:
    with TusClient(server.endpoint) as client:
        url = client.upload(io.BytesIO(b""), 0)
    assert server.data(url) == b"" and server.counters.get("patches", 0) == 0


def test_metadata_encoding() -> None:
    assert encode_metadata({"filename": "a.bin", "empty": "", "hi": "हिंदी"}) == (
        "filename YS5iaW4=,empty,hi 4KS54KS/4KSC4KSm4KWA"
    )
    for bad in ("", "has space", "comma,key"):
        with pytest.raises(ValueError, match="metadata key"):
            encode_metadata({bad: "x"})


def test_resume_from_persisted_url_sends_only_the_rest(server: MiniTus) -> None:
    data = _data(4 * CHUNK)
    with TusClient(server.endpoint, chunk_bytes=CHUNK) as client:
        url = client.create(len(data), {})
        # a previous process got one chunk acknowledged and then died
        with pytest.raises(UploadError, match="shorter than the declared size"):
            client.upload(io.BytesIO(data[:CHUNK]), len(data), url=url)
        patches = server.counters["patches"]
        seen: list[int] = []
        assert client.upload(io.BytesIO(data), len(data), url=url, on_progress=lambda p: seen.append(p.offset)) == url
    assert server.counters["patches"] - patches == 3
    assert seen == [CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK]
    assert server.data(url) == data


def test_gone_upload_is_created_anew(server: MiniTus) -> None:
    data = _data(CHUNK + 10)
    created: list[str] = []
    with TusClient(server.endpoint, chunk_bytes=CHUNK) as client:
        stale = server.endpoint + "0" * 32  # expired and cleaned up on the server: HEAD answers 404
        url = client.upload(io.BytesIO(data), len(data), url=stale, on_created=created.append)
    assert created == [url] and url != stale
    assert server.data(url) == data


def test_known_expiry_skips_the_doomed_url(server: MiniTus) -> None:
    data = _data(100)
    with TusClient(server.endpoint) as client:
        old = client.create(len(data), {})
        heads = server.counters.get("heads", 0)
        past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        url = client.upload(io.BytesIO(data), len(data), url=old, expires=past)
    assert url != old and server.data(url) == data
    assert server.counters.get("heads", 0) == heads  # not even asked


def test_expiry_from_the_server_is_reported() -> None:
    with MiniTus(expires_seconds=3600) as srv, TusClient(srv.endpoint) as client:
        seen: list[Progress] = []
        client.upload(io.BytesIO(b"x" * 10), 10, on_progress=seen.append)
    expires = seen[-1].expires
    assert expires is not None
    assert dt.timedelta(minutes=55) < expires - dt.datetime.now(dt.UTC) < dt.timedelta(minutes=65)


def test_expiry_is_rebased_on_the_station_clock() -> None:
    """The portal's clock is ten days behind ours: its Upload-Expires must not look past to us."""
    from email.utils import format_datetime

    server_now = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    stamps = [("Date", format_datetime(server_now, usegmt=True)),
              ("Upload-Expires", format_datetime(server_now + dt.timedelta(hours=1), usegmt=True))]
    script: dict[str, list[Reply]] = {"POST": [(201, [*TUS, ("Location", "/files/abc"), *stamps], b"")],
                                      "PATCH": [(204, [*TUS, ("Upload-Offset", "10"), *stamps], b"")]}
    seen: list[Progress] = []
    with _Scripted(script) as srv, TusClient(srv.url + "/files/") as client:
        client.upload(io.BytesIO(b"0123456789"), 10, on_progress=seen.append)
    assert [m for m, _, _ in srv.seen] == ["POST", "PATCH"]  # not recreated as "expired"
    expires = seen[-1].expires
    assert expires is not None
    assert dt.timedelta(minutes=55) < expires - dt.datetime.now(dt.UTC) < dt.timedelta(minutes=65)


def test_stored_url_of_another_origin_is_not_contacted(server: MiniTus) -> None:
    created: list[str] = []
    with TusClient(server.endpoint) as client:
        url = client.upload(io.BytesIO(b"abc"), 3, url="http://other.invalid/files/x", on_created=created.append)
    assert created == [url] and url.startswith(server.endpoint)


def test_terminate(server: MiniTus) -> None:
    with TusClient(server.endpoint) as client:
        url = client.create(10, {})
        client.terminate(url)
        with pytest.raises(UploadError, match="no longer exists"):
            client.offset(url)
        client.terminate(url)  # idempotent


def test_cancel_between_chunks_then_resume(server: MiniTus) -> None:
    data = _data(4 * CHUNK)
    cancel = threading.Event()
    urls: list[str] = []

    def on_progress(p: Progress) -> None:
        if p.offset >= CHUNK:
            cancel.set()

    with TusClient(server.endpoint, chunk_bytes=CHUNK) as client:
        with pytest.raises(UploadCancelled, match=f"confirmed offset {CHUNK}"):
            client.upload(io.BytesIO(data), len(data), on_created=urls.append, on_progress=on_progress,
                          cancel=cancel)
        assert client.offset(urls[0])[0] == CHUNK
        assert client.upload(io.BytesIO(data), len(data), url=urls[0]) == urls[0]
    assert server.data(urls[0]) == data


def test_cancel_aborts_a_paced_chunk_mid_body(server: MiniTus) -> None:
    data = _data(2_000_000)
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    urls: list[str] = []
    with TusClient(server.endpoint, chunk_bytes=len(data), max_bytes_per_second=500_000) as client:
        timer.start()
        started = time.monotonic()
        with pytest.raises(UploadCancelled):
            client.upload(io.BytesIO(data), len(data), on_created=urls.append, cancel=cancel)
        elapsed = time.monotonic() - started
        timer.join()
        assert client.offset(urls[0])[0] == 0  # the cut chunk was not stored
    assert elapsed < 3.5  # the whole paced chunk would take 4 s


# ---------------------------------------------------------------------------------------------- faults


def test_reset_mid_chunk_is_resumed(server: MiniTus, proxy: FaultProxy) -> None:
    data = _data(3 * CHUNK)
    proxy.set_faults(Fault.reset(after_bytes=CHUNK // 2, nth=2))
    url = _upload_via(proxy, data)
    assert proxy.counters["resets"] == 1 and server.counters["cut_requests"] == 1
    assert server.data(url) == data


def test_reset_after_whole_chunk_before_reply(server: MiniTus, proxy: FaultProxy) -> None:
    """The server stored the chunk but the acknowledgement was lost: HEAD says so, nothing is resent."""
    data = _data(3 * CHUNK)
    proxy.set_faults(Fault.reset(after_bytes=CHUNK, nth=2))
    url = _upload_via(proxy, data)
    assert proxy.counters["resets"] == 1 and server.counters["patches"] == 3
    assert server.data(url) == data


def test_flipped_byte_is_caught_by_checksum_and_resent(server: MiniTus, proxy: FaultProxy) -> None:
    data = _data(2 * CHUNK)
    proxy.set_faults(Fault.flip(12345, nth=2))
    url = _upload_via(proxy, data)
    assert proxy.counters["flips"] == 1 and server.counters["checksum_failures"] == 1
    assert server.data(url) == data


def test_stall_beyond_read_timeout(server: MiniTus, proxy: FaultProxy) -> None:
    data = _data(2 * CHUNK)
    proxy.set_faults(Fault.stall(5.0, after_bytes=CHUNK // 4, nth=1))
    with TusClient(proxy.url + "/files/", chunk_bytes=CHUNK, retry=FAST, read_timeout=1.0,
                   connect_timeout=1.0) as client:
        url = client.upload(io.BytesIO(data), len(data))
    assert proxy.counters["stalls"] == 1
    assert server.data(url) == data


def test_injected_5xx_and_dropped_connections(server: MiniTus, proxy: FaultProxy) -> None:
    data = _data(3 * CHUNK)
    proxy.set_faults(Fault.respond(502, method="POST"), Fault.respond(503, nth=2), Fault.respond(500, method="HEAD"))
    with TusClient(proxy.url + "/files/", chunk_bytes=CHUNK, retry=FAST) as client:
        url = client.upload(io.BytesIO(data), len(data))
        proxy.drop_connections()  # idle keep-alive connections vanish: the next call reconnects
        assert client.offset(url) == (len(data), len(data))
    assert proxy.counters["responses"] == 3
    assert server.data(url) == data


def test_server_restart_on_the_same_port(proxy: FaultProxy, server: MiniTus) -> None:
    """The server goes away mid-upload (connections refused), comes back with its state: upload completes."""
    data = _data(4 * CHUNK)
    replacements: list[MiniTus] = []

    def restart() -> None:
        # a restart keeps the stored uploads (the real receiver has them on disk)
        replacement = MiniTus(port=server.port)
        replacement.uploads = server.uploads
        replacements.append(replacement.start())

    def on_progress(p: Progress) -> None:
        if p.offset == CHUNK and not replacements:
            server.close()  # listener and open connections gone: the proxy's next connects are refused
            threading.Timer(1.0, restart).start()

    retry = RetryPolicy(max_attempts=30, base_delay=0.1, max_delay=0.5)
    with TusClient(proxy.url + "/files/", chunk_bytes=CHUNK, retry=retry) as client:
        url = client.upload(io.BytesIO(data), len(data), on_progress=on_progress)
    try:
        assert proxy.counters["upstream_refused"] >= 1
        assert replacements[0].data(url) == data
    finally:
        for replacement in replacements:
            replacement.close()


def test_gives_up_with_url_and_last_cause() -> None:
    with MiniTus() as srv, FaultProxy(srv.port) as prx:
        sleeps: list[float] = []
        with TusClient(prx.url + "/files/", retry=RetryPolicy(max_attempts=3), sleep=sleeps.append) as client:
            url = client.create(10, {})
            prx.set_faults(*(Fault.respond(503, method=None, nth=1) for _ in range(3)))
            with pytest.raises(UploadError) as info:
                client.upload(io.BytesIO(b"0123456789"), 10, url=url)
    assert not isinstance(info.value, PortalRejected)
    assert url in str(info.value) and "503" in str(info.value) and "3 attempts" in str(info.value)
    assert len(sleeps) == 2


def test_connection_refused_gives_up_after_max_attempts() -> None:
    with MiniTus() as srv:
        endpoint = srv.endpoint
    sleeps: list[float] = []
    expected = r"POST http://127\.0\.0\.1:\d+/files/ failed after 4 attempts.*Connection"
    with TusClient(endpoint, retry=RetryPolicy(max_attempts=4), sleep=sleeps.append) as client, \
            pytest.raises(UploadError, match=expected):
        client.create(10, {})
    assert len(sleeps) == 3


# ---------------------------------------------------------------------------------------------- backoff, cap


def test_backoff_is_exponential_capped_and_jittered_deterministically() -> None:
    no_jitter = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=0.0)
    rng = random.Random(1)
    assert [no_jitter.delay(n, rng) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    jittered = RetryPolicy(base_delay=1.0, max_delay=30.0, jitter=0.5)
    delays = [jittered.delay(n, random.Random(n)) for n in range(1, 6)]
    for n, delay in enumerate(delays, start=1):
        assert 0.5 * 2 ** (n - 1) <= delay <= 2 ** (n - 1)
    assert delays == [jittered.delay(n, random.Random(n)) for n in range(1, 6)]
    assert jittered.delay(10_000, random.Random(0)) <= 30.0  # no overflow on long outages


def test_client_sleeps_the_policy_delays() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=0.25, max_delay=1.0, jitter=0.5)
    sleeps: list[float] = []
    with MiniTus() as srv:
        endpoint = srv.endpoint
    with TusClient(endpoint, retry=policy, sleep=sleeps.append, rng=random.Random(42)) as client, \
            pytest.raises(UploadError):
        client.server_info()
    reference = random.Random(42)
    assert sleeps == [policy.delay(n, reference) for n in range(1, 5)]


def test_retry_after_is_honoured_within_max_delay() -> None:
    replies = [(429, [("Retry-After", "7")], b""), (429, [("Retry-After", "999")], b""),
               (204, [("Tus-Version", "1.0.0")], b"")]
    sleeps: list[float] = []
    with _Scripted({"OPTIONS": replies}) as srv, TusClient(
        srv.url + "/files/", retry=RetryPolicy(base_delay=0.1, max_delay=20.0), sleep=sleeps.append
    ) as client:
        client.server_info()
    assert sleeps[0] >= 7.0 and sleeps[1] == 20.0


def test_bandwidth_cap_paces_the_body(server: MiniTus) -> None:
    data = _data(2_000_000)
    with TusClient(server.endpoint, chunk_bytes=4 * 1024 * 1024, max_bytes_per_second=1_000_000) as client:
        started = time.monotonic()
        url = client.upload(io.BytesIO(data), len(data))
        elapsed = time.monotonic() - started
    assert server.data(url) == data
    assert elapsed >= 1.8, f"2 MB at 1 MB/s took only {elapsed:.2f} s"


# ---------------------------------------------------------------------------------------------- TLS


def test_tls_verifies_against_the_configured_ca_bundle_only(tmp_path: Path) -> None:
    cert_path, key_path = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    with MiniTus(tls=context) as srv:
        with TusClient(srv.endpoint, ca_bundle=str(cert_path)) as client:
            url = client.upload(io.BytesIO(b"secret-free bytes"), 17)
        assert srv.data(url) == b"secret-free bytes"
        # a session that was told not to verify does not weaken the client: verification is per request
        careless = requests.Session()
        careless.verify = False
        try:
            client = TusClient(srv.endpoint, session=careless, retry=RetryPolicy(max_attempts=1))
            with pytest.raises(PortalRejected, match="TLS certificate did not verify"):
                client.create(10, {})
        finally:
            careless.close()


# ---------------------------------------------------------------------------------------------- hostile replies

Reply = tuple[int, list[tuple[str, str]], bytes]
TUS = [("Tus-Resumable", "1.0.0")]


class _Scripted:
    """An http.server answering each method from a list of canned replies (the last one repeats)."""

    def __init__(self, script: dict[str, list[Reply]]) -> None:
        self.script = {method: list(replies) for method, replies in script.items()}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.seen.append((self.command, self.path, dict(self.headers)))
                replies = owner.script.get(self.command) or [(405, [], b"")]
                status, headers, body = replies.pop(0) if len(replies) > 1 else replies[0]
                self.send_response_only(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_OPTIONS = do_POST = do_HEAD = do_PATCH = do_DELETE = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> _Scripted:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def _rejected(script: dict[str, list[Reply]], action: Callable[[TusClient, str], object], match: str) -> str:
    with _Scripted(script) as srv, TusClient(srv.url + "/files/", retry=FAST, sleep=lambda _: None) as client, \
            pytest.raises(PortalRejected, match=match) as info:
        action(client, srv.url)
    message = str(info.value)
    assert srv.url in message, f"the message must name the URL: {message}"
    return message


def _create(client: TusClient, base: str) -> object:
    return client.create(10, {"filename": "x"})


def _resume(client: TusClient, base: str) -> object:
    return client.upload(io.BytesIO(b"0123456789"), 10, url=base + "/files/abc")


def _fresh(client: TusClient, base: str) -> object:
    return client.upload(io.BytesIO(b"0123456789"), 10)


CREATED: Reply = (201, [*TUS, ("Location", "/files/abc")], b"")


@pytest.mark.parametrize(
    ("script", "action", "match"),
    [
        pytest.param({"POST": [(201, [*TUS, ("Location", "http://evil.example/files/abc")], b"")]}, _create,
                     "evil.example.*outside the endpoint", id="location-other-host"),
        pytest.param({"POST": [(201, [*TUS, ("Location", "https://127.0.0.1/files/abc")], b"")]}, _create,
                     "outside the endpoint", id="location-other-scheme"),
        pytest.param({"POST": [(201, [*TUS, ("Location", "http://127.0.0.1:1/files/abc")], b"")]}, _create,
                     "outside the endpoint", id="location-other-port"),
        pytest.param({"POST": [(201, [*TUS, ("Location", "//evil.example/files/abc")], b"")]}, _create,
                     "outside the endpoint", id="location-scheme-relative"),
        pytest.param({"POST": [(201, TUS, b"")]}, _create, "without a Location", id="no-location"),
        pytest.param({"POST": [(307, [*TUS, ("Location", "http://evil.example/files/")], b"")]}, _create,
                     "redirect 307 to 'http://evil.example/files/' refused", id="redirect-post"),
        pytest.param({"HEAD": [(301, [("Location", "http://evil.example/x")], b"")]}, _resume,
                     "redirect 301 to 'http://evil.example/x'", id="redirect-head"),
        pytest.param({"POST": [(201, [("Location", "/files/abc")], b"")]}, _create, "without Tus-Resumable",
                     id="no-tus-resumable"),
        pytest.param({"POST": [(201, [("Tus-Resumable", "0.2.2"), ("Location", "/files/abc")], b"")]}, _create,
                     "Tus-Resumable '0.2.2'", id="wrong-tus-version"),
        pytest.param({"POST": [(403, TUS, b"station not enrolled")]}, _create, "403: station not enrolled",
                     id="forbidden"),
        pytest.param({"POST": [(413, TUS, b"")]}, _create, "refused with 413", id="too-large"),
        pytest.param({"POST": [(201, [*TUS, ("Location", "/files/abc"), ("Upload-Expires", "soon")], b"")]},
                     _create, "Upload-Expires 'soon'", id="bad-expires"),
        pytest.param({"POST": [(201, [*TUS, ("Location", "/files/abc"), ("X-Pad", "a" * 20_000)], b"")]}, _create,
                     "header 'X-Pad' is 20000 bytes", id="huge-header"),
        pytest.param({"POST": [(201, [*TUS, ("Location", "/files/abc"), ("X-Pad", "a" * 70_000)], b"")]}, _create,
                     "too large or too many", id="header-beyond-http-client-limit"),
        pytest.param({"POST": [(201, [*TUS, ("Location", "/files/abc"), *[(f"X-{i}", "1") for i in range(80)]],
                                b"")]}, _create, "83 headers", id="too-many-headers"),
        pytest.param({"POST": [(201, [*TUS, ("Location", "/files/abc"), *[(f"X-{i}", "1") for i in range(150)]],
                                b"")]}, _create, "too large or too many", id="far-too-many-headers"),
        pytest.param({"HEAD": [(200, [*TUS, ("Upload-Offset", "abc"), ("Upload-Length", "10")], b"")]}, _resume,
                     "Upload-Offset 'abc' is not a non-negative integer", id="offset-not-integer"),
        pytest.param({"HEAD": [(200, [*TUS, ("Upload-Offset", "-1"), ("Upload-Length", "10")], b"")]}, _resume,
                     "Upload-Offset '-1'", id="offset-negative"),
        pytest.param({"HEAD": [(200, [*TUS, ("Upload-Offset", "+3"), ("Upload-Length", "10")], b"")]}, _resume,
                     "Upload-Offset '\\+3'", id="offset-signed"),
        pytest.param({"HEAD": [(200, [*TUS, ("Upload-Offset", "11")], b"")]}, _resume, "beyond the size 10",
                     id="offset-beyond-size"),
        pytest.param({"HEAD": [(200, [*TUS, ("Upload-Length", "10")], b"")]}, _resume, "without Upload-Offset",
                     id="offset-missing"),
        pytest.param({"HEAD": [(200, [*TUS, ("Upload-Offset", "0"), ("Upload-Length", "99")], b"")]}, _resume,
                     "Upload-Length 99 disagrees with ours \\(10\\)", id="length-disagrees"),
        pytest.param({"POST": [CREATED], "PATCH": [(204, [*TUS, ("Upload-Offset", "7")], b"")]}, _fresh,
                     "acknowledged offset 7, but 10 bytes were sent at offset 0", id="patch-offset-short"),
        pytest.param({"POST": [CREATED], "PATCH": [(204, [*TUS, ("Upload-Offset", "5000")], b"")]}, _fresh,
                     "acknowledged offset 5000", id="patch-offset-beyond"),
        pytest.param({"POST": [CREATED], "PATCH": [(204, TUS, b"")]}, _fresh, "without Upload-Offset",
                     id="patch-offset-missing"),
        pytest.param({"POST": [CREATED], "PATCH": [(204, [*TUS, ("Upload-Offset", "10, 10")], b"")]}, _fresh,
                     "is not a non-negative integer", id="patch-offset-duplicated"),
        pytest.param({"POST": [CREATED], "PATCH": [(200, [*TUS, ("Upload-Offset", "10")], b"")]}, _fresh,
                     "refused with 200", id="patch-wrong-success-status"),
        pytest.param({"POST": [CREATED], "PATCH": [(400, TUS, b"bad chunk")]}, _fresh, "400: bad chunk",
                     id="patch-400"),
    ],
)
def test_hostile_reply_is_refused(script: dict[str, list[Reply]], action: Callable[[TusClient, str], object],
                                  match: str) -> None:
    _rejected(script, action, match)


def test_offset_going_backwards_is_refused() -> None:
    """HEAD confirmed 5 bytes, a PATCH failed, then the server claims fewer: acknowledged data was lost."""
    script: dict[str, list[Reply]] = {
        "HEAD": [(200, [*TUS, ("Upload-Offset", "5"), ("Upload-Length", "10")], b""),
                 (200, [*TUS, ("Upload-Offset", "2"), ("Upload-Length", "10")], b"")],
        "PATCH": [(503, [], b"")],
    }
    _rejected(script, _resume, "went backwards \\(2 < 5 already acknowledged\\)")


def test_offset_beyond_what_was_sent_is_refused() -> None:
    script: dict[str, list[Reply]] = {
        "POST": [CREATED],
        "PATCH": [(503, [], b"")],
        "HEAD": [(200, [*TUS, ("Upload-Offset", "10"), ("Upload-Length", "20")], b"")],
    }
    with _Scripted(script) as srv, TusClient(srv.url + "/files/", chunk_bytes=4, retry=FAST,
                                             sleep=lambda _: None) as client, \
            pytest.raises(PortalRejected, match="Upload-Offset 10 is beyond what was sent \\(4\\)"):
        client.upload(io.BytesIO(b"0" * 20), 20)


def test_every_request_carries_tus_headers_and_checksums() -> None:
    script: dict[str, list[Reply]] = {"POST": [CREATED], "PATCH": [(204, [*TUS, ("Upload-Offset", "10")], b"")]}
    with _Scripted(script) as srv, TusClient(srv.url + "/files/") as client:
        client.upload(io.BytesIO(b"0123456789"), 10)
    (post, patch) = [(m, h) for m, _, h in srv.seen]
    assert post[0] == "POST" and post[1]["Tus-Resumable"] == "1.0.0" and post[1]["Upload-Length"] == "10"
    digest = base64.b64encode(hashlib.sha256(b"0123456789").digest()).decode()
    assert patch[1]["Upload-Checksum"] == f"sha256 {digest}"
    assert patch[1]["Content-Type"] == "application/offset+octet-stream"
    assert patch[1]["Content-Length"] == "10" and "Transfer-Encoding" not in patch[1]


def test_transient_statuses_are_retried_not_rejected() -> None:
    script: dict[str, list[Reply]] = {
        "POST": [CREATED],
        "PATCH": [(423, TUS, b""), (429, TUS, b""), (409, TUS, b""), (460, TUS, b""), (500, [], b""),
                  (204, [*TUS, ("Upload-Offset", "10")], b"")],
        "HEAD": [(200, [*TUS, ("Upload-Offset", "0"), ("Upload-Length", "10")], b"")],
    }
    sleeps: list[float] = []
    with _Scripted(script) as srv, TusClient(srv.url + "/files/", retry=RetryPolicy(max_attempts=8),
                                             sleep=sleeps.append) as client:
        client.upload(io.BytesIO(b"0123456789"), 10)
    assert len(sleeps) == 5
    assert [m for m, _, _ in srv.seen].count("PATCH") == 6


# ---------------------------------------------------------------------------------------------- the receiver
# The reference receiver (tests/receiverkit.py) behind the fault proxy, with real sealed packages
# (tests/packagekit.py): after the faults the receiver must hold exactly our bytes, which its signed
# receipt (over the package hash it computed itself) proves.  The proxy relays plain TCP, so the receiver
# serves plain HTTP on loopback for one enrolled station (``--dev-station``): these tests are about the
# transport, not about who may call (tests/test_receiver_trust.py is).

TUS_STATION = "ST-TUS-01"
TUS_UNIT = "Test Unit"  # packagekit's manifests say this unit


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.receiverkit import start_receiver

    root = tmp_path_factory.mktemp("receiver")
    with start_receiver(root, dev_station=(TUS_STATION, TUS_UNIT, Ed25519PrivateKey.generate())) as rx:
        yield rx


_STATION_LOGS: dict[int, Any] = {}  # one station (key and audit log) per receiver: it pins the station's key


def _package(tmp_path: Path, rx: Any) -> tuple[Any, dict[str, str]]:
    from tests.packagekit import FakeLog, make_test_package
    from tests.receiverkit import package_metadata

    recipient = rx.identity_path.read_text().split("# public key: ")[1].split()[0]
    # the enrolled station's own key: the receiver verifies the package with it
    log = _STATION_LOGS.setdefault(id(rx), FakeLog(TUS_STATION, rx.stations[TUS_STATION].signing_key))
    # about 1.3 MB: five or six PATCHes of 256 KiB
    info, expected = make_test_package(tmp_path, portal_recipient=recipient, n_docs=2, pages_per_doc=3,
                                       object_size=64 * 1024, station_id=TUS_STATION, log=log)
    return info, package_metadata(info, expected.station_id)


def _assert_received(rx: Any, url: str, info: Any) -> None:
    import batchformat as package
    from tests.receiverkit import get_receipt

    # the URL may name the (closed) proxy: ask the receiver itself
    reply = get_receipt(rx.files_url + url.rsplit("/", 1)[1])
    assert reply.status_code == 200, (reply.status_code, reply.text)
    receipt = package.verify_receipt(reply.content, rx.receipt_public_key, package_sha256=info.sha256,
                                     manifest=info.manifest)
    assert receipt["package_sha256"] == info.sha256


RX_RETRY = RetryPolicy(max_attempts=10, base_delay=0.05, max_delay=0.5)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.reset(after_bytes=100_000, nth=2), id="reset-mid-chunk"),
        pytest.param(Fault.reset(after_bytes=CHUNK, nth=3), id="reset-after-chunk-before-ack"),
        pytest.param(Fault.respond(503, nth=2), id="proxy-503"),
        pytest.param(Fault.flip(4321, nth=2), id="flipped-byte"),
        pytest.param(Fault.stall(8.0, after_bytes=50_000, nth=2), id="stall-mid-chunk"),
        pytest.param(Fault.stall(8.0, after_bytes=CHUNK, nth=1), id="stall-before-ack"),
    ],
)
def test_receiver_through_faults(receiver: Any, tmp_path: Path, fault: Fault) -> None:
    info, metadata = _package(tmp_path, receiver)
    with FaultProxy(receiver.port) as prx:
        prx.set_faults(fault)
        # read timeout 6 s: shorter than the stalls, long enough for the final PATCH's verification of a
        # small package on loaded cores
        with TusClient(prx.url + "/files/", chunk_bytes=CHUNK, retry=RX_RETRY, read_timeout=6.0) as client:
            url = client.upload(info.path, info.size, metadata=metadata)
        assert not prx.pending_faults(), "the fault never fired: the test would prove nothing"
    if fault.kind == "flip":
        assert prx.counters["flips"] == 1
    _assert_received(receiver, url, info)


def test_flipped_byte_is_refused_by_the_receiver_with_460(receiver: Any, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    info, metadata = _package(tmp_path, receiver)
    seen: list[float] = []
    with FaultProxy(receiver.port) as prx:
        prx.set_faults(Fault.flip(1000, nth=1))
        with TusClient(prx.url + "/files/", chunk_bytes=CHUNK, retry=RX_RETRY, sleep=seen.append) as client:
            url = client.upload(info.path, info.size, metadata=metadata)
    # exactly one retry, and it was the checksum path: the receiver answered 460 and the chunk was resent
    assert len(seen) == 1 and prx.counters["flips"] == 1
    assert [m for m, _ in prx.requests][:4] == ["POST", "PATCH", "HEAD", "PATCH"]
    assert "checksum mismatch (460)" in caplog.text
    _assert_received(receiver, url, info)


def test_receiver_killed_and_restarted_mid_upload(receiver: Any, tmp_path: Path) -> None:
    info, metadata = _package(tmp_path, receiver)
    restarts: list[threading.Thread] = []

    def start_later() -> None:
        time.sleep(1.0)  # long enough for the client to meet refused connections
        receiver.start()

    def on_progress(p: Progress) -> None:
        if p.offset >= CHUNK and not restarts:
            receiver.kill()  # kill -9: acknowledged chunks must survive (fsynced before the reply)
            thread = threading.Thread(target=start_later)
            thread.start()
            restarts.append(thread)

    with FaultProxy(receiver.port) as prx:
        retry = RetryPolicy(max_attempts=100, base_delay=0.1, max_delay=0.5)  # up to ~45 s of restart
        with TusClient(prx.url + "/files/", chunk_bytes=CHUNK, retry=retry) as client:
            url = client.upload(info.path, info.size, metadata=metadata, on_progress=on_progress)
        restarts[0].join(60)
        assert prx.counters["upstream_refused"] >= 1
    assert receiver.running
    _assert_received(receiver, url, info)
