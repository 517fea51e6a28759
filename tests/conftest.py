"""Shared fixtures: settings that keep everything under a temporary home and run PyTorch (no export needed)."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import pytest
from tests.fusion_slice import fusion_model, fusion_slice  # noqa: F401 -- one session-wide slice and model

from neurank.config import Settings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", store=f"local:{tmp_path / 'store'}", runtime="torch", int8=False)


@pytest.fixture(scope="session")
def scifact() -> Path:
    if not (DATA / "scifact" / "corpus.jsonl").is_file():
        pytest.fail(f"SciFact is expected at {DATA / 'scifact'} (../shared/data beside the checkout)")
    return DATA / "scifact"


def dies_with_pytest() -> None:
    """A server's `preexec_fn`: Linux sends it SIGTERM when pytest dies, even killed, so none outlives its run."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


# -- a real noida-db (an Elasticsearch 8.15 API server), one per session ------------------------------------------

NOIDA_START_S = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def noida_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`noida-db start --only elasticsearch` on a free port (ENGINES.md), stopped at the end of the session."""
    # the server binary itself: the `noida-db` script runs it as a child that outlives the script's SIGTERM
    try:
        executable = str(files("noida_db").joinpath("noida-db"))
    except ModuleNotFoundError:
        pytest.fail("noida-db is not installed: pip install -e '.[test]'")
    Path(executable).chmod(0o755)  # as the script does: a wheel need not keep the mode
    port = _free_port()
    data = tmp_path_factory.mktemp("noida")
    log = (data / "noida.log").open("wb")
    process = subprocess.Popen(
        [executable, "start", "--host", "127.0.0.1", "--only", "elasticsearch", "--elasticsearch-port", str(port),
         "--data-dir", str(data / "db")], stdout=log, stderr=subprocess.STDOUT, preexec_fn=dies_with_pytest)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + NOIDA_START_S
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"noida-db did not start on {url}: {(data / 'noida.log').read_text(errors='replace')}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
