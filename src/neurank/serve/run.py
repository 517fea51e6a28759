"""`neurank serve`: uvicorn on the app, one process or several (each loads the models once)."""

from __future__ import annotations

import ctypes
import os

from neurank.config import Settings
from neurank.errors import ConfigError, MissingExtraError
from neurank.serve.options import ServeOptions, check_bind


def serve(settings: Settings, options: ServeOptions, *, host: str, port: int, workers: int = 1) -> None:
    """Serve until interrupted; refuses a non-loopback bind without an API key.

    Several workers are separate processes that uvicorn starts from `app_from_environment`, so they read the
    store and index from the environment: the flags given here are passed on that way.
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingExtraError("uvicorn", "serve") from exc

    from neurank.serve.app import app_from_environment, create_app

    check_bind(host, options)
    bound_malloc_arenas(options.malloc_arenas)
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port (1 to 65535)")
    if workers < 1:
        raise ConfigError(f"--workers {workers}: at least one worker process is needed")
    if workers == 1:
        uvicorn.run(create_app(settings, options), host=host, port=port, access_log=False,
                    timeout_keep_alive=options.keep_alive_s)
        return
    os.environ.update({"NEURANK_STORE": settings.store_url(), "NEURANK_INDEX": settings.index})
    uvicorn.run(f"{app_from_environment.__module__}:{app_from_environment.__name__}", factory=True, host=host,
                port=port, workers=workers, access_log=False, timeout_keep_alive=options.keep_alive_s)


_M_ARENA_MAX = -8
"""glibc's `mallopt` parameter for the most arenas (malloc.h)."""


def bound_malloc_arenas(arenas: int) -> bool:
    """At most `arenas` glibc malloc arenas in this process and the workers it starts; whether it applied.

    glibc gives a thread that allocates while another holds an arena an arena of its own (up to eight per core)
    and keeps what is freed there for that arena's reuse, so a service whose search threads allocate at once
    grows by arenas for minutes before it levels off. `MALLOC_ARENA_MAX` in the environment is the operator's
    choice and is left alone; other C libraries have no such knob (nothing happens there).
    """
    if arenas == 0 or "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    os.environ["MALLOC_ARENA_MAX"] = str(arenas)  # worker processes read it when they start
    return bool(mallopt(_M_ARENA_MAX, arenas))
