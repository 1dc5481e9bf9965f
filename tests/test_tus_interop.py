"""Our tus client against an independent server: @tus/server + @tus/file-store (Node), on loopback.

The Node packages are pinned by tests/interop/tus-node/package-lock.json and installed with ``npm ci``
when node_modules is missing (installer/setup.sh --dev does it up front).  Skipped only when ``node``
itself is absent; a failing ``npm ci`` fails the tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanstation.errors import UploadError
from scanstation.upload.tus_client import Progress, RetryPolicy, TusClient
from tests.faultproxy import Fault, FaultProxy

NODE_DIR = Path(__file__).parent / "interop" / "tus-node"
CHUNK = 1024 * 1024
FAST_RETRY = RetryPolicy(max_attempts=8, base_delay=0.05, max_delay=1.0)

pytestmark = pytest.mark.timeout(300)


def _node_modules() -> None:
    """``npm ci`` once per checkout; a file lock keeps parallel test workers from racing."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed (installer/setup.sh --dev installs nodejs and npm)")
    lock_path = Path(tempfile.gettempdir()) / f"scanstation-npm-ci-{os.getuid()}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (NODE_DIR / "node_modules" / "@tus" / "server" / "package.json").exists():
            return
        npm = shutil.which("npm")
        assert npm is not None, "node is installed but npm is not: install npm (Debian: apt-get install npm)"
        result = subprocess.run(
            [npm, "ci", "--omit=optional", "--no-audit", "--no-fund"],
            cwd=NODE_DIR, capture_output=True, text=True, timeout=240, check=False,
        )
        assert result.returncode == 0, f"npm ci failed in {NODE_DIR}:\n{result.stdout}\n{result.stderr}"


@dataclass
class NodeTus:
    port: int
    directory: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/files/"

    def stored(self, upload_url: str) -> Path:
        return self.directory / upload_url.rstrip("/").rsplit("/", 1)[-1]


@contextlib.contextmanager
def node_tus(directory: Path, expiration_ms: int = 0) -> Iterator[NodeTus]:
    _node_modules()
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["node", "server.mjs", "0", str(directory), str(expiration_ms)],
        cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        try:
            first = lines.get(timeout=60)
        except queue.Empty:
            pytest.fail("@tus/server did not print 'listening PORT' within 60 s")
        assert first.startswith("listening "), f"unexpected output from server.mjs: {first!r}"
        yield NodeTus(int(first.split()[1]), directory)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    # 5.5 chunks: several PATCHes and a short last one
    path = tmp_path / "package.bin"
    path.write_bytes(os.urandom(5 * CHUNK + CHUNK // 2))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_server_info_and_multi_chunk_upload(tmp_path: Path, payload: Path) -> None:
    size = payload.stat().st_size
    with node_tus(tmp_path / "store") as server, TusClient(server.endpoint, chunk_bytes=CHUNK) as client:
        info = client.server_info()
        assert "1.0.0" in info["versions"]
        assert "creation" in info["extensions"] and "termination" in info["extensions"]
        created: list[str] = []
        progress: list[Progress] = []
        url = client.upload(payload, size, metadata={"filename": "package.bin", "batch_uid": "B-1"},
                            on_created=created.append, on_progress=progress.append)
        assert created == [url]
        assert url.startswith(f"http://127.0.0.1:{server.port}/files/")
        assert client.offset(url) == (size, size)
        assert [p.offset for p in progress if p.offset] == [min(size, CHUNK * i) for i in range(1, 7)]
        assert _sha(server.stored(url)) == _sha(payload)


def test_upload_survives_reset_mid_chunk(tmp_path: Path, payload: Path) -> None:
    size = payload.stat().st_size
    with node_tus(tmp_path / "store") as server, FaultProxy(server.port) as proxy:
        # the second PATCH is cut 300 kB into its body; @tus/server keeps what arrived, so the client must
        # learn the true offset with HEAD and continue from the middle of its chunk
        proxy.set_faults(Fault.reset(after_bytes=300_000, nth=2))
        offsets: list[int] = []
        with TusClient(proxy.url + "/files/", chunk_bytes=CHUNK, retry=FAST_RETRY, read_timeout=20) as client:
            url = client.upload(payload, size, on_progress=lambda p: offsets.append(p.offset))
        assert proxy.counters["resets"] == 1
        # the offset HEAD reported lies inside the cut chunk (the server kept a prefix of it)
        assert any(CHUNK < o < 2 * CHUNK for o in offsets), offsets
        assert ("HEAD", url.split(proxy.url, 1)[1]) in proxy.requests
        assert _sha(server.stored(url)) == _sha(payload)


def test_upload_survives_server_error_and_stall(tmp_path: Path, payload: Path) -> None:
    size = payload.stat().st_size
    with node_tus(tmp_path / "store") as server, FaultProxy(server.port) as proxy:
        proxy.set_faults(Fault.respond(503, nth=1), Fault.stall(6.0, after_bytes=CHUNK, nth=3))
        with TusClient(proxy.url + "/files/", chunk_bytes=CHUNK, retry=FAST_RETRY, read_timeout=2) as client:
            url = client.upload(payload, size)
        assert proxy.counters["responses"] == 1 and proxy.counters["stalls"] == 1
        assert _sha(server.stored(url)) == _sha(payload)


def test_resume_from_a_persisted_url_after_a_crash(tmp_path: Path, payload: Path) -> None:
    """A station that crashed after two chunks resumes with HEAD; only the rest is sent."""
    size = payload.stat().st_size
    data = payload.read_bytes()
    with node_tus(tmp_path / "store") as server, FaultProxy(server.port) as proxy:
        with TusClient(proxy.url + "/files/", chunk_bytes=2 * CHUNK) as first:
            url = first.create(size, {"filename": "package.bin"})
            # what a crashed process left behind: one acknowledged 2 MiB chunk (a source that ends there
            # stops this first client after it)
            with pytest.raises(UploadError, match="shorter than the declared size"):
                first.upload(io.BytesIO(data[: 2 * CHUNK]), size, url=url)
            assert first.offset(url) == (2 * CHUNK, size)
        patches_before = sum(1 for m, _ in proxy.requests if m == "PATCH")
        with TusClient(proxy.url + "/files/", chunk_bytes=CHUNK) as second:
            resumed = second.upload(payload, size, url=url)
        assert resumed == url
        assert sum(1 for m, _ in proxy.requests if m == "PATCH") - patches_before == 4  # 3.5 chunks left
        assert server.stored(url).read_bytes() == data


def test_terminate_and_expiration_headers(tmp_path: Path, payload: Path) -> None:
    size = payload.stat().st_size
    with node_tus(tmp_path / "store", expiration_ms=3_600_000) as server, \
            TusClient(server.endpoint, chunk_bytes=CHUNK) as client:
        assert "expiration" in client.server_info()["extensions"]
        seen: list[Progress] = []
        url = client.upload(payload, size, on_progress=seen.append)
        # @tus/server sends Upload-Expires on creation and PATCH; the client parses and reports it
        assert seen[-1].expires is not None
        client.terminate(url)
        assert not server.stored(url).exists()
        with pytest.raises(UploadError, match="no longer exists"):
            client.offset(url)
        client.terminate(url)  # already gone: fine
