"""Two service nodes on one PostgreSQL database behave as one service.

Two real gunicorn processes (`app:create_production_app()`, as `make serve-prod` runs them, started by
`bench.cluster.ServiceNode`), each with its own data directory, on two loopback ports, sharing one database of the
test cluster, one MINWON_SECRET_KEY and one issuer address (the address a load balancer would have). The first
node's `app.py init` seeds the demo data; the nodes run without the FAQ and speech models (MINWON_LOAD_MODELS=0:
the dialog checks need none). The test process reaches the same database with its own stores to make fresh
citizens, so that every check has speakers of its own and stays within the per-user rate limit of 20 a minute.

Node B is SIGKILLed (its master and workers at once) in the last test; nothing runs on it after that.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import func, select

from bench.cluster import ServiceNode, cluster_env, start_nodes
from domain.certificates import Certificate
from domain.clock import korean_today
from domain.consent_ledger import consent_events, consent_records, idempotency_key
from local_postgres import PostgresCluster
from services import Services
from settings import Settings
from tests.conftest import ROOT
from understanding.model import LEXICAL, model_directory, save_model
from wallet_bridge.holder import ReferenceHolder
from wallet_bridge.tables import issued_credentials, offers

# The cluster's public address: the issuer identifier both nodes publish. Requests to it are routed to one node
# by `routed_session`, as a load balancer would route them.
CLUSTER_ADDRESS = "http://minwon-cluster.test"
RATE_LIMIT = 20
TX_CODE = re.compile(r'<say-as interpret-as="digits">(\d+)</say-as>')
CONSENT_ON = "국민건강보험공단에 소득 정보 공유 켜줘"
CONSENT_OFF = "국민건강보험공단에 소득 정보 공유 꺼줘"
SEND_TO_WALLET = "주민등록표 등본 지갑으로 보내줘"


@dataclass
class TwoNodes:
    a: ServiceNode
    b: ServiceNode
    stores: Services

    def cli(self, node: ServiceNode, *args: str) -> subprocess.CompletedProcess:
        """`python app.py …` as an operator on `node`'s host runs it."""
        return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=node.env, capture_output=True,
                              text=True, timeout=120)


@pytest.fixture(scope="module")
def nodes(postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    root = tmp_path_factory.mktemp("two-nodes")
    env = cluster_env(postgres.new_database(), secrets.token_hex(32), secrets.token_urlsafe(24), CLUSTER_ADDRESS, {
        "MINWON_LOAD_MODELS": "0", "MINWON_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT), "MINWON_LOG_LEVEL": "WARNING",
    })
    a = ServiceNode("node-a", root / "node-a", env, workers=2, threads=8)
    b = ServiceNode("node-b", root / "node-b", env, workers=2, threads=8)
    stores = Services(Settings.from_env({**env, "MINWON_DATA_DIR": str(root / "tool")}, load_models=False))
    # Each node finds the router's model in its data directory, as after `build-index`, instead of training it in
    # its first turn (half a minute of CPU under load, longer than a test's request timeout).
    router_model = stores.router.lexical_model()
    for node in (a, b):
        save_model(router_model, model_directory(node.data_dir, LEXICAL))
    try:
        start_nodes([a, b], timeout=180)
        yield TwoNodes(a, b, stores)
    finally:
        for node in (a, b):
            node.stop()
        stores.stop()


# -- speakers and turns -------------------------------------------------------------------------------------

@dataclass
class Speaker:
    """A fresh citizen with a linked speaker user and its device token, an issued resident registration copy
    and, when asked for, a wallet."""

    citizen_id: str
    user_id: str
    token: str
    pin: str = "2580"
    wallet_id: str | None = None
    wallet_token: str | None = None
    session_id: str | None = None
    log: list[tuple[str, int]] = field(default_factory=list)

    def say(self, node: ServiceNode, text: str, request_id: str | None = None, new_session: bool = False) -> dict:
        """One turn on `node` in this speaker's session; asserts 200."""
        response = self.post(node, text, request_id, new_session)
        assert response.status_code == 200, (node.name, text, response.status_code, response.text)
        reply = response.json()
        self.session_id = reply["session_id"]
        return reply

    def post(self, node: ServiceNode, text: str, request_id: str | None = None,
             new_session: bool = False) -> requests.Response:
        body: dict[str, Any] = {"text": text}
        if self.session_id and not new_session:
            body["session_id"] = self.session_id
        if request_id:
            body["request_id"] = request_id
        response = requests.post(node.url + "/v1/converse", json=body, timeout=30,
                                 headers={"Authorization": f"Bearer {self.token}"})
        self.log.append((node.name, response.status_code))
        return response


def new_speaker(stores: Services, wallet: bool = False) -> Speaker:
    suffix = secrets.token_hex(4)
    speaker = Speaker(citizen_id=f"citizen-n-{suffix}", user_id=f"user-n-{suffix}", token="")
    stores.accounts.create_citizen(speaker.citizen_id, "두 노드 시민", "ko-KR", speaker.pin)
    stores.accounts.link_user(speaker.user_id, speaker.citizen_id)
    speaker.token = stores.devices.issue(speaker.user_id)
    today = korean_today()
    stores.certificates.add(Certificate(
        id=f"cert-n-{suffix}", citizen_id=speaker.citizen_id, doc_type="resident-registration-copy", state="issued",
        applied_on=None, issued_on=today - timedelta(days=30), valid_until=today + timedelta(days=60)))
    if wallet:
        speaker.wallet_id, speaker.wallet_token = f"wallet-n-{suffix}", secrets.token_urlsafe(16)
        stores.wallets.register(speaker.wallet_id, speaker.citizen_id, speaker.wallet_token)
    return speaker


def in_parallel(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Runs the jobs at the same time; returns their results in order (re-raising the first failure)."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        return [future.result() for future in [pool.submit(job) for job in jobs]]


class RouteTo(HTTPAdapter):
    """Sends requests for the cluster's public address to one node, as the load balancer would."""

    def __init__(self, node: ServiceNode) -> None:
        super().__init__()
        self.node = node

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        assert request.url is not None
        request.url = self.node.url + request.url[len(CLUSTER_ADDRESS):]
        return super().send(request, **kwargs)


def routed_session(node: ServiceNode) -> requests.Session:
    session = requests.Session()
    session.mount(CLUSTER_ADDRESS, RouteTo(node))
    return session


def send_to_wallet(speaker: Speaker, asking: ServiceNode, confirming: ServiceNode) -> str:
    """The wallet dialog (document → confirmation → PIN); returns the tx_code read out."""
    assert speaker.say(asking, SEND_TO_WALLET)["expects"] == "confirmation"
    assert speaker.say(confirming, "네")["expects"] == "pin"
    done = speaker.say(asking, speaker.pin)
    assert "전자지갑으로 보냈어요" in done["speech"], done["speech"]
    return TX_CODE.findall(done["ssml"])[0]


def offer_count(stores: Services, wallet_id: str) -> int:
    with stores.db.read() as conn:
        return conn.execute(select(func.count()).select_from(offers).where(offers.c.wallet_id == wallet_id)).scalar()


def consent_event_keys(stores: Services, citizen_id: str) -> list[str | None]:
    with stores.db.read() as conn:
        return list(conn.execute(
            select(consent_events.c.idempotency_key).join(consent_records,
                                                         consent_records.c.id == consent_events.c.record_id)
            .where(consent_records.c.citizen_id == citizen_id).order_by(consent_events.c.seq)).scalars())


def assert_chain_verifies(nodes: TwoNodes) -> None:
    """`app.py verify-consent-chain` on either node's host: one intact chain, every receipt verifiable."""
    for node in (nodes.a, nodes.b):
        result = nodes.cli(node, "verify-consent-chain")
        assert result.returncode == 0, f"on {node.name}: {result.stdout.strip()} {result.stderr.strip()}"
        assert result.stdout.startswith("consent chain ok")


# -- the checks ----------------------------------------------------------------------------------------------

def test_a_dialog_started_on_one_node_continues_on_the_other(nodes):
    speaker = new_speaker(nodes.stores)
    asked = speaker.say(nodes.a, "내 증명서 상태 알려줘")
    assert asked["expects"] == "pin"
    answered = speaker.say(nodes.b, speaker.pin)
    assert answered["session_id"] == asked["session_id"]
    assert answered["intent"] == "certificate_status" and answered["expects"] != "pin"
    assert "증명서 한 건" in answered["speech"], answered["speech"]
    # The PIN given on node B counts on node A for the rest of the session.
    again = speaker.say(nodes.a, "내 증명서 상태 알려줘")
    assert again["expects"] != "pin" and "증명서 한 건" in again["speech"]


def test_wrong_pins_on_both_nodes_count_towards_one_lockout(nodes):
    speaker = new_speaker(nodes.stores)
    assert speaker.say(nodes.a, "내 증명서 상태 알려줘")["expects"] == "pin"
    for attempt, remaining in enumerate(("네 번", "세 번", "두 번", "한 번")):
        reply = speaker.say((nodes.b, nodes.a)[attempt % 2], "0000")
        assert f"{remaining} 더 시도할 수 있어요" in reply["speech"], reply["speech"]
    locked = speaker.say(nodes.b, "0000")
    assert "다섯 번 틀려서" in locked["speech"], locked["speech"]
    assert nodes.stores.accounts.lock_state(speaker.citizen_id) is not None
    # A new session on the other node does not even ask for the PIN while the lock holds.
    refused = speaker.say(nodes.a, "내 증명서 상태 알려줘", new_session=True)
    assert refused["expects"] != "pin" and "개인 정보를 들을 수 없어요" in refused["speech"], refused["speech"]


def test_one_rate_limit_across_nodes(nodes):
    speaker = new_speaker(nodes.stores)
    statuses: dict[str, list[int]] = {nodes.a.name: [], nodes.b.name: []}
    for i in range(int(RATE_LIMIT * 1.5)):
        node = (nodes.a, nodes.b)[i % 2]
        response = speaker.post(node, "도움말")
        statuses[node.name].append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
    allowed = sum(s.count(200) for s in statuses.values())
    # 20 a minute for this user whichever node answers (one more may have refilled while the requests ran).
    assert allowed <= RATE_LIMIT + 1, f"{allowed} of {RATE_LIMIT * 1.5:.0f} requests allowed: {statuses}"
    assert all(429 in s for s in statuses.values()), statuses


def test_concurrent_consent_changes_from_both_nodes_leave_one_chain(nodes):
    speakers = [new_speaker(nodes.stores) for _ in range(4)]

    def toggle_three_times(speaker: Speaker, home: ServiceNode, other: ServiceNode) -> list[str]:
        assert speaker.say(home, CONSENT_ON)["expects"] == "pin"
        assert speaker.say(other, speaker.pin)["expects"] == "confirmation"
        said = [speaker.say(home, "네")["speech"]]
        for text in (CONSENT_OFF, CONSENT_ON):
            assert speaker.say(other, text)["expects"] == "confirmation"
            said.append(speaker.say(home, "네")["speech"])
        return said

    results = in_parallel([
        (lambda s=s, i=i: toggle_three_times(s, *((nodes.a, nodes.b) if i % 2 else (nodes.b, nodes.a))))
        for i, s in enumerate(speakers)])
    for said in results:
        assert ["켰어요" in said[0], "껐어요" in said[1], "켰어요" in said[2]] == [True, True, True], said
    for speaker in speakers:
        assert len(consent_event_keys(nodes.stores, speaker.citizen_id)) == 3
    assert_chain_verifies(nodes)


def test_concurrent_wallet_sends_from_both_nodes_make_one_offer_each(nodes, tmp_path):
    speakers = [new_speaker(nodes.stores, wallet=True) for _ in range(4)]
    homes = [(nodes.a, nodes.b) if i % 2 else (nodes.b, nodes.a) for i in range(len(speakers))]
    tx_codes = in_parallel([(lambda s=s, h=h: send_to_wallet(s, *h)) for s, h in zip(speakers, homes, strict=True)])
    assert [offer_count(nodes.stores, s.wallet_id) for s in speakers] == [1] * len(speakers)

    # Each offer is redeemed on the node that did not make it, all at once: issuance from both nodes.
    def redeem(speaker: Speaker, tx_code: str, node: ServiceNode) -> Any:
        with routed_session(node) as session:
            holder = ReferenceHolder(CLUSTER_ADDRESS, speaker.wallet_id, speaker.wallet_token,
                                     tmp_path / speaker.wallet_id, session=session)
            return holder.run(lambda _entry: tx_code)

    stored = in_parallel([(lambda s=s, c=c, h=h: redeem(s, c, h[1]))
                          for s, c, h in zip(speakers, tx_codes, homes, strict=True)])
    assert [len(credentials) for credentials in stored] == [1] * len(speakers)
    assert all(c[0].verification.valid for c in stored)
    ids = [c[0].credential_id for c in stored]
    with nodes.stores.db.read() as conn:
        rows = conn.execute(select(issued_credentials).where(issued_credentials.c.id.in_(ids))).mappings().all()
    assert len(rows) == len(speakers)
    revocation = {(r["revocation_list_id"], r["revocation_index"]) for r in rows}
    suspension = {(r["suspension_list_id"], r["suspension_index"]) for r in rows}
    assert len(revocation) == len(suspension) == len(speakers), rows


def test_the_same_request_on_both_nodes_at_once_makes_one_offer_and_one_reply(nodes):
    speaker = new_speaker(nodes.stores, wallet=True)
    assert speaker.say(nodes.a, SEND_TO_WALLET)["expects"] == "confirmation"
    assert speaker.say(nodes.b, "네")["expects"] == "pin"
    request_id = "race-" + secrets.token_hex(6)
    responses = in_parallel([(lambda n=n: speaker.post(n, speaker.pin, request_id)) for n in (nodes.a, nodes.b)])
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    first, second = (r.json() for r in responses)
    assert first == second
    assert "전자지갑으로 보냈어요" in first["speech"]
    assert offer_count(nodes.stores, speaker.wallet_id) == 1


def test_both_nodes_publish_the_same_jwks(nodes):
    published = [requests.get(n.url + "/.well-known/jwks.json", timeout=10).json() for n in (nodes.a, nodes.b)]
    assert published[0]["keys"], published
    assert published[0] == published[1]


def test_a_credential_issued_by_one_node_verifies_on_the_other(nodes, tmp_path):
    speaker = new_speaker(nodes.stores, wallet=True)
    tx_code = send_to_wallet(speaker, nodes.a, nodes.a)
    with routed_session(nodes.a) as session:
        holder = ReferenceHolder(CLUSTER_ADDRESS, speaker.wallet_id, speaker.wallet_token, tmp_path / "holder",
                                 session=session)
        [credential] = holder.run(lambda _entry: tx_code)
    token = credential.path.read_text()
    checked = requests.post(nodes.b.url + "/v1/credentials/verify", json={"credential": token,
                            "holder_jwk": holder.jwk}, timeout=10).json()
    assert checked["valid"], {c["name"]: c["detail"] for c in checked["checks"]}
    # And a verifier that fetches the keys and status lists through node B.
    with routed_session(nodes.b) as session:
        verifier = ReferenceHolder(CLUSTER_ADDRESS, speaker.wallet_id, speaker.wallet_token, tmp_path / "holder",
                                   session=session)
        assert verifier.verify(token, CLUSTER_ADDRESS).valid


def test_killing_a_node_mid_write_loses_nothing_acknowledged(nodes):
    """Consent toggles stream through node B; B is SIGKILLed while they run. Every change B acknowledged is in
    the database, the confirmation in flight is retried on node A (same session, same request id) and is done
    exactly once, and the chain verifies."""
    speakers = [new_speaker(nodes.stores) for _ in range(3)]
    acknowledged: dict[str, list[str]] = {s.user_id: [] for s in speakers}
    in_flight: dict[str, tuple[str, bool]] = {}
    failures: list[BaseException] = []
    enough = threading.Event()
    kill_after = secrets.choice(range(3, 7))
    lock = threading.Lock()

    def toggles(speaker: Speaker) -> None:
        """Consent on, off, on … through node B (at most 6 changes: 15 turns, under the rate limit)."""
        if speaker.say(nodes.b, CONSENT_ON)["expects"] != "pin":
            raise AssertionError("no PIN asked")
        if speaker.say(nodes.b, speaker.pin)["expects"] != "confirmation":
            raise AssertionError("no confirmation asked")
        active = True
        for step in range(6):
            if step:
                active = not active
                if speaker.say(nodes.b, CONSENT_ON if active else CONSENT_OFF)["expects"] != "confirmation":
                    raise AssertionError("no confirmation asked")
            request_id = f"kill-{step}"
            with lock:
                in_flight[speaker.user_id] = (request_id, active)
            done = speaker.say(nodes.b, "네", request_id)
            if ("켰어요" if active else "껐어요") not in done["speech"]:
                raise AssertionError(done["speech"])
            with lock:
                del in_flight[speaker.user_id]
                acknowledged[speaker.user_id].append(request_id)
                if sum(map(len, acknowledged.values())) >= kill_after:
                    enough.set()

    def stream(speaker: Speaker) -> None:
        try:
            toggles(speaker)
        except requests.RequestException:
            pass  # node B is gone; a confirmation sent meanwhile stays in flight, its fate unknown
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
            enough.set()

    threads = [threading.Thread(target=stream, args=(s,)) for s in speakers]
    for thread in threads:
        thread.start()
    assert enough.wait(60), "the toggles did not get going"
    assert not failures, failures
    nodes.b.kill()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    assert not nodes.b.alive

    # A platform retries what got no answer, on the node that is left: done once, never twice.
    for speaker in speakers:
        if speaker.user_id in in_flight:
            request_id, active = in_flight[speaker.user_id]
            retried = speaker.say(nodes.a, "네", request_id)
            assert ("켰어요" if active else "껐어요") in retried["speech"] or "이미" in retried["speech"], retried
    for speaker in speakers:
        expected = [idempotency_key(speaker.user_id, r) for r in acknowledged[speaker.user_id]]
        if speaker.user_id in in_flight:
            expected.append(idempotency_key(speaker.user_id, in_flight[speaker.user_id][0]))
        # The first event is the one the PIN step confirmed (request id kill-0), so every event has a key.
        assert consent_event_keys(nodes.stores, speaker.citizen_id) == expected, speaker.user_id
    assert requests.get(nodes.a.url + "/health", timeout=10).status_code == 200
    # Checked from node A's host only: node B's is the one that died.
    result = nodes.cli(nodes.a, "verify-consent-chain")
    assert result.returncode == 0, f"{result.stdout.strip()} {result.stderr.strip()}"
