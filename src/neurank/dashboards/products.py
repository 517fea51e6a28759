"""What differs between Kibana and OpenSearch Dashboards: the xsrf header, the name header, migration stamps.

Both import the same object shapes (OpenSearch Dashboards forked Kibana 7.10.2). Each stamps the objects with
the oldest version whose shape they have, so the product runs its own migrations from there on import:
Kibana wants `coreMigrationVersion` + `typeMigrationVersion` (from 8.8, which introduced them; Kibana imports from
its own major and the one before, so an 8.8 stamp imports into 8.8+ and 9.x),
OpenSearch Dashboards 2.x/3.x the per-type `migrationVersion` map of 7.10.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from neurank.errors import ConfigError

Product = Literal["kibana", "opensearch-dashboards"]
PRODUCTS: tuple[Product, ...] = get_args(Product)

XSRF_HEADER: dict[Product, str] = {"kibana": "kbn-xsrf", "opensearch-dashboards": "osd-xsrf"}
NAME_HEADER: dict[Product, str] = {"kibana": "kbn-name", "opensearch-dashboards": "osd-name"}
"""Each product names itself in this header on every response (its server's lifecycle adds it)."""

_KIBANA_CORE = "8.8.0"
_KIBANA_TYPES = {"index-pattern": "8.0.0", "search": "8.0.0", "visualization": "8.5.0"}
_DASHBOARDS_TYPES = {"index-pattern": "7.6.0", "search": "7.9.3", "visualization": "7.10.0"}


def product(name: str) -> Product:
    """`name` as a Product, or a ConfigError listing the choices."""
    for known in PRODUCTS:
        if name == known:
            return known
    raise ConfigError(f"unknown dashboards product {name!r}; choose one of {', '.join(PRODUCTS)}")


def migration_stamp(target: Product, object_type: str) -> dict[str, Any]:
    """The top-level keys that tell `target` which version an object of `object_type` was written for."""
    if target == "kibana":
        return {"coreMigrationVersion": _KIBANA_CORE, "typeMigrationVersion": _KIBANA_TYPES[object_type]}
    return {"migrationVersion": {object_type: _DASHBOARDS_TYPES[object_type]}}
