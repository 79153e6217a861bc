"""The package's structure, checked from its own source: layers depend one way, no
package reaches into another's private modules, and every exception alight raises is
an `AlightError` with a name no other alight exception has.

The layers, bottom to top (README, "Architecture")::

    errors < telemetry < actors, client < transports < channels < cluster
           < metrics, dashboard < runner < launcher, demo < cli

A module may import its own package and the layers below it, never one beside or
above it. Every import counts: module level, inside functions (lazy), and under
``TYPE_CHECKING``. `alight.client` depends on `alight.errors` alone (it is a client of
the wire, usable without the server).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import alight
from alight.errors import AlightError

ROOT = Path(alight.__file__).resolve().parent

LAYERS: dict[str, int] = {
    "errors": 0,
    "logs": 0,  # alight.logs: how the commands log (stdlib and orjson only)
    "telemetry": 1,
    "actors": 2,
    "client": 2,
    "transports": 3,
    "channels": 4,
    "cluster": 5,
    "metrics": 6,
    "dashboard": 6,
    "runner": 7,
    "launcher": 8,
    "demo": 8,
    "cli": 9,
    "examples": 10,  # alight.examples: apps built on everything, as users write them
    "": 10,  # alight/__init__.py: the top-level convenience names
}
GROUPS = {"_launcher_output": "launcher"}
"""Top-level modules that belong to another's group (the launcher's output writer)."""

PACKAGES = ("actors", "channels", "transports", "cluster", "client", "dashboard", "demo")

NOT_ERRORS = {
    "alight.actors.errors.ExitProcess",  # the signal a process raises to exit with a reason
    "alight.cluster.errors.UnpicklableReason",  # an exit reason value, carried in Down/Exit
    "alight.channels._channel_server._StopChannel",  # control flow inside a channel process
    "alight.client.socket._TransportClosedError",  # control flow inside the client
    "alight.client._http.HttpError",  # an OSError of the client's HTTP connection, as OSError
    "alight.demo.chat._limits.LimitExceeded",  # the demo app's own, a ValueError
    "alight.demo._supervision_tree.WorkerCrashError",  # the crash the demo provokes on purpose
}
"""Exception classes in alight that are deliberately not `AlightError` s (each says why)."""


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def _modules() -> dict[str, Path]:
    found = {}
    files = [*ROOT.glob("*.py")] + [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    for path in files:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(["alight", *parts])] = path
    return found


MODULES = _modules()


def _imports(module: str, source: str, is_package: bool = False) -> list[Import]:
    """Every import of an alight module in ``source`` (module ``module``), at any depth
    of the syntax tree."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    out: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            # ``from . import x`` may name a module: count it as such when it is one.
            targets = [name] + [f"{name}.{alias.name}" for alias in node.names if f"{name}.{alias.name}" in MODULES]
        else:
            continue
        out.extend(Import(module, target, node.lineno) for target in targets if target.split(".")[0] == "alight")
    return out


IMPORTS = [
    found
    for module, path in MODULES.items()
    for found in _imports(module, path.read_text(encoding="utf-8"), path.name == "__init__.py")
]


def _group(module: str) -> str:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    return GROUPS.get(top, top)


def test_every_module_is_in_a_layer() -> None:
    assert {_group(module) for module in MODULES} <= set(LAYERS)


def test_layers_depend_one_way() -> None:
    wrong = [
        str(found)
        for found in IMPORTS
        if _group(found.source) != _group(found.target) and LAYERS[_group(found.target)] >= LAYERS[_group(found.source)]
    ]
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_client_needs_nothing_of_the_server() -> None:
    outside = [
        str(found)
        for found in IMPORTS
        if _group(found.source) == "client" and _group(found.target) not in ("client", "errors")
    ]
    assert not outside


def test_no_package_imports_another_packages_private_modules() -> None:
    wrong = []
    for found in IMPORTS:
        if _group(found.source) == _group(found.target):
            continue
        if any(part.startswith("_") for part in found.target.split(".")[1:]):
            wrong.append(str(found))
    assert not wrong, "private modules used across packages:\n" + "\n".join(wrong)


def test_the_check_sees_lazy_and_type_checking_imports() -> None:
    """The checker itself: imports inside a function and under TYPE_CHECKING count."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..cluster.distribution import Distribution\n"
        "def f():\n    from ..metrics import EndpointMetrics\n    import alight.dashboard\n"
    )
    found = [str(imported) for imported in _imports("alight.channels.probe", source)]
    assert found == [
        "alight.channels.probe:3 imports alight.cluster.distribution",
        "alight.channels.probe:5 imports alight.metrics",
        "alight.channels.probe:6 imports alight.dashboard",
    ]


def _exception_classes() -> list[type[BaseException]]:
    classes: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(alight.__path__, "alight."):
        if info.name.split(".")[1] not in (*PACKAGES, *[name for name in LAYERS if name]):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseException) and value.__module__.startswith("alight."):
                classes[f"{value.__module__}.{value.__qualname__}"] = value
    return list(classes.values())


EXCEPTIONS = _exception_classes()


def test_every_exception_alight_raises_is_an_alight_error() -> None:
    outside = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in EXCEPTIONS
        if not issubclass(cls, AlightError) and f"{cls.__module__}.{cls.__qualname__}" not in NOT_ERRORS
    ]
    assert not outside, "exceptions outside the AlightError tree: " + ", ".join(sorted(outside))


def test_exception_names_are_distinct() -> None:
    by_name: dict[str, list[str]] = {}
    for cls in EXCEPTIONS:
        if not cls.__name__.startswith("_"):
            by_name.setdefault(cls.__name__, []).append(cls.__module__)
    assert {name: modules for name, modules in by_name.items() if len(modules) > 1} == {}


@pytest.mark.parametrize("package", ["actors", "transports", "channels", "cluster", "client", "dashboard"])
def test_each_package_has_one_root_under_alight_error(package: str) -> None:
    errors = importlib.import_module(f"alight.{package}.errors")
    roots = [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, AlightError) and AlightError in cls.__bases__
    ]
    assert len(roots) == 1, roots
    assert errors.__doc__ is not None
    assert roots[0].__name__ in errors.__doc__


@pytest.mark.slow  # one interpreter per module, ~10 s
def test_every_module_imports_first_on_its_own() -> None:
    """No import cycle hides behind import order: each module, imported first in a fresh
    interpreter, loads (a cycle broken by a lazy import shows up here as a partially
    initialized module)."""
    names = [info.name for info in pkgutil.walk_packages(alight.__path__, "alight.") if info.name in MODULES]
    assert len(names) > 90
    failed = {}
    for name in names:
        done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, check=False)
        if done.returncode:
            failed[name] = done.stderr.strip().splitlines()[-1]
    assert not failed
