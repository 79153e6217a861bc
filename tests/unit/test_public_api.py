"""The public surface of every package, guarded (as trio guards its own): each
``__all__`` lists a name once, every name in it exists, and every public class and
function says what it is for (a dataclass's generated signature does not count).
"""

from __future__ import annotations

import importlib
import inspect

import pytest

PACKAGES = [
    "alight.actors",
    "alight.channels",
    "alight.channels.presence",
    "alight.channels.presence.simulation",
    "alight.client",
    "alight.cluster",
    "alight.dashboard",
    "alight.metrics",
    "alight.telemetry",
]


@pytest.mark.parametrize("module", PACKAGES)
def test_each_public_name_is_listed_once(module: str) -> None:
    names = importlib.import_module(module).__all__
    assert sorted(set(names)) == sorted(names), "a name listed twice in __all__"


@pytest.mark.parametrize("module", PACKAGES)
def test_every_public_name_exists_and_says_what_it_is_for(module: str) -> None:
    mod = importlib.import_module(module)
    assert (mod.__doc__ or "").strip(), f"{module} has no docstring"
    for name in mod.__all__:
        value = getattr(mod, name)  # AttributeError: listed but missing
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue  # constants are documented where they are defined
        doc = (value.__doc__ or "").strip()
        assert doc, f"{module}.{name} has no docstring"
        assert not doc.startswith(f"{value.__name__}("), f"{module}.{name} has only a generated docstring"
