"""Cost and hostile input: each test is an attack on the running app that must fail.

Unbounded work per request (phrase lists, exponential segmentation), unbounded storage (rate-limit
rows, metric labels), inputs that used to end in a 500, and a forged X-Forwarded-For.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from datetime import timedelta

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from channels.alexa.verification import AlexaVerificationError, _parse_envelope
from domain.attempts import RateLimit, rate_limits
from domain.clock import utc_now
from domain.crypto import JWSError, b64url_encode, public_jwk, sign_compact, strict_json_loads
from http_api import client_address
from voice.asr import _segment_into_vocabulary
from voice.endpoints import MAX_PHRASE_CHARS, MAX_PHRASES

WAV = {"Content-Type": "audio/wav"}
GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"


def error_code(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]["code"]


def fresh_budget(services, kind: str, per_minute: int, **options) -> RateLimit:
    """A budget of `per_minute` for `kind` that no earlier test has spent (a name of its own keys its rows apart)."""
    return RateLimit(f"{kind}-test-{secrets.token_hex(4)}", per_minute, 60, services.settings.secret_key, **options)


@pytest.fixture()
def ip_budget(services, monkeypatch):
    """A per-address budget of `n` requests a minute on the shared app, for this test only."""

    def install(per_minute: int) -> RateLimit:
        limiter = fresh_budget(services, "ip", per_minute)
        monkeypatch.setitem(services.rate_limits.budgets, "ip", limiter)
        return limiter

    return install


@pytest.fixture()
def trusted_proxies(services, monkeypatch):
    """Set MINWON_TRUSTED_PROXIES on the shared app for this test only."""

    def install(value: str) -> None:
        settings = services.settings
        monkeypatch.setattr(services, "settings", dataclasses.replace(
            settings, extra={**settings.extra, "MINWON_TRUSTED_PROXIES": value}))

    return install


# --- 1. /v1/asr phrase lists ------------------------------------------------------------------------


def test_asr_refuses_more_phrases_than_the_limit(client):
    too_many = "&".join(f"phrase=단어{i}" for i in range(MAX_PHRASES + 1))
    assert error_code(client.post(f"/v1/asr?{too_many}", data=b"", headers=WAV)) == (400, "too_many_phrases")
    enough = "&".join(f"phrase=단어{i}" for i in range(MAX_PHRASES))
    assert error_code(client.post(f"/v1/asr?{enough}", data=b"", headers=WAV)) == (400, "empty_audio")


def test_asr_refuses_a_phrase_longer_than_the_limit(client):
    too_long = "가" * (MAX_PHRASE_CHARS + 1)
    response = client.post("/v1/asr", query_string={"phrase": ["예", too_long]}, data=b"", headers=WAV)
    assert error_code(response) == (400, "phrase_too_long")


def test_a_phrase_no_split_can_cover_is_answered_in_milliseconds(live_server, services):
    # "아" and "아아" are in the model's vocabulary, so every split of the run is a candidate and the final
    # "q" defeats all of them: the backtracking segmentation took 7.8 s at 22 letters, ×2.6 per letter more.
    assert services.components["asr"].knows_word("ko-KR", "아")
    hostile = "아" * 40 + "q"
    started = time.perf_counter()
    response = requests.post(f"{live_server}/v1/asr", params={"phrase": hostile}, data=b"", headers=WAV, timeout=60)
    elapsed = time.perf_counter() - started
    assert response.status_code < 500 and elapsed < 2.0, (response.status_code, elapsed)


def test_segmentation_is_polynomial_not_exponential():
    calls = 0

    def known(word: str) -> bool:
        nonlocal calls
        calls += 1
        return set(word) == {"아"} and len(word) <= 3

    word = "아" * MAX_PHRASE_CHARS + "q"
    started = time.perf_counter()
    assert _segment_into_vocabulary(word, known) is None
    assert time.perf_counter() - started < 1.0 and calls <= len(word) ** 2
    assert _segment_into_vocabulary("아" * 7, known) == ["아아아", "아아아", "아"]  # longest pieces first


# --- 2. rate-limit buckets, unrouted requests, metric labels ------------------------------------------


class Frozen:
    """A clock that stands still until moved, for the budgets under test."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self):
        return self.now


def rows_for(services, limiter: RateLimit, keys) -> int:
    with services.db.read() as conn:
        return conn.execute(select(func.count()).select_from(rate_limits).where(
            rate_limits.c.key.in_([limiter.digest(key) for key in keys]))).scalar()


def test_spraying_keys_neither_resets_a_real_clients_budget_nor_grows_the_table_for_good(client, services,
                                                                                        monkeypatch):
    clock = Frozen()
    limiter = fresh_budget(services, "user", 2, clock=clock)
    monkeypatch.setitem(services.rate_limits.budgets, "user", limiter)
    monkeypatch.setattr(services.rate_limits, "clock", clock)
    user_id = "dev-real-client-" + secrets.token_hex(4)
    auth = {"Authorization": "Bearer " + services.devices.issue(user_id)}

    def converse():
        return client.post("/v1/converse", json={"text": "도움말"}, headers=auth)

    assert [converse().status_code for _ in range(2)] == [200, 200]
    assert error_code(converse()) == (429, "rate_limited")
    # The attacker makes up a user id per request (here straight at the limits: as many HTTP turns would test
    # the same code, slower). Each sprayed key is a row with one event counted; no row is ever evicted, so
    # nothing the attacker does gives the real client its budget back …
    sprayed = [f"spray-{i}" for i in range(2000)]
    for key in sprayed:
        assert services.rate_limits.retry_after([("user", key)]) == 0
    assert error_code(converse()) == (429, "rate_limited")
    assert rows_for(services, limiter, sprayed) == len(sprayed)
    # … and once a minute has passed every one of those budgets is full again: the periodic purge removes them.
    clock.now += timedelta(seconds=61)
    assert services.purge() >= len(sprayed)
    assert rows_for(services, limiter, [*sprayed, user_id]) == 0
    assert converse().status_code == 200


def test_rate_limit_rows_name_no_user_address_or_token(client, services, monkeypatch):
    limiter = fresh_budget(services, "user", 5)
    monkeypatch.setitem(services.rate_limits.budgets, "user", limiter)
    user_id = "dev-visible-" + secrets.token_hex(4)
    token = services.devices.issue(user_id)
    address = f"198.51.100.{secrets.randbelow(250) + 1}"
    assert client.post("/v1/converse", json={"text": "도움말"}, headers={"Authorization": f"Bearer {token}"},
                       environ_base={"REMOTE_ADDR": address}).status_code == 200
    with services.db.read() as conn:
        stored = [row.key for row in conn.execute(select(rate_limits.c.key))]
    assert limiter.digest(user_id) in stored
    assert all(len(key) == 64 and int(key, 16) >= 0 for key in stored)  # keyed SHA-256 digests, nothing else
    assert not any(user_id in key or address in key or token in key for key in stored)


def test_unknown_paths_and_methods_spend_the_address_budget(client, ip_budget):
    ip_budget(3)
    attacker = {"REMOTE_ADDR": "198.51.100.7"}
    assert client.get("/no-such-path", environ_base=attacker).status_code == 404
    assert client.open("/random-xyz", method="PROPFIND", environ_base=attacker).status_code == 404
    assert client.open("/v1/converse", method="FOO", environ_base=attacker).status_code == 405
    response = client.delete("/v1/converse", environ_base=attacker)
    assert error_code(response) == (429, "rate_limited") and int(response.headers["Retry-After"]) >= 1
    assert client.get("/no-such-path", environ_base={"REMOTE_ADDR": "198.51.100.8"}).status_code == 404


def test_metrics_never_use_a_client_chosen_method_or_path(live_server):
    assert requests.request("PROPFIND", f"{live_server}/random-xyz", timeout=10).status_code == 404
    assert requests.request("FOO", f"{live_server}/v1/converse", timeout=10).status_code == 405
    text = requests.get(f"{live_server}/metrics", timeout=10).text
    for chosen in ("PROPFIND", "FOO", "random-xyz"):
        assert chosen not in text
    assert 'method="OTHER",route="unmatched",status="404"' in text
    assert 'method="OTHER",route="unmatched",status="405"' in text


def test_405_says_which_methods_are_allowed(live_server):
    response = requests.delete(f"{live_server}/v1/converse", timeout=10)
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in {m.strip() for m in response.headers["Allow"].split(",")}


# --- 3. inputs that used to answer 500 ---------------------------------------------------------------


def test_strict_json_refuses_nan_infinity_and_deep_nesting():
    for text in ("NaN", '{"iat": Infinity}', "[-Infinity]", '{"iat": 1e400}', "[" * 65 + "]" * 65):
        with pytest.raises(JWSError):
            strict_json_loads(text)
    assert strict_json_loads("[" * 64 + "]" * 64) is not None


@pytest.mark.parametrize("where", ["header", "payload"])
def test_a_deeply_nested_jws_is_a_format_failure_not_a_500(client, where):
    deep = b64url_encode(b"[" * 20_000 + b"]" * 20_000)  # fits the 64 KB body limit
    header = b64url_encode(b'{"alg":"ES256","typ":"vc+jwt"}')
    token = f"{deep}.{header}.AAAA" if where == "header" else f"{header}.{deep}.AAAA"
    response = client.post("/v1/credentials/verify", json={"credential": token})
    # A token that cannot be read is answered like any malformed credential: 200, not valid, "format".
    assert response.status_code == 200, response.get_data(as_text=True)[:200]
    body = response.get_json()
    assert body["valid"] is False and body["failed_check"] == "format"


def test_a_nan_in_a_jws_header_is_a_format_failure(client):
    header = b64url_encode(b'{"alg":"ES256","x":NaN}')
    token = f"{header}.{b64url_encode(b'{}')}.AAAA"
    body = client.post("/v1/credentials/verify", json={"credential": token}).get_json()
    assert body["failed_check"] == "format" and "NaN" in body["checks"][0]["detail"]


def test_a_deeply_nested_alexa_envelope_is_malformed_json(app, client, monkeypatch):
    # Reachable with request verification switched off (development), and after a valid signature with it on.
    monkeypatch.setattr(app.extensions["minwon_alexa"], "verify", False)
    response = client.post("/alexa", data="[" * 30_000 + "]" * 30_000, content_type="application/json")
    assert error_code(response) == (400, "malformed_json")
    with pytest.raises(AlexaVerificationError):
        _parse_envelope(b"[" * 30_000 + b"]" * 30_000)


@pytest.mark.parametrize("iat", [float("nan"), float("inf"), 1e300, -1e300, 10**400])
def test_a_key_proof_with_an_impossible_iat_is_invalid_proof(client, services, iat):
    bridge = services.wallet
    offer = bridge.offers.create_offer("citizen-0001", "wallet-0001", "cert-0001-rrc", "resident-registration-copy",
                                       "hostile-iat-" + secrets.token_hex(4))
    grant = offer.credential_offer["grants"][GRANT]
    form = {"grant_type": GRANT, "pre-authorized_code": grant["pre-authorized_code"], "tx_code": offer.tx_code}
    access = client.post("/oid4vci/token", data=form).get_json()["access_token"]
    nonce = client.post("/oid4vci/nonce").get_json()["c_nonce"]
    key = ec.generate_private_key(ec.SECP256R1())
    # Signed over exactly what json.dumps writes for the value (NaN, Infinity, 1e+300): a valid signature.
    proof = sign_compact({"typ": "openid4vci-proof+jwt", "jwk": public_jwk(key)},
                         {"aud": bridge.config.issuer, "iat": iat, "nonce": nonce}, key)
    response = client.post("/oid4vci/credential", headers={"Authorization": f"Bearer {access}"}, json={
        "credential_configuration_id": offer.credential_offer["credential_configuration_ids"][0],
        "proofs": {"jwt": [proof]}})
    assert response.status_code == 400, response.get_data(as_text=True)[:200]
    assert response.get_json()["error"] == "invalid_proof"


@pytest.mark.parametrize(("field", "value", "code"), [
    ("sample_rate", 16000.0, "invalid_sample_rate"),
    ("sample_rate", True, "invalid_sample_rate"),
    ("rate", True, "invalid_rate"),
    ("rate", False, "invalid_rate"),
    ("rate", 150.0, "invalid_rate"),
])
def test_tts_numbers_must_be_json_integers(client, field, value, code):
    response = client.post("/v1/tts", json={"text": "안녕하세요", field: value})
    assert error_code(response) == (400, code)


@pytest.mark.parametrize("k", ["²", "٣", "३", "-1", "0", "21", "1.5", " 5"])
def test_faq_k_must_be_ascii_digits_in_range(client, k):
    response = client.get("/v1/faq/search", query_string={"q": "등본 발급", "k": k})
    assert error_code(response) == (400, "invalid_k")


# --- 4. trusted proxies and X-Forwarded-For -----------------------------------------------------------


def address_seen(app, peer: str, forwarded: str | None = None) -> str:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    with app.test_request_context("/", headers=headers, environ_base={"REMOTE_ADDR": peer}):
        return client_address()


def test_without_trusted_proxies_a_forged_forwarded_for_does_not_change_the_bucket(live_server, ip_budget):
    ip_budget(2)
    statuses = [requests.get(f"{live_server}/no-such-path", timeout=10,
                             headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(4)]
    assert statuses == [404, 404, 429, 429]


def test_with_one_trusted_hop_the_right_most_untrusted_address_is_used(app, client, ip_budget, trusted_proxies):
    trusted_proxies("1")
    assert address_seen(app, "10.0.0.1", "6.6.6.6, 203.0.113.10") == "203.0.113.10"
    assert address_seen(app, "10.0.0.1") == "10.0.0.1"  # did not come through the proxy
    ip_budget(2)
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    statuses = [client.get("/no-such-path", environ_base=proxy,
                           headers={"X-Forwarded-For": f"198.51.100.{i}, 203.0.113.10"}).status_code for i in range(3)]
    assert statuses == [404, 404, 429]  # the forged left-hand entries share one bucket
    other = client.get("/no-such-path", environ_base=proxy, headers={"X-Forwarded-For": "203.0.113.11"})
    assert other.status_code == 404  # another client behind the proxy has its own budget


def test_trusted_proxy_networks_are_skipped_from_the_right(app, trusted_proxies):
    trusted_proxies("10.0.0.0/8, 192.168.0.0/16")
    chain = "6.6.6.6, 198.51.100.4, 192.168.1.2"
    assert address_seen(app, "10.0.0.1", chain) == "198.51.100.4"
    assert address_seen(app, "203.0.113.9", chain) == "203.0.113.9"  # the peer is no proxy of ours
    assert address_seen(app, "10.0.0.1", "not-an-ip, 192.168.1.2") == "192.168.1.2"
    trusted_proxies("nonsense")
    assert address_seen(app, "10.0.0.1", chain) == "10.0.0.1"  # a setting that cannot be read trusts no one


def test_token_endpoint_counts_attempts_per_client_address(client, services, monkeypatch):
    # The tx_code guessing budget of the token endpoint is keyed the same way: forging X-Forwarded-For
    # with no trusted proxy does not buy more guesses.
    offers = services.wallet.offers
    monkeypatch.setattr(offers, "limiter", fresh_budget(services, "token", 2, clock=offers.limiter.clock))
    peer = {"REMOTE_ADDR": f"192.0.2.{secrets.randbelow(250) + 1}"}
    form = {"grant_type": GRANT, "pre-authorized_code": "guess"}
    statuses = [client.post("/oid4vci/token", data=form, environ_base=peer,
                            headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(3)]
    assert statuses == [400, 400, 429]
