"""Schemathesis against /openapi.json over real HTTP (the shared live server, the session app with all models):
every documented operation, fed cases generated from its own entry, must answer no 5xx, only the status codes
its entry documents, the documented media type, and a body that matches the documented schema.

Each operation gets schema-valid and schema-violating cases, plus cases aimed at the demo data (the demo
citizen's consent records and data items, the demo wallet, the demo speakers, real Kakao and NUGU payloads,
real audio) so that the 200 bodies are checked and not only the error paths, and hostile ones (path ids with a
slash, traversal, quotes or NUL; JSON over the size limit), each sent once as it is and then varied. The aimed
cases and two generated cases in three carry the credential the operation takes, where the tests hold one
(CREDENTIALS); the others carry whatever was generated. The per-address budgets are fresh (fresh_address_budgets)
and the demo citizen's PIN counter must come out unchanged.

Bounded for `make test`: a fixed seed (a CI failure replays here, case for case), EXAMPLES_PER_OPERATION cases
generated per operation (fewer for those without parameters) after the aimed ones, generation only (no
shrinking, no example database, no explain phase): about 360 requests, about 10 s (35 s with the app's start).

Run through schemathesis' Python API (`schemathesis.openapi.from_url`, `APIOperation.as_strategy`,
`Case.call_and_validate`) under a plain Hypothesis test, one subtest per operation: its pytest loader
`schemathesis.pytest.from_fixture` renames pytest nodes through `Node._nodeid`, which pytest 9.2 no longer has.
"""

from __future__ import annotations

import dataclasses
import io
import math
import re
import secrets
import struct
import time
import wave
from pathlib import Path
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from channels.console import bp as console_blueprint
from channels.kakao.callback import CallbackPolicy
from domain.attempts import RateLimit
from domain.citizens import citizens
from tests.conftest import DEMO_DEVICE_TOKENS
from wallet_bridge.tables import status_lists

SEED = 20_260_601
EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

DEMO_CITIZEN = "citizen-0001"
KAKAO_TOKEN = "fuzz-kakao-token"
NUGU_TOKEN = "fuzz-nugu-token"

# The credential each operation takes, where the tests hold one (the demo data's published tokens). Left
# out on purpose: the wallet token on PUT …/push-url (a valid call would send the demo wallet's offers to a
# generated public URL), the admin key (POST /v1/admin/reload rebuilds the FAQ index under the other
# tests), and OID4VCI access tokens (they come only from a pre-authorized code). Those operations are
# fuzzed without, and answer 401.
CREDENTIALS = {
    "DeviceToken": {"Authorization": f"Bearer {DEMO_DEVICE_TOKENS['demo-user-ko']}"},
    "CitizenToken": {"Authorization": "Bearer demo-citizen-token-0001"},
    "AgencyKey": {"Authorization": "Bearer demo-agency-key-nhis"},
    "GET /v1/wallets/{wallet_id}/offers": {"Authorization": "Bearer demo-wallet-token-0001"},
    "POST /kakao": {"X-Skill-Token": KAKAO_TOKEN},
    "POST /nugu/{action}": {"Authorization": f"token {NUGU_TOKEN}"},
}

# Audio bodies are bytes as generated, sent as they are.
schemathesis.serializer.alias(["audio/wav", "audio/L16"], "application/octet-stream")


def wav(samples: list[int], rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return out.getvalue()


# Real audio for some of the audio cases, so that those reach recognition and the dialog, not only the
# format checks.
REAL_AUDIO = [wav([0] * 8_000), wav([int(8_000 * math.sin(2 * math.pi * 440 * i / 16_000)) for i in range(8_000)])]
AUDIO_OPERATIONS = {"POST /v1/asr", "POST /v1/voice"}


def demo_targets(services) -> dict[str, list[dict]]:
    """Per operation, the `as_strategy` arguments that aim a case at existing demo data."""
    records = [record.id for record in services.consents.records(DEMO_CITIZEN)]
    with services.db.read() as conn:
        lists = list(conn.execute(select(status_lists.c.id)).scalars())
    static = sorted(path.name for path in Path(console_blueprint.static_folder).iterdir())
    return {
        "GET /v1/citizens/{citizen_id}/consents": [{"path_parameters": {"citizen_id": DEMO_CITIZEN}}],
        "GET /v1/citizens/{citizen_id}/consents/{record_id}/receipts": [
            {"path_parameters": {"citizen_id": DEMO_CITIZEN, "record_id": record}} for record in records],
        "GET /v1/wallets/{wallet_id}/offers": [{"path_parameters": {"wallet_id": "wallet-0001"}}],
        "POST /v1/mydata/share": [{"body": {"citizen_id": DEMO_CITIZEN, "data_item": item}}
                                  for item in ("income", "resident-registration", "health-insurance")],
        "GET /v1/console/speakers/{user_id}/overview": [{"path_parameters": {"user_id": user}}
                                                        for user in DEMO_DEVICE_TOKENS],
        "GET /console/static/{filename}": [{"path_parameters": {"filename": name}} for name in static],
        "GET /status/{list_id}": [{"path_parameters": {"list_id": list_id}} for list_id in lists],
        "POST /kakao": [{"body": {"userRequest": {"user": {"id": "fuzz-kakao-user"}, "utterance": text, "lang": lang}}}
                        for text, lang in (("여권 발급 방법 알려줘", "ko"), ("help", "en"))],
        "POST /nugu/{action}": [{"path_parameters": {"action": action}, "body": nugu_body(action, parameters)}
                                for action, parameters in (("launch", {}), ("answer.yes", {}),
                                                           ("ask", {"utterance": "주민등록등본 발급"}))],
    }


def nugu_body(action: str, parameters: dict[str, str]) -> dict:
    return {"version": "2.0", "context": {"session": {"id": "fuzz-nugu-session", "isNew": True}},
            "action": {"actionName": action,
                       "parameters": {name: {"type": "STRING", "value": value} for name, value in parameters.items()}}}


# Path ids that are not ids: a slash, traversal, quoting, a NUL, an overlong Hangul run.
HOSTILE_IDS = ["a/b", "../../etc/passwd", "..", "x' OR '1'='1", "\x00", "ㅁ" * 300]
PATH_PARAMETER = re.compile(r"{([^}]+)}")


def hostile_targets(operation, max_json_bytes: int) -> list[dict]:
    """Hostile path ids for each path parameter, and a JSON body over the size limit."""
    names = PATH_PARAMETER.findall(operation.path)
    targets = [{"path_parameters": dict.fromkeys(names, value)} for value in HOSTILE_IDS if names]
    body = operation.definition.raw.get("requestBody", {}).get("content", {})
    if "application/json" in body:
        targets.append({"path_parameters": dict.fromkeys(names, "fuzz"), "media_type": "application/json",
                        "body": {"text": "가" * (max_json_bytes // 3 + 1)}})
    return targets


def segment(value: str) -> str:
    """A path parameter as one encoded path segment, as schemathesis encodes the ones it generates ("." and ".."
    too, which a client would otherwise resolve away)."""
    return {".": "%2E", "..": "%2E%2E"}.get(value) or quote(value, safe="")


def credentials(operation) -> dict[str, str]:
    headers = dict(CREDENTIALS.get(operation.label, {}))
    for requirement in operation.definition.raw.get("security", []):
        for scheme in requirement:
            headers.update(CREDENTIALS.get(scheme, {}))
    return headers


def fuzz(operation, targets: list[dict], sent: list) -> None:
    # Each aimed case once as it is, with the credential, then generated ones around them.
    for target in targets:
        if "path_parameters" in target:
            target = {**target, "path_parameters": {k: segment(v) for k, v in target["path_parameters"].items()}}
        case = operation.Case(**target, headers=credentials(operation))
        sent.append((operation.label, case.call_and_validate(checks=CHECKS, timeout=30).status_code))
    generated = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
    if targets:
        generated.append(st.one_of([operation.as_strategy(GenerationMode.POSITIVE, **t) for t in targets]))
    audio = st.sampled_from([*REAL_AUDIO, None]) if operation.label in AUDIO_OPERATIONS else st.none()

    @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=False, database=None, phases=[Phase.generate],
              deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
    @seed(SEED)
    @given(case=st.one_of(generated), with_credentials=st.sampled_from([True, True, False]), real_audio=audio)
    def run(case, with_credentials, real_audio):
        if with_credentials:
            case.headers = {**(case.headers or {}), **credentials(operation)}
        if real_audio is not None and case.media_type == "audio/wav":
            case.body = real_audio
        if with_credentials and operation.label == "POST /nugu/{action}":
            # NUGU calls <proxy url>/<actionName>: a real caller keeps the path and the body in step.
            action = case.body.get("action") if isinstance(case.body, dict) else None
            name = action.get("actionName") if isinstance(action, dict) else None
            if isinstance(name, str) and name:
                case.path_parameters = {**(case.path_parameters or {}), "action": name}
        response = case.call_and_validate(checks=CHECKS, timeout=30)
        sent.append((operation.label, response.status_code))

    run()


@pytest.fixture()
def speaker_channels(app, monkeypatch):
    """Kakao and NUGU with known tokens (the test app configures none, so both would only answer 503
    channel_not_configured), and no Kakao callback host allowed: nothing is ever sent off this machine."""
    monkeypatch.setitem(app.extensions, "minwon_kakao", dataclasses.replace(
        app.extensions["minwon_kakao"], token=KAKAO_TOKEN, callbacks=CallbackPolicy([])))
    monkeypatch.setitem(app.extensions, "minwon_nugu", dataclasses.replace(
        app.extensions["minwon_nugu"], token=NUGU_TOKEN))


@pytest.fixture()
def fresh_address_budgets(services, monkeypatch):
    """The per-address budgets at their configured sizes, but not spent by the tests that ran before on the same
    loopback address, so the result does not depend on test order. The routes that charge them still can
    answer 429, and document it."""
    for kind in ("ip", "register"):
        current = services.rate_limits.budgets[kind]
        fresh = RateLimit(f"{current.name}-{secrets.token_hex(4)}", current.limit, current.window_s,
                          services.settings.secret_key, burst=current.burst)
        monkeypatch.setitem(services.rate_limits.budgets, kind, fresh)


def pin_state(services, citizen_id: str) -> tuple:
    with services.db.read() as conn:
        return tuple(conn.execute(select(citizens.c.pin_failures, citizens.c.locked_until, citizens.c.lockouts)
                                  .where(citizens.c.id == citizen_id)).one())


def test_api_conforms_to_its_openapi(live_server, services, speaker_channels, fresh_address_budgets, subtests,
                                     capsys):
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    targets = demo_targets(services)
    assert set(targets) <= {operation.label for operation in operations}
    pins_before = pin_state(services, DEMO_CITIZEN)
    sent: list[tuple[str, int]] = []
    started = time.monotonic()
    for operation in operations:
        with subtests.test(operation.label):
            aimed = targets.get(operation.label, []) + hostile_targets(operation, services.settings.max_json_bytes)
            fuzz(operation, aimed, sent)
    with capsys.disabled():
        print(f"\nschemathesis: {len(sent)} cases over {len(operations)} operations in "
              f"{time.monotonic() - started:.1f} s")
    assert len(operations) >= 30  # the whole API, not a handful of routes
    assert {label for label, _ in sent} == {operation.label for operation in operations}
    # The demo token's turns are random text: they must not have spent the demo citizen's PIN budget, which
    # the dialog tests that run later count on.
    assert pin_state(services, DEMO_CITIZEN) == pins_before
