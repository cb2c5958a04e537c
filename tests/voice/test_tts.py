"""Speech synthesis: real espeak-ng audio, the worker's restart after a kill or a hang, the cache."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from voice.audio import decode_audio
from voice.tts import SpeechSynthesizer, TtsBadRequest, TtsConfig, TtsTimeout


def test_korean_and_english_speech_comes_out_as_16bit_mono_wav(synthesizer):
    for voice in ("ko-KR", "en-US"):
        wav = synthesizer.synthesize({"ko-KR": "도움말입니다", "en-US": "Here is some help"}[voice], voice)
        assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
        audio = decode_audio(wav, "audio/wav", target_rate=22050)
        assert audio.source.bits == 16 and audio.source.channels == 1 and audio.source.rate == 22050
        assert 0.4 < audio.duration_s < 5
        assert np.abs(audio.samples).max() > 3000   # speech, not silence


@pytest.mark.parametrize("rate", [16000, 24000])
def test_output_can_be_resampled_for_a_platform(synthesizer, rate):
    native = decode_audio(synthesizer.synthesize("서류를 보냈습니다", "ko"), "audio/wav", target_rate=22050)
    wav = synthesizer.synthesize("서류를 보냈습니다", "ko", sample_rate=rate)
    audio = decode_audio(wav, "audio/wav", target_rate=rate)
    assert audio.source.rate == rate
    assert abs(audio.duration_s - native.duration_s) < 0.01


def test_speaking_rate_changes_the_length(synthesizer):
    slow = decode_audio(synthesizer.synthesize("주민등록등본을 발급했습니다", "ko", rate=120), "audio/wav")
    fast = decode_audio(synthesizer.synthesize("주민등록등본을 발급했습니다", "ko", rate=240), "audio/wav")
    assert slow.duration_s > 1.6 * fast.duration_s


def test_a_repeated_prompt_is_served_from_the_cache_without_the_worker(synthesizer):
    first = synthesizer.synthesize("무엇을 도와드릴까요", "ko")
    hits = synthesizer.cache.hits
    # With the worker stopped, only the cache can answer (a miss would wait for the timeout).
    os.kill(synthesizer.worker_pid, signal.SIGSTOP)
    try:
        again = synthesizer.synthesize("무엇을 도와드릴까요", "ko")
    finally:
        os.kill(synthesizer.worker_pid, signal.SIGCONT)
    assert again == first
    assert synthesizer.cache.hits == hits + 1


@pytest.fixture()
def quick_tts():
    tts = SpeechSynthesizer(TtsConfig(timeout_s=3))
    tts.start()
    yield tts
    tts.close()


def test_a_killed_worker_is_replaced_and_the_request_still_succeeds(quick_tts):
    old = quick_tts.worker_pid
    os.kill(old, signal.SIGKILL)
    wav = quick_tts.synthesize("다시 시작합니다", "ko")
    assert decode_audio(wav, "audio/wav").duration_s > 0.3
    assert quick_tts.worker_pid != old and quick_tts.restarts == 1


def test_a_hung_worker_fails_only_its_own_request_and_is_replaced(quick_tts):
    hung = quick_tts.worker_pid
    os.kill(hung, signal.SIGSTOP)   # the worker stops answering mid-service, like an espeak hang
    results: dict[str, object] = {}

    def queued_behind() -> None:
        time.sleep(0.3)
        try:
            results["queued"] = quick_tts.synthesize("뒤에 기다린 요청", "ko")
        except Exception as exc:  # noqa: BLE001 - the assertion below reports it
            results["queued"] = exc

    waiter = threading.Thread(target=queued_behind)
    waiter.start()
    started = time.monotonic()
    with pytest.raises(TtsTimeout):
        quick_tts.synthesize("멈춘 작업", "ko")
    assert 2.5 < time.monotonic() - started < 10
    waiter.join(30)
    assert isinstance(results["queued"], bytes), results
    assert quick_tts.worker_pid != hung and quick_tts.restarts == 1
    with pytest.raises(ProcessLookupError):
        os.kill(hung, 0)   # the hung process is gone, not leaked


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"text": "  ...  "}, "no text"),
    ({"text": "가" * 1001}, "longer than"),
    ({"text": "안녕", "voice": "fr-FR"}, "no voice"),
    ({"text": "안녕", "rate": 20}, "rate"),
    ({"text": "안녕", "sample_rate": 11025}, "sample_rate"),
])
def test_bad_requests_are_refused_before_synthesis(synthesizer, kwargs, message):
    with pytest.raises(TtsBadRequest, match=message) as caught:
        synthesizer.synthesize(**kwargs)
    assert caught.value.status == 400
