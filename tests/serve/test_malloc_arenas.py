"""The service bounds glibc's malloc arenas unless the operator chose a number (run in child processes, which
are the ones it changes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = ("import os; from neurank.serve.run import bound_malloc_arenas as bound; "
         "print(bound({arenas}), os.environ.get('MALLOC_ARENA_MAX'))")


def child(arenas: int, env: dict[str, str]) -> str:
    clean = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    return subprocess.run([sys.executable, "-c", CHECK.format(arenas=arenas)], env={**clean, **env},
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_arenas_are_bounded_for_this_process_and_its_workers() -> None:
    assert child(2, {}) == "True 2"


def test_the_operators_setting_wins_and_zero_keeps_the_default() -> None:
    assert child(2, {"MALLOC_ARENA_MAX": "6"}) == "False 6"
    assert child(0, {}) == "False None"
