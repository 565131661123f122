"""Fixtures a test module imports when it is about the model: its `stack` and `api` are the session's
model stack (the real vLLM), not the shared stack on the scripted model.

    from tests.real_model import api, stack  # noqa: F401 - this module's stack serves the real model
"""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import Stack


@pytest.fixture(scope="module")
def stack(model_stack: Stack) -> Stack:
    """The session's stack on the real model server."""
    return model_stack


@pytest.fixture(scope="module")
def api(model_api: httpx.Client) -> httpx.Client:
    """An admin client of the stack on the real model server."""
    return model_api
