"""Importing the saved objects: `POST /api/saved_objects/_import?overwrite=true`, one multipart field `file`.

The product is the one the flag names, else the one that answers `GET /api/status`: Kibana and OpenSearch
Dashboards each name themselves in a response header (`kbn-name` / `osd-name`), even on a 401.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from neurank.dashboards.http import Connection, Response, refused
from neurank.dashboards.objects import SavedObjects
from neurank.dashboards.products import NAME_HEADER, PRODUCTS, XSRF_HEADER, Product
from neurank.errors import ConfigError, StoreError, redact

IMPORT_PATH = "/api/saved_objects/_import?overwrite=true"
STATUS_PATH = "/api/status"
FILE_NAME = "neurank.ndjson"


@dataclass(frozen=True, slots=True)
class ImportedObject:
    """One object of the file and what the import did with it."""

    type: str
    id: str
    title: str
    outcome: str
    """created, overwritten, or the product's error type (conflict, missing_references, unsupported_type, …)"""
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome not in ("created", "overwritten")


@dataclass(frozen=True, slots=True)
class ImportReport:
    product: Product
    url: str
    objects: list[ImportedObject]

    @property
    def failed(self) -> list[ImportedObject]:
        return [obj for obj in self.objects if obj.failed]

    def to_dict(self) -> dict[str, Any]:
        return {"product": self.product, "url": self.url,
                "objects": [{"type": o.type, "id": o.id, "title": o.title, "outcome": o.outcome,
                             **({"message": o.message} if o.message else {})} for o in self.objects]}


def detect_product(connection: Connection) -> Product:
    """Which product serves the URL, from the name header of its `GET /api/status` answer."""
    response = connection.request("GET", STATUS_PATH)
    found = [name for name in PRODUCTS if response.headers.get(NAME_HEADER[name]) is not None]
    if len(found) != 1:
        headers = " or ".join(NAME_HEADER.values())
        raise ConfigError(f"{connection.shown(STATUS_PATH)} answered {response.status} without naming itself in "
                          f"{headers}, as Kibana and OpenSearch Dashboards do; pass --for "
                          f"{' or --for '.join(PRODUCTS)}")
    return found[0]


def install(connection: Connection, saved: SavedObjects) -> ImportReport:
    """Import `saved` into its product with overwrite; the report lists every object of the file with its outcome."""
    boundary = f"neurank-{uuid.uuid4().hex}"
    body = _multipart(boundary, saved.ndjson().encode("utf-8"))
    headers = {XSRF_HEADER[saved.product]: "true", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = connection.request("POST", IMPORT_PATH, headers=headers, body=body)
    if response.status >= 300:
        raise refused(response, "the saved objects import", connection, IMPORT_PATH)
    return ImportReport(saved.product, connection.shown(), _outcomes(saved, _answer(response, connection)))


def _multipart(boundary: str, content: bytes) -> bytes:
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{FILE_NAME}\"\r\n"
            "Content-Type: application/ndjson\r\n\r\n")
    return head.encode("ascii") + content + f"\r\n--{boundary}--\r\n".encode("ascii")


def _answer(response: Response, connection: Connection) -> dict[str, Any]:
    payload = response.json()
    if not isinstance(payload, dict) or not isinstance(payload.get("success"), bool):
        raise StoreError(f"{connection.shown(IMPORT_PATH)} answered {response.status} with no import result "
                         f"(not Kibana or OpenSearch Dashboards?): {redact(repr(response.body[:200]))}")
    return payload


def _outcomes(saved: SavedObjects, answer: dict[str, Any]) -> list[ImportedObject]:
    """Every object of the file, in file order: its success entry, its error entry, or `not_reported`."""
    done = {(r.get("type"), r.get("id")): r for r in answer.get("successResults") or ()}
    errors = {(e.get("type"), e.get("id")): e for e in answer.get("errors") or ()}
    outcomes = []
    for obj in saved.objects:
        key = (obj["type"], obj["id"])
        title = obj["attributes"]["title"]
        if key in errors:
            error = errors[key].get("error") or {}
            outcomes.append(ImportedObject(*key, title, str(error.get("type", "unknown")), _describe(error)))
        elif key in done:
            # Kibana saves an object under a new id when its id is taken in another space
            moved = done[key].get("destinationId")
            outcomes.append(ImportedObject(*key, title, "overwritten" if done[key].get("overwrite") else "created",
                                           f"saved under id {moved}" if moved else ""))
        else:
            outcomes.append(ImportedObject(*key, title, "not_reported", "the answer does not mention it"))
    return outcomes


def _describe(error: dict[str, Any]) -> str:
    if error.get("type") == "missing_references":
        missing = ", ".join(f"{r.get('type')} {r.get('id')}" for r in error.get("references") or ())
        return f"references missing objects: {missing}"
    return str(error.get("message") or error.get("reason") or "")
