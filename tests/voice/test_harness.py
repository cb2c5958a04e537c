"""The microphone harness, run as developers run it, against the live server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from voice.audio import decode_audio

ROOT = Path(__file__).resolve().parents[2]


def harness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voice.harness", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env={**os.environ, **(env or {})})


def test_say_mode_talks_to_the_live_server_and_keeps_the_session(live_server, tmp_path):
    out = tmp_path / "answer.wav"
    run = harness("--url", live_server, "--say", "도움말", "--say", "도와줘", "--out", str(out))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [line for line in lines if line.startswith("you:")] == ["you:     도움말", "you:     도와줘"]
    sessions = {line.split()[1] for line in lines if line.startswith("session:")}
    assert len(sessions) == 1   # both turns in one session
    assert all("intent=help" in line for line in lines if line.startswith("session:"))
    for path in (out, tmp_path / "answer-2.wav"):
        assert decode_audio(path.read_bytes(), "audio/wav").duration_s > 2


def test_wav_mode_sends_a_file(live_server, tmp_path, speak_wav):
    question = tmp_path / "question.wav"
    question.write_bytes(speak_wav("도와줘"))
    run = harness("--url", live_server, "--wav", str(question), "--out", str(tmp_path / "a.wav"))
    assert run.returncode == 0, run.stderr
    assert "you:     도와줘" in run.stdout and (tmp_path / "a.wav").is_file()


def test_microphone_mode_without_a_microphone_says_so(live_server):
    run = harness("--url", live_server, env={"MINWON_HARNESS_INPUT_DEVICE": "no-such-microphone-here"})
    assert run.returncode == 2
    assert "microphone" in run.stderr and "--wav" in run.stderr


def test_an_unreachable_service_is_named(tmp_path, speak_wav):
    question = tmp_path / "question.wav"
    question.write_bytes(speak_wav("도움말"))
    run = harness("--url", "http://127.0.0.1:9", "--wav", str(question))
    assert run.returncode == 1
    assert "cannot reach the service at http://127.0.0.1:9" in run.stderr


def test_stream_mode_prints_partials_and_plays_the_reply_as_it_arrives(live_server, tmp_path, speak_wav):
    question = tmp_path / "question.wav"
    question.write_bytes(speak_wav("도움말"))
    out = tmp_path / "answer.wav"
    run = harness("--url", live_server, "--stream", "--wav", str(question), "--out", str(out),
                  env={"MINWON_DEVICE_TOKEN": "demo-device-token-ko"})
    assert run.returncode == 0, run.stderr
    assert "▸ " in run.stdout, "what was recognised is printed as it comes"
    assert "you:     " in run.stdout and "intent=help" in run.stdout
    sentences = int(run.stdout.split("sentences=")[1].split()[0])
    assert sentences >= 2
    assert decode_audio(out.read_bytes(), "audio/wav").duration_s > 2


def test_stream_mode_speaks_to_a_vosk_server_compatible_url(live_server, tmp_path, speak_wav):
    """A ws:// URL is taken as a plain vosk-server: the protocol without the dialog; here our own route is it."""
    question = tmp_path / "question.wav"
    question.write_bytes(speak_wav("주민등록등본은 어떻게 발급받나요"))
    address = "ws://" + live_server.removeprefix("http://") + "/v1/voice/stream"
    run = harness("--url", address, "--stream", "--wav", str(question))
    assert run.returncode == 0, run.stderr
    # (text=True turns the carriage returns that rewrite the partial line into line breaks)
    partials = [line for line in run.stdout.splitlines() if line.startswith("… ") and len(line) > 6]
    assert len(partials) >= 2 and "▸ " in run.stdout, run.stdout
    assert "service:" not in run.stdout


def test_stream_mode_names_a_refused_stream(live_server, tmp_path, speak_wav):
    question = tmp_path / "question.wav"
    question.write_bytes(speak_wav("도움말"))
    run = harness("--url", live_server, "--stream", "--wav", str(question), "--device-token", "not-a-token")
    assert run.returncode == 1
    assert "cannot open the stream" in run.stderr and "not-a-token" not in run.stderr
