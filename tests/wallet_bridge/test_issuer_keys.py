"""Issuer keys: made on first run, kept encrypted in the data directory, rotated with old keys published."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from domain.crypto import jwk_thumbprint
from domain.signing_keys import IssuerKeyring


def test_first_use_creates_one_p256_key(tmp_path: Path) -> None:
    ring = IssuerKeyring(tmp_path, b"secret")
    assert not (tmp_path / "issuer-keys").exists()
    key = ring.active_key()
    jwks = ring.jwks()
    assert len(jwks["keys"]) == 1
    published = jwks["keys"][0]
    assert published["kty"] == "EC" and published["crv"] == "P-256" and published["alg"] == "ES256"
    assert published["kid"] == key.kid == jwk_thumbprint(published)
    assert "d" not in published
    assert ring.active_key().kid == key.kid  # the second call does not make another


def test_key_survives_a_restart_and_is_encrypted_at_rest(tmp_path: Path) -> None:
    kid = IssuerKeyring(tmp_path, b"secret").active_key().kid
    assert IssuerKeyring(tmp_path, b"secret").active_key().kid == kid
    stored = json.loads((tmp_path / "issuer-keys" / f"{kid}.json").read_text())
    assert "ENCRYPTED PRIVATE KEY" in stored["private_key_pem"]
    assert oct((tmp_path / "issuer-keys" / f"{kid}.json").stat().st_mode & 0o777) == "0o600"


def test_rotation_keeps_old_keys_published(tmp_path: Path) -> None:
    ring = IssuerKeyring(tmp_path, b"secret")
    first = ring.active_key()
    second = ring.rotate()
    third = ring.rotate()
    assert len({first.kid, second.kid, third.kid}) == 3
    assert ring.active_key().kid == third.kid
    assert [k["kid"] for k in ring.jwks()["keys"]] == [third.kid, second.kid, first.kid]
    assert ring.find(first.kid) is not None
    # Another process (a second worker) sees the rotation without a restart.
    assert IssuerKeyring(tmp_path, b"secret").active_key().kid == third.kid


def test_another_worker_notices_a_rotation(tmp_path: Path) -> None:
    worker_a = IssuerKeyring(tmp_path, b"secret")
    worker_b = IssuerKeyring(tmp_path, b"secret")
    assert worker_a.active_key().kid == worker_b.active_key().kid
    rotated = worker_a.rotate()
    assert worker_b.active_key().kid == rotated.kid


def _first_key(directory: str, queue: multiprocessing.Queue) -> None:
    queue.put(IssuerKeyring(Path(directory), b"secret").active_key().kid)


def test_workers_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    # Spawned, not forked: a fork copies whatever lock one of this process's threads (the shared app's
    # workers) holds at that moment, and the child can wait on it forever.
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = context.Queue()
    workers = [context.Process(target=_first_key, args=(str(tmp_path), queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    kids = {queue.get(timeout=5) for _ in workers}
    assert len(kids) == 1
    assert len(list((tmp_path / "issuer-keys").glob("*.json"))) == 1
