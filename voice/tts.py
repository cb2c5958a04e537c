"""Speech synthesis: pyttsx3 over espeak-ng, in one dedicated worker process, behind an LRU cache.

pyttsx3's loop is not re-entrant and espeak can hang, so synthesis never runs in a request thread:
requests go into a queue that one dispatcher thread feeds, one at a time, to a worker subprocess. A
job that takes longer than the timeout gets the worker killed and replaced; a worker that dies is
replaced and its job retried once. Either way the requests queued behind it are served by the new
worker. Only `save_to_file` is used (`say` needs a sound card).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import select
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from voice.audio import decode_audio, encode_wav

log = logging.getLogger(__name__)

LOCALE_VOICES = {"ko-KR": "ko", "en-US": "en", "ko": "ko", "en": "en"}
OUTPUT_RATES = (8_000, 16_000, 22_050, 24_000, 44_100, 48_000)
ESPEAK_RATE = 22_050


class TtsError(Exception):
    status = 503
    code = "tts_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TtsBadRequest(TtsError):
    status = 400
    code = "bad_tts_request"


class TtsTimeout(TtsError):
    code = "tts_timeout"


class SettingsLike(Protocol):
    def get(self, name: str, default: str = "") -> str: ...


@dataclass(frozen=True)
class TtsConfig:
    rate_wpm: int = 165
    volume: float = 1.0
    timeout_s: float = 10.0
    max_text_chars: int = 1000
    cache_entries: int = 512
    cache_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: SettingsLike) -> TtsConfig:
        return cls(
            rate_wpm=int(settings.get("MINWON_TTS_RATE", "165")),
            volume=float(settings.get("MINWON_TTS_VOLUME", "1.0")),
            timeout_s=float(settings.get("MINWON_TTS_TIMEOUT_S", "10")),
            cache_entries=int(settings.get("MINWON_TTS_CACHE_ENTRIES", "512")),
        )


# A sentence ends at . ? ! (or their full-width forms) followed by white space.
_SENTENCE_END = re.compile(r"(?<=[.?!。？！])\s+")


def split_sentences(text: str) -> list[str]:
    """A reply → its sentences, in order, so the first can be spoken while the rest are synthesised."""
    return [part for part in (p.strip() for p in _SENTENCE_END.split(" ".join(text.split()))) if part]


def voice_for(locale_or_voice: str | None) -> str:
    voice = LOCALE_VOICES.get(locale_or_voice or "ko")
    if voice is None:
        raise TtsBadRequest(f"no voice for {locale_or_voice!r}: use ko-KR or en-US")
    return voice


# --- the worker process ------------------------------------------------------------------------

class _Worker:
    """A `python -m voice.tts_worker` subprocess and its pipes."""

    def __init__(self, start_timeout_s: float = 30.0) -> None:
        root = Path(__file__).resolve().parent.parent
        python_path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": python_path}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voice.tts_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, cwd=root)
        try:
            self.pid = int(self._read(start_timeout_s))
        except (TtsError, ValueError):
            self.kill()
            raise TtsError("the speech synthesis worker did not start") from None

    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, job: dict, timeout_s: float) -> bytes:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(job, ensure_ascii=False).encode() + b"\n")
        self.process.stdin.flush()
        return self._read(timeout_s)

    def _read(self, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        header = self._read_exactly(5, deadline)
        payload = self._read_exactly(struct.unpack(">I", header[1:])[0], deadline)
        if header[:1] != b"+":
            raise TtsError(f"speech synthesis failed: {payload.decode(errors='replace')}")
        return payload

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        chunks, left = [], size
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TtsTimeout("speech synthesis timed out")
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise EOFError("the speech synthesis worker exited")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.wait(5)
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(Exception):
                pipe.close()


# --- the cache ---------------------------------------------------------------------------------

class _LruCache:
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._max_entries, self._max_bytes = max_entries, max_bytes
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple, value: bytes) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._bytes += len(value)
            while self._items and (len(self._items) > self._max_entries or self._bytes > self._max_bytes):
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._items)


# --- the public synthesiser --------------------------------------------------------------------

@dataclass
class _Job:
    text: str
    voice: str
    rate: int
    future: Future


class SpeechSynthesizer:
    """Thread-safe text → WAV. One per process; `close()` stops its worker."""

    def __init__(self, config: TtsConfig | None = None) -> None:
        self.config = config or TtsConfig()
        self.cache = _LruCache(self.config.cache_entries, self.config.cache_bytes)
        self.restarts = 0
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._worker: _Worker | None = None
        self._closed = False
        self._dispatcher = threading.Thread(target=self._dispatch, name="minwon-tts-dispatch", daemon=True)
        self._dispatcher.start()

    @property
    def worker_pid(self) -> int | None:
        return self._worker.pid if self._worker else None

    def start(self) -> None:
        """Start the worker now (at service start-up) rather than on the first request."""
        done: Future = Future()
        self._jobs.put(_Job("", "", 0, done))
        done.result(timeout=60)

    def synthesize(self, text: str, voice: str = "ko", rate: int | None = None,
                   sample_rate: int | None = None) -> bytes:
        """Text → WAV bytes (16-bit mono; espeak's 22050 Hz unless `sample_rate` asks otherwise)."""
        text = " ".join(text.split())
        if not any(ch.isalnum() for ch in text):
            raise TtsBadRequest("there is no text to speak")
        if len(text) > self.config.max_text_chars:
            raise TtsBadRequest(f"text longer than {self.config.max_text_chars} characters")
        voice = voice_for(voice)
        rate = int(rate or self.config.rate_wpm)
        if not 80 <= rate <= 450:
            raise TtsBadRequest("rate must be between 80 and 450 words per minute")
        if sample_rate is not None and sample_rate not in OUTPUT_RATES:
            raise TtsBadRequest(f"sample_rate must be one of {', '.join(map(str, OUTPUT_RATES))}")
        key = (text, voice, rate, sample_rate or ESPEAK_RATE)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        future: Future = Future()
        if self._closed:
            raise TtsError("speech synthesis is shut down")
        self._jobs.put(_Job(text, voice, rate, future))
        # Wait for the jobs ahead of this one too, but not forever: each one is bounded by the timeout.
        try:
            wav = future.result(timeout=self.config.timeout_s * (self._jobs.qsize() + 3))
        except FutureTimeout:
            raise TtsTimeout("speech synthesis queue is too slow") from None
        wav = self._to_output(wav, sample_rate or ESPEAK_RATE)
        self.cache.put(key, wav)
        return wav

    @staticmethod
    def _to_output(wav: bytes, sample_rate: int) -> bytes:
        decoded = decode_audio(wav, "audio/wav", max_bytes=1 << 30, max_duration_s=float("inf"),
                               target_rate=sample_rate, reject_silence=False)
        if len(decoded.samples) == 0:
            raise TtsError("speech synthesis produced no audio")
        return encode_wav(decoded.samples, sample_rate)

    def close(self) -> None:
        self._closed = True
        self._jobs.put(None)
        self._dispatcher.join(10)

    # --- dispatcher thread ---

    def _dispatch(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            if job.future.set_running_or_notify_cancel():
                try:
                    job.future.set_result(self._run(job))
                except Exception as exc:   # the caller gets the failure; the dispatcher carries on
                    job.future.set_exception(exc)
        if self._worker:
            self._worker.kill()
            self._worker = None

    def _ensure_worker(self) -> _Worker:
        if self._worker is None or not self._worker.alive():
            if self._worker is not None:
                self._worker.kill()
                self.restarts += 1
                log.warning("tts worker died; starting a new one")
            self._worker = _Worker()
        return self._worker

    def _run(self, job: _Job) -> bytes:
        worker = self._ensure_worker()
        if not job.text:    # start(): only bring the worker up
            return b""
        request = {"text": job.text, "voice": job.voice, "rate": job.rate, "volume": self.config.volume}
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                return worker.run(request, self.config.timeout_s)
            except TtsTimeout:
                log.warning("tts worker hung; killing it", extra={"timeout_s": self.config.timeout_s})
                self._replace_worker()
                raise
            except (EOFError, OSError, BrokenPipeError):
                # The worker died under this job; a fresh one gets one more try.
                log.warning("tts worker died during a job", extra={"attempt": attempt})
                self._replace_worker()
                if attempt == 2:
                    raise TtsError("speech synthesis failed twice") from None
                worker = self._ensure_worker()
            finally:
                log.debug("tts job", extra={"s": round(time.perf_counter() - started, 3)})
        raise AssertionError("unreachable")

    def _replace_worker(self) -> None:
        if self._worker is not None:
            self._worker.kill()
        self._worker = None
        self.restarts += 1
