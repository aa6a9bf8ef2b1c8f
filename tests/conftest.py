"""Shared test set-up: the golden-vector directory and the hypothesis profiles.

``HYPOTHESIS_PROFILE=fuzz`` runs the property tests with 20,000 examples each.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import vectors` in any layout

import vectors  # noqa: E402

settings.register_profile("default", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """../shared/vectors (or $BRIDGE_VECTORS_DIR); a missing directory fails the test."""
    return vectors.vectors_dir()
