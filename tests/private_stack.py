"""Fixtures a test module imports when it kills or restarts the worker or its Chromium: its `stack` and
`api` are a stack of the module's own (scripted model server), so the shared one is never damaged.

    from tests.private_stack import api, stack  # noqa: F401 - this module kills its stack's worker
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import Stack, admin_client, running_stack
from tests.scripted_model import ScriptedModel


@pytest.fixture(scope="module")
def stack(base_env: dict[str, str], scripted_model: ScriptedModel,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway + worker of this module's own, on the session's scripted model server."""
    with running_stack(base_env, scripted_model.url, tmp_path_factory.mktemp("private-stack")) as s:
        yield s


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    """An admin client of this module's stack."""
    with admin_client(stack) as c:
        yield c
