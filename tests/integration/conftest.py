"""Fixtures of the tests that drive a real app from outside (`testkit.processes`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from testkit.processes import RunningApp, running_app


@pytest.fixture(scope="module")
def reference_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """The reference app, one OS process per test module."""
    log_path = tmp_path_factory.mktemp("reference") / "app.log"
    with running_app("examples.reference:app", log_path) as app:
        yield app
