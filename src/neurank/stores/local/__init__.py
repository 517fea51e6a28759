"""The embedded store (`local:PATH`): SQLite persistence (`store.py`) and its in-memory search index (`memory.py`)."""

from neurank.stores.local.store import DATABASE_FILE, LocalStore

__all__ = ["DATABASE_FILE", "LocalStore"]
