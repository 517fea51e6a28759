"""The mapping of an index with every stage (sparse, dense, late interaction) and expansion terms."""

from __future__ import annotations

from typing import Any

import pytest
from tests.dashboards.index_mappings import FULL_SPEC, properties


@pytest.fixture
def full_properties() -> dict[str, Any]:
    return properties(FULL_SPEC)
