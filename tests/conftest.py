"""Shared fixtures: settings that keep everything under a temporary home and run PyTorch (no export needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
