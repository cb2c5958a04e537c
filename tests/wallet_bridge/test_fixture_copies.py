"""The copied test vectors are byte-identical to the shared fixtures they were copied from.

SHA256SUMS was written from ../shared/fixtures/credentials when the copies were made, so the check runs
on a clean clone too; where the shared folder is present, the copies are compared with it as well.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.wallet_bridge.conftest import FIXTURES

REPO = Path(__file__).resolve().parents[2]


def manifest() -> dict[Path, str]:
    lines = (FIXTURES / "SHA256SUMS").read_text().splitlines()
    return {Path(name.removeprefix("./")): digest for digest, name in (line.split(maxsplit=1) for line in lines)}


def test_copies_match_the_recorded_checksums() -> None:
    recorded = manifest()
    copies = {p.relative_to(FIXTURES) for p in FIXTURES.rglob("*")
              if p.is_file() and p.name not in ("SOURCES.md", "SHA256SUMS")}
    assert copies == set(recorded)
    for relative, digest in recorded.items():
        assert hashlib.sha256((FIXTURES / relative).read_bytes()).hexdigest() == digest, relative


def test_checksums_match_the_shared_fixtures_when_present() -> None:
    shared = next((c / "credentials" for c in (REPO.parent / "shared" / "fixtures",
                                               Path(os.environ.get("MINWON_FIXTURES", "/nonexistent")))
                   if (c / "credentials").is_dir()), None)
    recorded = manifest()
    if shared is not None:
        originals = {p.relative_to(shared): hashlib.sha256(p.read_bytes()).hexdigest()
                     for p in shared.rglob("*") if p.is_file()}
        assert originals == recorded
    # Without the shared folder (a clean CI clone) the manifest must still cover every copied vector.
    assert len(recorded) == 28
