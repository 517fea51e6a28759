"""A local HTTP server that answers `/api/status` and `/api/saved_objects/_import` as Kibana or OpenSearch
Dashboards do, keeps what it imported, and records every request it receives (headers, query, multipart parts).

What it enforces, as the products do: the name header on every answer (`kbn-name` / `osd-name`), the product's
xsrf header on a POST (400 otherwise), credentials when configured (401), a multipart body with a `file` part,
`overwrite` (without it an existing object is a `conflict`), references to objects that exist (in the file or
already saved; `missing_references` otherwise) and the types it supports (`unsupported_type`).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

NAME_HEADER = {"kibana": "kbn-name", "opensearch-dashboards": "osd-name"}
XSRF_HEADER = {"kibana": "kbn-xsrf", "opensearch-dashboards": "osd-xsrf"}
VERSION = {"kibana": "9.1.3", "opensearch-dashboards": "3.2.0"}


@dataclass
class Part:
    name: str | None
    filename: str | None
    content_type: str
    content: bytes


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    parts: list[Part]


@dataclass
class ProductServer:
    product: str | None
    """kibana, opensearch-dashboards, or None: some other web server, which names no product"""
    authorization: str | None = None
    """the Authorization header it expects; None: no security"""
    supported: set[str] = field(default_factory=lambda: {"index-pattern", "search", "visualization"})
    status_code: int | None = None
    """answer every request with this status (and the products' error body) instead"""
    redirect: str | None = None
    """answer every request with a 302 to this location, as Kibana does for a login page"""
    url: str = ""
    received: list[Recorded] = field(default_factory=list)
    saved: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def answer(self, method: str, path: str, headers: Message, body: bytes) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(path)
        multipart = _parts(headers, body) if method == "POST" else []
        self.received.append(Recorded(method, parts.path, parse_qs(parts.query), headers, multipart))
        if self.redirect is not None:
            return 302, {}
        if self.status_code is not None:
            return _error(self.status_code, "Internal Server Error" if self.status_code >= 500 else "Error",
                          "simulated")
        if self.authorization is not None and headers.get("Authorization") != self.authorization:
            return _error(401, "Unauthorized", "[security_exception]: unable to authenticate user for REST request")
        if method == "GET" and parts.path == "/api/status":
            return 200, {"name": "local", "version": {"number": VERSION.get(self.product or "", "1.0.0")},
                         "status": {"overall": {"level": "available"}}}
        if method == "POST" and parts.path == "/api/saved_objects/_import":
            return self._import(headers, parse_qs(parts.query), multipart)
        return _error(404, "Not Found", "Not Found")

    def _import(self, headers: Message, query: dict[str, list[str]], parts: list[Part]) -> tuple[int, dict[str, Any]]:
        xsrf = XSRF_HEADER.get(self.product or "", "kbn-xsrf")
        if headers.get(xsrf) is None:
            return _error(400, "Bad Request", f"Request must contain a {xsrf} header.")
        files = [part for part in parts if part.name == "file"]
        if len(files) != 1 or not (files[0].filename or "").endswith(".ndjson"):
            return _error(415, "Unsupported Media Type", "Expected a multipart body with one .ndjson field 'file'")
        objects = [json.loads(line) for line in files[0].content.decode("utf-8").splitlines() if line.strip()]
        overwrite = query.get("overwrite") == ["true"]
        in_file = {(obj["type"], obj["id"]) for obj in objects}
        results, errors = [], []
        for obj in objects:
            key = (obj["type"], obj["id"])
            meta = {"title": obj["attributes"].get("title"), "icon": obj["type"]}
            missing = [ref for ref in obj.get("references", ())
                       if (ref["type"], ref["id"]) not in in_file | set(self.saved)]
            if obj["type"] not in self.supported:
                errors.append({"type": key[0], "id": key[1], "meta": meta, "error": {"type": "unsupported_type"}})
            elif missing:
                errors.append({"type": key[0], "id": key[1], "meta": meta, "error": {
                    "type": "missing_references", "references": [{"type": r["type"], "id": r["id"]}
                                                                 for r in missing]}})
            elif key in self.saved and not overwrite:
                errors.append({"type": key[0], "id": key[1], "meta": meta, "error": {"type": "conflict"}})
            else:
                results.append({"type": key[0], "id": key[1], "meta": meta,
                                **({"overwrite": True} if key in self.saved else {})})
                self.saved[key] = obj
        return 200, {"success": not errors, "successCount": len(results), "successResults": results,
                     **({"errors": errors} if errors else {})}


def _error(status: int, error: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"statusCode": status, "error": error, "message": message}


def _parts(headers: Message, body: bytes) -> list[Part]:
    """The multipart/form-data parts of a body, read with the standard library's MIME parser."""
    content_type = headers.get("Content-Type", "")
    if not content_type.startswith("multipart/form-data"):
        return []
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    return [Part(part.get_param("name", header="content-disposition"), part.get_filename(),
                 part.get_content_type(), part.get_payload(decode=True))
            for part in message.iter_parts()]


@contextmanager
def serving(server: ProductServer, tls: ssl.SSLContext | None = None) -> Iterator[ProductServer]:
    """`server` listening on 127.0.0.1 (a free port) in a thread, over https with `tls`, until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload = server.answer(method, self.path, self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            if status == 302:
                self.send_header("Location", server.redirect or "/")
            if server.product is not None:
                self.send_header(NAME_HEADER[server.product], "local")
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply("GET")

        def do_POST(self) -> None:
            self._reply("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        http.socket = tls.wrap_socket(http.socket, server_side=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    server.url = f"{'https' if tls else 'http'}://127.0.0.1:{http.server_address[1]}"
    try:
        yield server
    finally:
        http.shutdown()
        http.server_close()
        thread.join()
