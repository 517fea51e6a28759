"""Saved objects that show a neurank index in Kibana and OpenSearch Dashboards, and their import."""

from neurank.dashboards.http import Connection
from neurank.dashboards.install import ImportedObject, ImportReport, detect_product, install
from neurank.dashboards.objects import SavedObjects, objects_for_spec, saved_objects
from neurank.dashboards.products import PRODUCTS, Product, product

__all__ = ["PRODUCTS", "Connection", "ImportReport", "ImportedObject", "Product", "SavedObjects", "detect_product",
           "install", "objects_for_spec", "product", "saved_objects"]
