"""Fixtures for the sweep tests: Ray's token authentication kept out of $HOME, and one local Ray
per module."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


@pytest.fixture(scope="session", autouse=True)
def ray_token(tmp_path_factory) -> Path:
    """Token authentication on, with a token file of this session: Ray would otherwise write
    ``~/.ray/auth_token`` when it starts a cluster (and set RAY_AUTH_MODE in this process).

    Ray's C++ side reads these variables once, when ``ray`` is first imported (test collection
    may have done that), so its cached settings are refreshed after each change.
    """
    from ray._private.authentication_test_utils import reset_auth_token_state

    saved = {name: os.environ.get(name) for name in AUTH_VARIABLES}
    token = tmp_path_factory.mktemp("ray-auth") / "auth_token"
    token.write_text(secrets.token_hex(32))
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    reset_auth_token_state()
    yield token
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    reset_auth_token_state()


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray cluster of 2 CPUs for the tests of a module (starting one takes seconds)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield
    ray.shutdown()
