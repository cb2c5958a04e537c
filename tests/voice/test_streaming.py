"""GET /v1/voice/stream against the live server, with a WebSocket client of another implementation
(websocket-client) written from vosk-server's documented messages: config, binary PCM chunks, eof; partials,
results, and our dialog extension (the reply JSON, then its speech as WAV frames)."""

from __future__ import annotations

import contextlib
import gc
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import psutil
import pytest
import requests
import websocket

from channels.voice_stream import SLOTS_KEY
from voice.asr import RecognitionStream
from voice.audio import decode_audio
from voice.streaming import StreamSlots

TOKEN_KO = "demo-device-token-ko"


def eventually(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Waits for a server-side effect that follows the close the client already saw (the slot is freed after it)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def stream_url(live_server: str, query: str = "") -> str:
    return "ws://" + live_server.removeprefix("http://") + "/v1/voice/stream" + (f"?{query}" if query else "")


def connect(live_server: str, query: str = "", token: str | None = None, **options: Any) -> websocket.WebSocket:
    headers = [f"Authorization: Bearer {token}"] if token else []
    return websocket.create_connection(stream_url(live_server, query), header=headers, timeout=60, **options)


def receive(ws: websocket.WebSocket) -> tuple[str, Any]:
    """("text", parsed JSON) | ("binary", bytes) | ("close", close code)."""
    frame = ws.recv_frame()   # the server sends each message whole, in one frame
    opcode, data = frame.opcode, frame.data
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        # Answer the close as a client should; the server may already have dropped the connection.
        with contextlib.suppress(OSError, websocket.WebSocketException):
            ws.send_close()
    if opcode == websocket.ABNF.OPCODE_TEXT:
        return "text", json.loads(data.decode())
    if opcode == websocket.ABNF.OPCODE_BINARY:
        return "binary", data
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        return "close", int.from_bytes(data[:2], "big") if len(data) >= 2 else None
    raise AssertionError(f"unexpected opcode {opcode}")


def receive_until_close(ws: websocket.WebSocket) -> list[tuple[str, Any]]:
    frames = []
    while True:
        kind, value = receive(ws)
        frames.append((kind, value))
        if kind == "close":
            return frames


def pcm_of(wav: bytes) -> tuple[bytes, int]:
    """A WAV's 16-bit mono samples as little-endian bytes, at the WAV's own rate (no resampling here)."""
    decoded = decode_audio(wav, "audio/wav", target_rate=int.from_bytes(wav[24:28], "little"))
    return decoded.samples.astype("<i2").tobytes(), decoded.rate


def chunks(pcm: bytes, rate: int, seconds: float) -> Iterator[bytes]:
    size = int(rate * seconds) * 2
    for i in range(0, len(pcm), size):
        yield pcm[i:i + size]


def stream_realtime(ws: websocket.WebSocket, pcm: bytes, rate: int, chunk_s: float = 0.1) -> list[dict]:
    """Sends the audio at real-time pace, one vosk-server answer per chunk, then eof; returns every answer."""
    ws.send(json.dumps({"config": {"sample_rate": rate}}))
    answers = []
    started = time.monotonic()
    for n, chunk in enumerate(chunks(pcm, rate, chunk_s)):
        time.sleep(max(0.0, started + n * chunk_s - time.monotonic()))
        ws.send_binary(chunk)
        kind, answer = receive(ws)
        assert kind == "text", (kind, answer)
        answers.append(answer)
    ws.send('{"eof" : 1}')   # byte for byte what vosk-server's test client sends
    kind, final = receive(ws)
    assert kind == "text", final
    answers.append(final)
    return answers


@pytest.fixture()
def stream_limits(app, monkeypatch) -> Callable[..., StreamSlots]:
    """Tightens the live server's stream limits for one test: `set(idle_s=1, per_worker=2)`; returns fresh slots."""
    limits, _slots = app.extensions[SLOTS_KEY]

    def set_limits(**changes: Any) -> StreamSlots:
        new_limits = replace(limits, **changes)
        slots = StreamSlots(new_limits.per_worker)
        monkeypatch.setitem(app.extensions, SLOTS_KEY, (new_limits, slots))
        return slots

    return set_limits


# --- the vosk-server protocol ----------------------------------------------------------------------------


def test_a_vosk_server_client_works_unchanged(live_server, speak_wav):
    """config → 0.2 s binary chunks, each answered → eof → the final result; 22 050 Hz audio, as the clip is."""
    pcm, rate = pcm_of(speak_wav("가족관계증명서를 온라인으로 뗄 수 있나요"))
    assert rate == 22050
    ws = connect(live_server)
    ws.send(f'{{ "config" : {{ "sample_rate" : {rate} }} }}')   # spaced as vosk-server's test client sends it
    answers = []
    for chunk in chunks(pcm, rate, 0.2):
        ws.send_binary(chunk)
        answers.append(json.loads(ws.recv()))
    ws.send('{"eof" : 1}')
    final = json.loads(ws.recv())
    assert all(set(a) in ({"partial"}, {"text", "result"}, {"text"}) for a in answers), answers
    assert any(a.get("partial") for a in answers), "partials arrive while the audio is still coming"
    assert "text" in final
    heard = " ".join(t for t in [*(a["text"] for a in answers if "text" in a), final["text"]] if t)
    assert heard == final["utterance"]["heard"] and heard
    for word in final.get("result", []):
        assert set(word) == {"word", "start", "end", "conf"}
    assert receive(ws) == ("close", 1000)


PHRASES = ["예", "아니요", "도움말", "취소"]


@pytest.mark.parametrize("said", ["아니요", "예"])
def test_streamed_at_real_time_pace_recognises_what_the_upload_recognises(live_server, synthesizer, said):
    """Both paths feed Vosk the same 0.1 s blocks of the same 16 kHz samples (the rate the console and the harness
    send; other rates are resampled piece by piece, which can move a sample by a step). Open-mode decoding of
    espeak-ng speech is not repeatable even between two uploads of one clip (bench-voice counts how often), so
    the exact comparison is made where Vosk is repeatable: a phrase list, as the dialog's yes/no and command
    questions use."""
    wav = synthesizer.synthesize(said, "ko", sample_rate=16000)
    uploaded = requests.post(f"{live_server}/v1/asr", params={"phrase": PHRASES}, data=wav,
                             headers={"Content-Type": "audio/wav"}, timeout=60).json()
    pcm, rate = pcm_of(wav)
    assert rate == 16000
    ws = connect(live_server)
    ws.send(json.dumps({"config": {"phrase_list": PHRASES}}))
    answers = stream_realtime(ws, pcm, rate)
    assert receive(ws) == ("close", 1000)
    utterance = answers[-1]["utterance"]
    assert uploaded["text"] == said
    assert (utterance["text"], utterance["heard"], utterance["mode"]) == (said, uploaded["heard"], "limited")
    assert utterance["confidence"] == uploaded["confidence"]
    assert all(set(a) <= {"partial", "text", "result"} for a in answers[:-1]), "an answer to every chunk"


def test_phrase_list_with_alternatives_answers_in_vosk_server_shape(live_server, speak_wav):
    pcm, rate = pcm_of(speak_wav("아니요"))
    ws = connect(live_server)
    ws.send(json.dumps({"config": {"sample_rate": rate, "phrase_list": ["예", "아니요"], "max_alternatives": 3}}))
    for chunk in chunks(pcm, rate, 0.25):
        ws.send_binary(chunk)
        ws.recv()
    ws.send(json.dumps({"eof": 1}))
    final = json.loads(ws.recv())
    assert final["utterance"]["mode"] == "limited"
    assert final["utterance"]["text"] == "아니요"
    assert 1 <= len(final["alternatives"]) <= 3
    assert all({"text", "confidence", "result"} <= set(a) for a in final["alternatives"])
    ws.close()


# --- the dialog extension --------------------------------------------------------------------------------


def test_a_spoken_turn_streams_partials_then_the_reply_then_its_speech(live_server, speak_wav):
    pcm, rate = pcm_of(speak_wav("도움말"))
    ws = connect(live_server, "dialog=1&locale=ko-KR", token=TOKEN_KO)
    answers = stream_realtime(ws, pcm, rate)
    assert any("partial" in a for a in answers[:-1])
    assert answers[-1]["utterance"]["text"]
    frames = receive_until_close(ws)
    assert frames[-1] == ("close", 1000)
    kind, reply = frames[0]
    assert kind == "text" and reply["response"]["intent"] == "help", reply
    assert reply["transcript"] == answers[-1]["utterance"]["text"]
    audio = [value for kind, value in frames[1:-1] if kind == "binary"]
    assert reply["sentences"] == len(audio) >= 2, "one WAV frame per sentence of the reply"
    durations = [decode_audio(wav, "audio/wav").duration_s for wav in audio]
    assert all(d > 0.3 for d in durations), durations
    # The next turn continues the session the reply named.
    assert reply["response"]["session_id"]


def test_a_browser_offers_its_token_as_a_subprotocol(live_server, speak_wav):
    """Browsers cannot set Authorization on a WebSocket: the token rides as `minwon.bearer.<token>`, and the server
    picks `minwon.v1`, so the token is not echoed."""
    pcm, rate = pcm_of(speak_wav("도움말"))
    ws = connect(live_server, "dialog=1", subprotocols=["minwon.v1", f"minwon.bearer.{TOKEN_KO}"])
    assert ws.getsubprotocol() == "minwon.v1"
    stream_realtime(ws, pcm, rate, chunk_s=0.5)
    kind, reply = receive(ws)
    assert kind == "text" and reply["response"]["intent"] == "help"
    session = reply["response"]["session_id"]
    ws.close()
    # The session is the demo user's: the same token continues it, no token may not.
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(live_server, "dialog=1", subprotocols=["minwon.v1", "minwon.bearer.not-a-token"])
    assert refused.value.status_code == 401
    assert session


def test_a_bad_token_or_parameter_is_an_http_error_before_the_upgrade(live_server):
    for query, token, status in [("dialog=1", "wrong-token", 401), ("dialog=1&locale=fr-FR", TOKEN_KO, 400),
                                 ("dialog=1&session_id=" + "x" * 200, TOKEN_KO, 400)]:
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            connect(live_server, query, token=token)
        assert refused.value.status_code == status, query
        assert json.loads(refused.value.resp_body)["error"]["code"]
    plain = requests.get(stream_url(live_server).replace("ws://", "http://"), timeout=10)
    assert plain.status_code == 400 and plain.json()["error"]["code"]


# --- hostile streams -------------------------------------------------------------------------------------


def expect_error(ws: websocket.WebSocket, code: str, close_code: int) -> None:
    frames = receive_until_close(ws)
    errors = [value["error"]["code"] for kind, value in frames if kind == "text" and "error" in value]
    assert errors == [code], frames
    assert frames[-1] == ("close", close_code)


@pytest.mark.parametrize(("frames", "code"), [
    (["not json at all"], "invalid_frame"),
    (["[1, 2]"], "invalid_frame"),
    (['{"config": {"sample_rate": 16000}, "eof": 1}'], "invalid_frame"),
    ([b"\x01\x02\x03"], "odd_frame"),
    ([json.dumps({"config": {"sample_rate": 0}})], "unsupported_sample_rate"),
    ([json.dumps({"config": {"sample_rate": 10_000_000}})], "unsupported_sample_rate"),
    ([json.dumps({"config": {"sample_rate": True}})], "unsupported_sample_rate"),
    ([json.dumps({"config": {"model": "/etc"}})], "invalid_config"),
    ([json.dumps({"config": {"phrase_list": ["예"] * 51}})], "invalid_phrase_list"),
    ([b"\x00\x00" * 1600, json.dumps({"config": {"sample_rate": 8000}})], "config_after_audio"),
])
def test_bad_frames_get_an_error_and_1007(live_server, frames, code):
    ws = connect(live_server)
    for frame in frames:
        if isinstance(frame, bytes):
            ws.send_binary(frame)
            if frame != b"\x01\x02\x03":
                ws.recv()
        else:
            ws.send(frame)
    expect_error(ws, code, 1007)


def test_more_than_30_seconds_of_audio_is_refused_with_4413(live_server):
    ws = connect(live_server)
    ws.send(json.dumps({"config": {"sample_rate": 16000}}))
    ws.send_binary(np.zeros(16000 * 31, dtype="<i2").tobytes())   # 31 s in one frame, under the 1 MB frame limit
    expect_error(ws, "audio_too_long", 4413)


def test_a_frame_over_one_megabyte_is_closed_with_1009(live_server):
    ws = connect(live_server)
    ws.send_binary(b"\x00" * ((1 << 20) + 2))
    frames = receive_until_close(ws)
    assert frames[-1] == ("close", 1009)


def test_a_client_that_never_sends_eof_is_closed_when_idle(live_server, stream_limits):
    slots = stream_limits(idle_s=1.0)
    ws = connect(live_server)
    ws.send(json.dumps({"config": {"sample_rate": 16000}}))
    ws.send_binary(np.zeros(1600, dtype="<i2").tobytes())
    ws.recv()
    expect_error(ws, "idle_timeout", 4408)
    assert eventually(lambda: slots.active == 0)


def test_a_trickling_client_is_closed_at_the_wall_clock_limit(live_server, stream_limits):
    stream_limits(idle_s=1.0, max_wall_s=2.0)
    ws = connect(live_server)
    frames = []
    for _ in range(10):
        ws.send_binary(b"\x00\x00" * 160)
        frames.append(receive(ws))
        if "error" in frames[-1][1]:
            break
        time.sleep(0.5)
    frames += receive_until_close(ws)
    assert ("text", {"error": {"code": "stream_timeout", "message": "A stream may stay open at most 2 s."}}) in frames
    assert frames[-1] == ("close", 4408)


def _resources() -> tuple[int, int, float]:
    gc.collect()
    # type() rather than isinstance(): isinstance reads __class__, which torch's lazy module attributes answer
    # with a deprecation warning.
    recognisers = sum(1 for o in gc.get_objects() if type(o) is RecognitionStream)
    return threading.active_count(), recognisers, psutil.Process().memory_info().rss / 2**20


def test_fifty_connections_at_once_are_refused_beyond_the_limit_and_nothing_leaks(live_server, stream_limits):
    threads_before, recognisers_before, rss_before = _resources()
    slots = stream_limits(per_worker=2, idle_s=3.0)
    outcomes: list[tuple[int | None, int]] = []
    lock = threading.Lock()

    def client() -> None:
        ws = connect(live_server, "dialog=1", token=TOKEN_KO)
        ws.send(json.dumps({"config": {"sample_rate": 16000}}))
        frames = receive_until_close(ws)
        spoken = sum(1 for kind, _ in frames if kind == "binary")
        with lock:
            outcomes.append((frames[-1][1], spoken))
        ws.close()

    clients = [threading.Thread(target=client) for _ in range(50)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(60)
    assert len(outcomes) == 50
    codes = [code for code, _ in outcomes]
    assert set(codes) <= {1013, 4408}, codes
    assert slots.peak == 2 and codes.count(4408) >= 2
    assert codes.count(1013) == slots.refused >= 40
    # A refused stream in dialog mode is told so in speech, at once.
    assert all(spoken == 1 for code, spoken in outcomes if code == 1013)
    assert eventually(lambda: slots.active == 0)
    eventually(lambda: threading.active_count() <= threads_before)
    threads_after, recognisers_after, rss_after = _resources()
    assert threads_after <= threads_before, "every connection's threads ended"
    assert recognisers_after <= recognisers_before
    assert rss_after - rss_before < 150, f"RSS grew by {rss_after - rss_before:.0f} MB"


def test_hands_free_ends_the_turn_on_the_server_without_eof(live_server, synthesizer):
    """hands_free=1: Vosk's endpoint after speech (or the silence timeout) ends the turn; the client never sends eof."""
    speech = decode_audio(synthesizer.synthesize("도움말", "ko", sample_rate=16000), "audio/wav").samples
    pcm = np.concatenate([speech, np.zeros(16000 * 3, dtype=np.int16)]).astype("<i2").tobytes()
    ws = connect(live_server, "dialog=1&hands_free=1", token=TOKEN_KO)
    ws.send(json.dumps({"config": {"sample_rate": 16000}}))
    answers = []
    for chunk in chunks(pcm, 16000, 0.1):
        ws.send_binary(chunk)
        kind, answer = receive(ws)
        answers.append(answer)
        if "utterance" in answer:
            break
    assert "utterance" in answers[-1], "the server ended the turn by itself"
    frames = receive_until_close(ws)
    assert frames[0][0] == "text" and "response" in frames[0][1]
    assert frames[-1] == ("close", 1000)


def test_a_spoken_pin_is_never_echoed(live_server, services, new_citizen, synthesizer):
    from tests.conftest import device_token

    _citizen, user_id = new_citizen(pin="2345")
    token = device_token(services, user_id)
    asked = requests.post(f"{live_server}/v1/converse", json={"text": "내 증명서 상태 알려줘"}, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}).json()
    assert asked["expects"] == "pin", asked
    pcm, rate = pcm_of(synthesizer.synthesize("이 삼 사 오", "ko", sample_rate=16000))
    ws = connect(live_server, f"dialog=1&session_id={asked['session_id']}", token=token)
    answers = stream_realtime(ws, pcm, rate)
    frames = receive_until_close(ws)
    texts = [a.get("partial") or a.get("text") for a in answers] + [frames[0][1]["transcript"]]
    texts += [w["word"] for a in answers for w in a.get("result", [])]
    texts += [answers[-1]["utterance"]["text"], answers[-1]["utterance"]["heard"]]
    assert all(t in ("", None, "••••") for t in texts), texts
    assert any(t == "••••" for t in texts), "something was heard, and shown masked"
