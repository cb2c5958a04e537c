"""The copied test vectors must stay byte-identical to the project's shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.wallet.conftest import FIXTURES

REPO = Path(__file__).resolve().parents[2]


def shared_credentials() -> Path | None:
    for candidate in (
        REPO.parent / "shared" / "fixtures",
        Path(os.environ.get("MINWON_FIXTURES", "/nonexistent")),
    ):
        if (candidate / "credentials").is_dir():
            return candidate / "credentials"
    return None


def test_copies_match_the_shared_fixtures() -> None:
    shared = shared_credentials()
    if shared is None:
        pytest.skip("no ../shared/fixtures or MINWON_FIXTURES here; the copies are what the tests use")
    originals = {p.relative_to(shared) for p in shared.rglob("*") if p.is_file()}
    copies = {p.relative_to(FIXTURES) for p in FIXTURES.rglob("*") if p.is_file() and p.name != "SOURCES.md"}
    assert copies == originals
    for relative in originals:
        assert (FIXTURES / relative).read_bytes() == (shared / relative).read_bytes(), relative
