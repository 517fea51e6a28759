"""The HTTP API (FastAPI): search, documents, health, readiness, metrics, and the search page at `/`.

Models load in the background when the app starts, so `/healthz` answers at once and `/readyz` says when
searches can run. Searches run on a bounded pool (`InFlightLimit`); the excess gets 429 at once.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from neurank.config import Settings, load_settings
from neurank.errors import (
    ConfigError,
    IndexNotFoundError,
    InputError,
    ModelError,
    NeurankError,
    PlanError,
    StoreUnavailableError,
    redact,
)
from neurank.retrieval import MAX_RESULT_WINDOW
from neurank.serve.limits import DeadlineExceeded, InFlightLimit, Overloaded
from neurank.serve.metrics import ServeMetrics
from neurank.serve.options import ServeOptions, load_options
from neurank.serve.service import SearchRequest, SearchService

STATIC = files("neurank.serve") / "static"
MAX_K = 100
API_KEY_HEADER = "X-API-Key"


class SearchBody(BaseModel):
    """POST /search: what to search and how; the answer is the JSON of `neurank search --json`."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, description="the user's text, searched as text (never as query syntax)")
    mode: str = Field(default="hybrid", min_length=1, max_length=64,
                      description="bm25, sparse, dense, hybrid or a set such as bm25+dense, then +colbert, +rerank")
    k: int = Field(default=10, ge=1, le=MAX_K, description="hits to return")
    depth: int = Field(default=100, ge=1, le=MAX_RESULT_WINDOW, description="hits per stage before fusion")
    rerank: bool | None = Field(default=None, description="force the cross-encoder on or off; null: as configured")
    fusion: Literal["rrf", "min_max", "l2", "z_score", "learned"] | None = Field(
        default=None, description="how the first stages fuse; learned: the service's NEURANK_SERVE_FUSION_MODEL; "
                                  "null: z_score")
    explain: bool = Field(default=False, description="add the BM25 terms, sparse tokens, alignments per hit")
    spelling: bool | None = Field(default=None, description="correct words the index does not know before every "
                                                            "stage; null: as configured (NEURANK_SPELLING)")
    index: str | None = Field(default=None, min_length=1, max_length=255, description="default: the served one")


def status_for(exc: NeurankError) -> int:
    """The one place a neurank error becomes an HTTP status."""
    if isinstance(exc, IndexNotFoundError):
        return 404
    if isinstance(exc, InputError | PlanError):
        return 422
    if isinstance(exc, StoreUnavailableError):
        return 503
    if isinstance(exc, ConfigError | ModelError):
        return 500
    return 502


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": redact(message)}, status_code=status, headers=headers)


def warm_up(service: SearchService, freeze: bool) -> None:
    """Load the models and the served index; then, with `freeze`, move everything alive to the permanent
    generation. A full collection otherwise walks it all (240,000 objects with SciFact's index: 60-120 ms on two
    cores, every search thread stopped), a pause that lands in the tail of the latencies."""
    service.warm_up()
    if freeze:
        gc.collect()
        gc.freeze()


def create_app(settings: Settings, options: ServeOptions) -> FastAPI:
    """The app over `settings`' store and index; nothing is loaded until it starts."""
    metrics = ServeMetrics()
    service = SearchService(settings, options, metrics)
    limit = InFlightLimit(options.max_in_flight, options.deadline_ms / 1000)
    metrics.in_flight.set_function(lambda: limit.in_flight)
    retry_after = {"Retry-After": str(options.retry_after_s)}
    loading: dict[str, asyncio.Task[None]] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        gc.callbacks.append(metrics.gc_event)
        loading["models"] = asyncio.create_task(asyncio.to_thread(warm_up, service, options.gc_freeze))
        yield
        limit.close()
        service.close()
        gc.callbacks.remove(metrics.gc_event)

    app = FastAPI(title="neurank", summary="Neural ranking over an OpenSearch cluster or the local store",
                  lifespan=lifespan)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    def require_key(request: Request) -> None:
        """Constant-time comparison of the configured key with X-API-Key or a Bearer token."""
        if options.api_key is None:
            return
        given = request.headers.get(API_KEY_HEADER) or request.headers.get("Authorization", "").removeprefix(
            "Bearer ").strip()
        if not hmac.compare_digest(given.encode(), options.api_key.get_secret_value().encode()):
            raise Unauthorized

    keyed = [Depends(require_key)]

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(part) for part in problem['loc'][1:]) or 'body'}: {problem['msg']}"
                             for problem in exc.errors())
        return error(422, f"invalid request: {problems}")

    @app.exception_handler(Unauthorized)
    async def unauthorized(_: Request, __: Unauthorized) -> JSONResponse:
        return error(401, f"missing or wrong API key: send it as {API_KEY_HEADER} or 'Authorization: Bearer …'",
                     {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(NeurankError)
    async def neurank_error(_: Request, exc: NeurankError) -> JSONResponse:
        status = status_for(exc)
        return error(status, str(exc), retry_after if status == 503 else None)

    def models_loading() -> JSONResponse | None:
        task = loading.get("models")
        if task is not None and task.done():
            failure = task.exception()
            return None if failure is None else error(500, f"the models failed to load: {failure}")
        return error(503, "the models are still loading; retry shortly", retry_after)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    @app.get("/healthz", summary="the process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", summary="models loaded and the store and index reachable")
    async def readyz() -> JSONResponse:
        not_loaded = models_loading()
        if not_loaded is not None:
            return not_loaded
        problems = await asyncio.to_thread(service.problems)
        if problems:
            return error(503, "; ".join(problems), retry_after)
        return JSONResponse({"status": "ready", "index": service.index})

    @app.post("/search", dependencies=keyed, summary="search; the JSON of `neurank search --json`")
    async def search(body: SearchBody) -> Any:
        if len(body.query) > options.max_query_chars:
            return error(422, f"the query is {len(body.query):,} characters long, above the limit of "
                              f"{options.max_query_chars:,} (NEURANK_SERVE_MAX_QUERY_CHARS)")
        not_loaded = models_loading()
        if not_loaded is not None:
            metrics.rejected.labels("not_ready").inc()
            return not_loaded
        request = SearchRequest(**body.model_dump())
        start = time.perf_counter()
        try:
            label, result = await limit.run(lambda: service.search(request))
        except Overloaded:
            metrics.rejected.labels("overload").inc()
            return error(429, f"all {limit.capacity} search slots are busy (NEURANK_SERVE_MAX_IN_FLIGHT); retry "
                              "after the Retry-After seconds", retry_after)
        except DeadlineExceeded as exc:
            metrics.rejected.labels("deadline").inc()
            return error(504, str(exc))
        metrics.search(label, 200, time.perf_counter() - start, result["timings_ms"])
        return result

    @app.get("/documents/{doc_id}", dependencies=keyed, summary="one stored document")
    async def document(doc_id: str, index: str | None = None) -> Any:
        found = await asyncio.to_thread(service.document, doc_id, index)
        if found is None:
            return error(404, f"no document {doc_id!r} in index {index or service.index!r}")
        return found

    @app.get("/metrics", dependencies=keyed, summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


class Unauthorized(Exception):
    """No API key, or a wrong one."""


def app_from_environment() -> FastAPI:
    """The app as `uvicorn --factory` builds it in each worker process: everything from NEURANK_* variables."""
    return create_app(load_settings(), load_options())

