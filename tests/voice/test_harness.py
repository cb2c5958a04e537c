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
