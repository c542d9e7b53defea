"""Shared test set-up: offline by default, small fixtures shipped under tests/fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Models come from installed packages; a hub download must fail loudly, never happen.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
