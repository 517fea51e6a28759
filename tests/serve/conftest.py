"""A small index built by the real bundled encoders, and `neurank serve` started on it as a real process on the
loopback (uvicorn on a free port), stopped after the module's tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.conftest import dies_with_pytest

from neurank.config import Settings
from neurank.documents import Document
from neurank.ingest.inline import ingest_records
from neurank.onnx_models.bundle import EncoderBundle
from neurank.stores import LocalStore

INDEX = "tiny"
API_KEY = "serve-test-key-5d1c"
DOCUMENTS = {
    "d1": ("Statins", "Statins lower LDL cholesterol and the risk of heart attacks."),
    "d2": ("Vitamin D", "Vitamin D supports bone density in older adults."),
    "d3": ("Solar power", "Photovoltaic cells turn sunlight into electricity."),
    "d4": ("Aspirin", "Aspirin thins the blood and can prevent clots."),
    "d5": ("Sleep", "Short sleep raises blood pressure and the risk of obesity."),
    "d6": ("Exercise", "Regular exercise improves insulin sensitivity in adults."),
}


@dataclass(frozen=True, slots=True)
class Server:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def served_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """PyTorch encoders (no export needed), the store and home under a session temp folder, the index filled."""
    root = tmp_path_factory.mktemp("serve")
    settings = Settings(home=root / "home", store=f"local:{root / 'store'}", index=INDEX, runtime="torch",
                        int8=False)
    documents = [Document(doc_id, text, title) for doc_id, (title, text) in DOCUMENTS.items()]
    ingest_records(documents, LocalStore(root / "store"), INDEX, EncoderBundle.from_settings(settings), settings)
    return settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(settings: Settings, log: Path, **serve_env: str) -> Server:
    """`neurank serve` as its own process, with NEURANK_SERVE_* from `serve_env`; returns once /readyz says ready."""
    port = free_port()
    env = {**os.environ, "NEURANK_HOME": str(settings.home), "NEURANK_STORE": settings.store_url(),
           "NEURANK_INDEX": settings.index, "NEURANK_RUNTIME": settings.runtime, "NEURANK_INT8": "false",
           "NEURANK_THREADS": "1", **{f"NEURANK_SERVE_{name.upper()}": value for name, value in serve_env.items()}}
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-c", "from neurank.cli import app; app()", "serve",
                                    "--port", str(port)], env=env, stdout=output, stderr=subprocess.STDOUT,
                                   preexec_fn=dies_with_pytest)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"neurank serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return Server(url, process)
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    stop(Server(url, process))
    pytest.fail(f"neurank serve was not ready within 180 s:\n{log.read_text()}")


def stop(server: Server) -> None:
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def server(served_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The defaults (batching on, the cache on)."""
    started = start_server(served_settings, tmp_path_factory.mktemp("logs") / "serve.log")
    yield started
    stop(started)


@pytest.fixture(scope="module")
def guarded(served_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One search at a time, an API key, and a deadline no real search meets."""
    started = start_server(served_settings, tmp_path_factory.mktemp("logs") / "guarded.log", max_in_flight="1",
                           api_key=API_KEY, deadline_ms="1")
    yield started
    stop(started)
