"""Upload transport benchmark: our tus client against the reference receiver vs a plain ``requests`` PUT.

Run by hand (numbers depend on the machine and what else runs):

    .venv/bin/python bench/upload.py                       # 200 MB, 4 MiB chunks, 3 rounds
    .venv/bin/python bench/upload.py --size-mb 50 --repeat 1 --json /tmp/upload.json

What is measured, on loopback, in one run (rounds interleave the methods so they share conditions):

* **PUT (in memory)**: ``requests.put`` of the payload bytes to a minimal sink (Starlette + uvicorn/h11,
  the receiver's stack) that writes the body and fsyncs every chunk-size bytes, as the receiver does
  per PATCH.  The baseline: one request, no checksum, no protocol.
* **PUT (streamed file)**: the same with ``data=open(file)`` (urllib3 reads 16 KiB blocks).
* **tus client -> receiver**: ``TusClient.upload`` of the same file to ``scanstation-receiver``
  (POST, then one PATCH per chunk with a sha256 Upload-Checksum, each fsynced before its reply).
  The payload is random bytes, so the receiver's verification after the last byte fails at once:
  the clock measures transport, not package verification.  The receiver serves plain HTTP on loopback
  for one enrolled station (``--dev-station ST-BENCH``, enrolled through ``scanstation-receiver enrol``
  first), like the PUT sink: TLS would be measured on one side only, and the proxy relays plain TCP.
* **tus via proxy**: the same through tests/faultproxy.py (in its own process), no fault.
* **tus via proxy, cut at 50 %**: the proxy resets the connection in the middle of the chunk that
  holds the payload's midpoint; the client backs off (default RetryPolicy), HEADs, resends.

Ratios: PUT time / tus time (1.0 = as fast as a plain PUT), and cut / no-cut through the proxy
(the cost of one resume).  "Extra bytes" is what crossed the proxy beyond the payload.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from scanstation.upload.tus_client import TusClient  # noqa: E402

MB = 1_000_000
CUT = "tus via proxy, cut at 50% -> receiver"
STATION = ("ST-BENCH", "Bench Unit")  # the receiver's one (dev) station; the uploads' metadata names it


# ------------------------------------------------------------------ the PUT sink (its own process)


def serve_sink(port: int, directory: Path, fsync_every: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def put(request: Request) -> Response:
        fd = os.open(directory / "sink.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            since_sync = 0
            async for chunk in request.stream():
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
                since_sync += len(chunk)
                if since_sync >= fsync_every:  # the receiver fsyncs once per PATCH (= per chunk)
                    await run_in_threadpool(os.fsync, fd)
                    since_sync = 0
            await run_in_threadpool(os.fsync, fd)
        finally:
            os.close(fd)
        return Response(status_code=204)

    async def health(_request: Request) -> Response:
        return Response("ok")

    app = Starlette(routes=[Route("/sink", put, methods=["PUT"]), Route("/health", health)])
    uvicorn.run(app, host="127.0.0.1", port=port, http="h11", log_level="warning")


@contextlib.contextmanager
def sink_process(directory: Path, fsync_every: int) -> Iterator[str]:
    from tests.receiverkit import free_port

    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, __file__, "--serve-sink", str(port), str(directory), str(fsync_every)],
                            cwd=REPO)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the PUT sink did not start")
            time.sleep(0.1)
        yield url + "/sink"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def proxy_process(
    target_port: int, reset_after: int | None = None, nth: int = 1
) -> Iterator[tuple[str, dict[str, int]]]:
    """tests/faultproxy.py in its own process (so it does not share our GIL); yields (url, counters)."""
    args = [sys.executable, "-m", "tests.faultproxy", "--target", str(target_port)]
    if reset_after is not None:
        args += ["--reset-after", str(reset_after), "--nth", str(nth)]
    proc = subprocess.Popen(args, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    counters: dict[str, int] = {}
    try:
        first = proc.stdout.readline()
        if not first.startswith("listening "):
            raise RuntimeError(f"fault proxy did not start: {first!r}")
        yield f"http://127.0.0.1:{int(first.split()[1])}", counters
    finally:
        proc.stdin.close()
        counters.update(json.loads(proc.stdout.readline() or "{}"))
        proc.wait(10)
        proc.stdout.close()


# ------------------------------------------------------------------ measurements


@dataclass
class Series:
    name: str
    seconds: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def write_payload(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 16 * 1024 * 1024))
            out.write(block)
            left -= len(block)
        out.flush()
        os.fsync(out.fileno())


def tus_upload(endpoint: str, path: Path, size: int, chunk: int, waits: list[float] | None = None) -> None:
    metadata = {"filename": path.name, "batch_uid": f"BENCH-{secrets.token_hex(6)}",
                "package_sha256": secrets.token_hex(32), "station_id": STATION[0]}

    def sleep(seconds: float) -> None:  # the real backoff, recorded so the report can separate it out
        if waits is not None:
            waits.append(seconds)
        time.sleep(seconds)

    with TusClient(endpoint, chunk_bytes=chunk, read_timeout=120, sleep=sleep) as client:
        client.upload(path, size, metadata=metadata)


def put_bytes(url: str, data: bytes) -> None:
    reply = requests.put(url, data=data, timeout=(5, 600), headers={"Content-Type": "application/octet-stream"})
    assert reply.status_code == 204, reply.status_code


def put_file(url: str, path: Path) -> None:
    with open(path, "rb") as handle:
        reply = requests.put(url, data=handle, timeout=(5, 600),
                             headers={"Content-Type": "application/octet-stream"})
    assert reply.status_code == 204, reply.status_code


def run(args: argparse.Namespace) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.receiverkit import start_receiver

    size = int(args.size_mb * MB)
    chunk = int(args.chunk_mb * 1024 * 1024)
    base = Path(args.workdir) if args.workdir else Path("/var/tmp")
    work = Path(tempfile.mkdtemp(prefix="scanstation-bench-upload-", dir=base))
    try:
        payload = work / "payload.bin"
        write_payload(payload, size)
        data = payload.read_bytes()  # also warms the page cache for the file-reading methods
        midpoint = size // 2
        cut_nth, cut_after = midpoint // chunk + 1, min(chunk // 2, size - (midpoint // chunk) * chunk - 1)

        put_mem = Series("PUT, bytes in memory -> sink")
        put_stream = Series("PUT, streamed file -> sink")
        tus = Series("tus client -> receiver")
        via_proxy = Series("tus via proxy -> receiver")
        cut = Series(CUT)
        (work / "rx").mkdir()
        dev_station = (*STATION, Ed25519PrivateKey.generate())
        with start_receiver(work / "rx", dev_station=dev_station) as rx, sink_process(work / "sink", chunk) as sink_url:
            for round_no in range(args.repeat):
                put_mem.seconds.append(timed(partial(put_bytes, sink_url, data)))
                tus.seconds.append(timed(partial(tus_upload, rx.files_url, payload, size, chunk)))
                put_stream.seconds.append(timed(partial(put_file, sink_url, payload)))
                with proxy_process(rx.port) as (proxy_url, counters):
                    via_proxy.seconds.append(timed(partial(tus_upload, proxy_url + "/files/", payload, size, chunk)))
                via_proxy.extra.setdefault("extra_bytes", []).append(counters["body_bytes"] - size)
                waits: list[float] = []
                with proxy_process(rx.port, cut_after, cut_nth) as (proxy_url, counters):
                    cut.seconds.append(timed(partial(tus_upload, proxy_url + "/files/", payload, size, chunk, waits)))
                assert counters["resets"] == 1, f"the cut did not happen: {counters}"
                cut.extra.setdefault("extra_bytes", []).append(counters["body_bytes"] - size)
                cut.extra.setdefault("backoff_s", []).append(round(sum(waits), 3))
                print(f"round {round_no + 1}/{args.repeat} done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "usable_cpus": len(os.sched_getaffinity(0)), "platform": platform.platform()},
        "size_bytes": size, "chunk_bytes": chunk, "repeat": args.repeat,
        "cut": {"patch": cut_nth, "after_bytes": cut_after},
        "series": {s.name: {"seconds": s.seconds, "median_s": s.median, "mb_per_s": size / MB / s.median, **s.extra}
                   for s in (put_mem, put_stream, tus, via_proxy, cut)},
        "ratios": {
            "tus / PUT in memory (throughput)": put_mem.median / tus.median,
            "tus / PUT streamed file (throughput)": put_stream.median / tus.median,
            "resume overhead: cut / no cut (time, via proxy)": cut.median / via_proxy.median,
            "resume overhead without the backoff wait": (cut.median - statistics.median(cut.extra["backoff_s"]))
            / via_proxy.median,
        },
    }
    return result


def report(result: dict[str, Any]) -> None:
    machine = result["machine"]
    print(f"\nupload benchmark: {result['size_bytes'] / MB:.0f} MB payload, "
          f"{result['chunk_bytes'] // 1024} KiB chunks, {result['repeat']} round(s); "
          f"Python {machine['python']}, {machine['usable_cpus']} usable CPU(s)")
    print(f"cut: PATCH #{result['cut']['patch']} reset after {result['cut']['after_bytes']} body bytes; "
          f"backoff waits (s): {result['series'][CUT]['backoff_s']}\n")
    print(f"{'method':42} {'median s':>9} {'MB/s':>8}  {'runs (s)':<28} extra bytes")
    for name, s in result["series"].items():
        runs = " ".join(f"{x:.2f}" for x in s["seconds"])
        extra = " ".join(str(x) for x in s.get("extra_bytes", [])) or "-"
        print(f"{name:42} {s['median_s']:9.2f} {s['mb_per_s']:8.1f}  {runs:<28} {extra}")
    print()
    for name, value in result["ratios"].items():
        print(f"{name:52} {value:6.3f}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-sink"]:
        serve_sink(int(argv[1]), Path(argv[2]), int(argv[3]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=200.0, help="payload size in MB (default 200)")
    ap.add_argument("--chunk-mb", type=float, default=4.0, help="tus chunk size in MiB (default 4, the station's)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (default 3; medians are reported)")
    ap.add_argument("--workdir", help="where payload and receiver data go (default /var/tmp; removed afterwards)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    result = run(args)
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
