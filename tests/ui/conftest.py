"""Browser tests (marker `ui`) run only when selected (`make test-ui`, i.e. `pytest -m ui tests/ui`)."""
from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `ui` tests unless the marker expression names them: `make test` stays browser-free."""
    if "ui" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="browser test: run it with `make test-ui` (pytest -m ui tests/ui)")
    for item in items:
        if item.get_closest_marker("ui") is not None:
            item.add_marker(skip)
