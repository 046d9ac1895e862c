"""One small study for every serve test, built once per session (see ``tests/bundles.py``)."""

from __future__ import annotations

import pytest

from bundles import Study, build_study


@pytest.fixture(scope="session")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    return build_study(tmp_path_factory.mktemp("serve"))
