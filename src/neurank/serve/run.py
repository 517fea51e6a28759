"""`neurank serve`: uvicorn on the app, one process or several (each loads the models once)."""

from __future__ import annotations

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
