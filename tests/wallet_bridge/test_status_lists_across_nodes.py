"""Status-list indices and status bits with two nodes on one database (SQLite and PostgreSQL), many threads at
once: every credential gets indices no other credential has, every list keeps the bits every node set, and the
first lists are made once however many nodes need one at the same moment."""

from __future__ import annotations

import secrets
from collections import Counter

import pytest
from sqlalchemy import select

from services import Services
from tests.nodes import run_together, running_nodes
from tests.wallet_bridge.conftest import Holder
from wallet_bridge.revocation import CredentialAlreadyRevoked
from wallet_bridge.status_list import REVOCATION, SUSPENSION, bit_at, decode_bitstring, status_of
from wallet_bridge.tables import issued_credentials, status_entries, status_lists

PRE_AUTHORIZED = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
THREADS_PER_NODE = 3
ISSUED_PER_THREAD = 4


def issue(node: Services, holder: Holder) -> str:
    """The whole OID4VCI flow on `node` for the demo citizen's resident registration copy; the credential id."""
    wallet = node.wallet
    offer = wallet.offers.create_offer("citizen-0001", "wallet-0001", "cert-0001-rrc", "resident-registration-copy",
                                       "test-" + secrets.token_hex(8))
    grant = offer.credential_offer["grants"][PRE_AUTHORIZED]
    # A client address of its own per issuance: the token endpoint's per-address limit is not under test here.
    token = wallet.offers.exchange_token(
        {"grant_type": PRE_AUTHORIZED, "pre-authorized_code": grant["pre-authorized_code"], "tx_code": offer.tx_code},
        client_key="client-" + secrets.token_hex(6))
    response = wallet.issuance.handle(f"Bearer {token['access_token']}", {
        "credential_configuration_id": offer.credential_offer["credential_configuration_ids"][0],
        "proofs": {"jwt": [holder.proof(wallet.config.issuer, wallet.nonces.issue(), wallet.clock())]},
    })
    credential = wallet.verify(response["credentials"][0]["credential"], holder.jwk)
    assert credential.valid, credential.checks
    return credential.credential["id"]


def issue_many(node: Services, count: int) -> list[str]:
    holder = Holder()
    return [issue(node, holder) for _ in range(count)]


def credentials(node: Services) -> dict[str, dict]:
    with node.db.read() as conn:
        return {row["id"]: dict(row) for row in conn.execute(select(issued_credentials)).mappings().all()}


def lists(node: Services) -> dict[str, dict]:
    with node.db.read() as conn:
        return {row["id"]: dict(row) for row in conn.execute(select(status_lists)).mappings().all()}


@pytest.fixture()
def nodes(tmp_path, database_url):
    with running_nodes(tmp_path, database_url) as both:
        yield both


def test_concurrent_issuance_on_two_nodes_gives_unique_indices_from_one_list_each(nodes):
    first, second = nodes
    # Both nodes start on an empty database: every thread needs the first lists at the same moment.
    calls = [lambda node=node: issue_many(node, ISSUED_PER_THREAD)
             for node in (first, second) for _ in range(THREADS_PER_NODE)]
    issued = [credential for batch in run_together(calls) for credential in batch]
    assert len(issued) == len(set(issued)) == 2 * THREADS_PER_NODE * ISSUED_PER_THREAD

    rows = credentials(first)
    assert set(rows) == set(issued)
    for purpose in ("revocation", "suspension"):
        places = [(row[f"{purpose}_list_id"], row[f"{purpose}_index"]) for row in rows.values()]
        assert len(set(places)) == len(places), f"a {purpose} index was given twice"
    by_purpose = Counter(row["purpose"] for row in lists(first).values())
    assert by_purpose == {REVOCATION: 1, SUSPENSION: 1}  # made once, not once per node or thread
    with first.db.read() as conn:
        entries = conn.execute(select(status_entries)).mappings().all()
    assert sorted((e["list_id"], e["idx"]) for e in entries) == sorted(
        [(r["revocation_list_id"], r["revocation_index"]) for r in rows.values()]
        + [(r["suspension_list_id"], r["suspension_index"]) for r in rows.values()])
    assert all(row["allocated"] == len(issued) for row in lists(first).values())


def test_revocations_suspensions_and_issuance_on_two_nodes_lose_no_bit(nodes):
    first, second = nodes
    existing = issue_many(first, 24)
    revoked_on_first, revoked_on_second = existing[0:16:2], existing[1:16:2]
    suspended, resumed = existing[16:20], existing[20:24]
    for credential in resumed:
        second.wallet.status_control.suspend(credential)

    def revoke(node: Services, ids: list[str]) -> None:
        for credential in ids:
            node.wallet.status_control.revoke(credential)

    def suspend_and_resume(node: Services) -> None:
        for credential in suspended:
            node.wallet.status_control.suspend(credential)
        for credential in resumed:
            node.wallet.status_control.resume(credential)

    # Read-modify-write of the same two bitstrings from both nodes at once, while new credentials take indices
    # in the same lists; one bit lost would show below.
    new = run_together([
        lambda: revoke(first, revoked_on_first[:4]), lambda: revoke(second, revoked_on_second[:4]),
        lambda: revoke(first, revoked_on_second[4:]), lambda: revoke(second, revoked_on_first[4:]),
        lambda: suspend_and_resume(first), lambda: issue_many(second, 6), lambda: issue_many(first, 6),
    ])
    issued_meanwhile = new[5] + new[6]

    rows = credentials(second)
    revoked = set(revoked_on_first + revoked_on_second)
    for credential, row in rows.items():
        assert (row["revoked_at"] is not None) == (credential in revoked)
        assert row["suspended"] == (credential in suspended)
    for list_id, stored in lists(second).items():
        bits = stored["bits"]
        purpose = stored["purpose"]
        expected = {row[f"{purpose}_index"] for credential, row in rows.items() if row[f"{purpose}_list_id"] == list_id
                    and (credential in revoked if purpose == REVOCATION else credential in suspended)}
        set_bits = {index for index in range(stored["size"]) if bit_at(bits, index)}
        assert set_bits == expected, f"the {purpose} list's bits are not the ones the nodes set"
        assert stored["allocated"] == len(existing) + len(issued_meanwhile)
    # What a verifier reads: the list each node publishes says the same for every credential.
    for credential, row in rows.items():
        for node in (first, second):
            token = node.wallet.status_list_jwt(row["revocation_list_id"])
            published = node.wallet.verify(token)
            entry = node.wallet.status_lists.entry(row["revocation_list_id"], row["revocation_index"], REVOCATION)
            assert status_of(entry, published.credential) == (credential in revoked)
    assert decode_bitstring(published.credential["credentialSubject"]["encodedList"]) == lists(first)[
        row["revocation_list_id"]]["bits"]


def test_a_revocation_and_a_suspension_of_one_credential_on_two_nodes_at_once(nodes):
    first, second = nodes
    credential = issue_many(first, 1)[0]
    refused: list[str] = []

    def suspend() -> None:
        try:
            second.wallet.status_control.suspend(credential)
        except CredentialAlreadyRevoked:
            refused.append(credential)

    # Either the suspension came first and the revocation followed it, or the revocation came first and the
    # suspension is refused; never a revocation undone by the other node's write.
    run_together([lambda: first.wallet.status_control.revoke(credential), suspend])
    state = second.wallet.status_control.state(credential)
    assert state is not None and state.revoked and state.suspended == (not refused)
    row = credentials(first)[credential]
    stored = lists(first)
    assert bit_at(stored[row["revocation_list_id"]]["bits"], row["revocation_index"]) == 1
    assert bit_at(stored[row["suspension_list_id"]]["bits"], row["suspension_index"]) == int(not refused)
