"""`neurank.train.__all__` lists exactly the public names of its modules."""

from __future__ import annotations

import inspect

import neurank.train
from neurank.train import losses, mining


def public_functions(module: object) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and inspect.isfunction(value) and value.__module__ == module.__name__
    }


def test_all_lists_every_public_function() -> None:
    assert set(neurank.train.__all__) == public_functions(losses) | public_functions(mining)
    assert all(hasattr(neurank.train, name) for name in neurank.train.__all__)
