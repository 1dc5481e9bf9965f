"""A small, strict tus 1.0.0 server for client tests (core, creation, checksum sha256, termination, expiration).

In memory, on 127.0.0.1, one thread per connection, HTTP/1.1 keep-alive.  It behaves like the portal
spec asks: a chunk is stored only when it arrived whole and its checksum matched (460 otherwise), a wrong
offset is 409, every reply carries ``Tus-Resumable``; a request cut mid-body stores nothing.  With
``tls`` (an ``ssl.SSLContext``) it serves https.  Not the reference receiver: it only exists so the
client can be tested fast and without Node or the receiver.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import secrets
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class MiniUpload:
    length: int
    metadata: str
    data: bytearray = field(default_factory=bytearray)
    expires: float | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: MiniTus

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        with self.owner.lock:
            self.owner.connections.add(conn)
        return conn, address

    def shutdown_request(self, request: Any) -> None:
        with self.owner.lock:
            self.owner.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: object, client_address: object) -> None:
        # connections cut by the fault proxy are the point of the tests, not errors worth printing
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # a stalled client cannot pin a handler thread forever
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Tus-Resumable", "1.0.0")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _upload(self) -> tuple[str, MiniUpload] | None:
        match = re.fullmatch(r"/files/([0-9a-f]{32})", self.path)
        owner = self.server.owner
        if not match:
            return None
        with owner.lock:
            upload = owner.uploads.get(match.group(1))
            if upload is not None and upload.expires is not None and upload.expires < time.time():
                del owner.uploads[match.group(1)]
                owner.count("expired")
                return None
        return (match.group(1), upload) if upload is not None else None

    def _expiry_headers(self, upload: MiniUpload) -> dict[str, str]:
        return {"Upload-Expires": formatdate(upload.expires, usegmt=True)} if upload.expires else {}

    def do_OPTIONS(self) -> None:
        self._reply(204, {
            "Tus-Version": "1.0.0",
            "Tus-Extension": "creation,checksum,termination,expiration",
            "Tus-Checksum-Algorithm": "sha256",
            "Tus-Max-Size": str(self.server.owner.max_size),
        })

    def do_POST(self) -> None:
        owner = self.server.owner
        owner.count("posts")
        if self.path != "/files/" or self.headers.get("Tus-Resumable") != "1.0.0":
            self._reply(404 if self.path != "/files/" else 412)
            return
        length = int(self.headers.get("Upload-Length", "-1"))
        if length < 0 or length > owner.max_size:
            self._reply(413)
            return
        upload_id = secrets.token_hex(16)
        expires = time.time() + owner.expires_seconds if owner.expires_seconds else None
        upload = MiniUpload(length, self.headers.get("Upload-Metadata", ""), expires=expires)
        with owner.lock:
            owner.uploads[upload_id] = upload
        # absolute URLs are built from Host, as real servers do, so they point at a proxy in front of us
        host = self.headers.get("Host", f"127.0.0.1:{owner.port}")
        scheme = "https" if owner.tls else "http"
        location = f"/files/{upload_id}" if owner.relative_location else f"{scheme}://{host}/files/{upload_id}"
        self._reply(201, {"Location": location, **self._expiry_headers(upload)})

    def do_HEAD(self) -> None:
        self.server.owner.count("heads")
        found = self._upload()
        if found is None:
            self._reply(404)
            return
        upload = found[1]
        with self.server.owner.lock:
            offset = len(upload.data)
        self._reply(200, {"Upload-Offset": str(offset), "Upload-Length": str(upload.length),
                          "Cache-Control": "no-store", **self._expiry_headers(upload)})

    def do_PATCH(self) -> None:
        owner = self.server.owner
        owner.count("patches")
        found = self._upload()
        size = int(self.headers.get("Content-Length", "0"))
        if found is None:
            self.rfile.read(size)
            self._reply(404)
            return
        upload = found[1]
        if self.headers.get("Content-Type") != "application/offset+octet-stream":
            self.rfile.read(size)
            self._reply(415)
            return
        body = bytearray()
        while len(body) < size:
            try:
                part = self.rfile.read(min(65536, size - len(body)))
            except OSError:
                part = b""
            if not part:
                break
            body += part
        checksum = self.headers.get("Upload-Checksum")
        with owner.lock:
            offset = int(self.headers.get("Upload-Offset", "-1"))
            if len(body) < size:
                # the client went away mid-body: keep nothing (the checksum could not be checked)
                owner.count("cut_requests")
                self.close_connection = True
                return
            if offset != len(upload.data):
                owner.count("conflicts")
                self._reply(409, body=b"offset mismatch")
                return
            if offset + size > upload.length:
                self._reply(400, body=b"chunk beyond Upload-Length")
                return
            if checksum is not None:
                algorithm, _, encoded = checksum.partition(" ")
                if algorithm != "sha256":
                    self._reply(400, body=b"unsupported checksum algorithm")
                    return
                if base64.b64decode(encoded) != hashlib.sha256(body).digest():
                    owner.count("checksum_failures")
                    self._reply(460, body=b"checksum mismatch")
                    return
            upload.data += body
            new_offset = len(upload.data)
        self._reply(204, {"Upload-Offset": str(new_offset), **self._expiry_headers(upload)})

    def do_DELETE(self) -> None:
        owner = self.server.owner
        found = self._upload()
        if found is None:
            self._reply(404)
            return
        with owner.lock:
            owner.uploads.pop(found[0], None)
        self._reply(204)


class MiniTus:
    def __init__(
        self,
        *,
        tls: ssl.SSLContext | None = None,
        expires_seconds: float | None = None,
        relative_location: bool = True,
        max_size: int = 1 << 40,
        port: int = 0,
    ) -> None:
        self.tls = tls
        self.expires_seconds = expires_seconds
        self.relative_location = relative_location
        self.max_size = max_size
        self.uploads: dict[str, MiniUpload] = {}
        self.lock = threading.RLock()  # count() is also called with it held
        self.counters: dict[str, int] = {}
        self.connections: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.owner = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.url}/files/"

    def count(self, name: str) -> None:
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + 1

    def data(self, upload_url: str) -> bytes:
        upload_id = upload_url.rstrip("/").rsplit("/", 1)[-1]
        with self.lock:
            return bytes(self.uploads[upload_id].data)

    def start(self) -> MiniTus:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop like a process that exits: the listener and every open connection go away."""
        self._server.shutdown()
        self._server.server_close()
        with self.lock:
            open_connections = list(self.connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> MiniTus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
