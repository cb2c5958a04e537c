"""Recognition while the citizen speaks: the Vosk WebSocket protocol (alphacep/vosk-server), without the transport.

The client may send `{"config": {"sample_rate": N, "phrase_list": [...], "words": bool, "max_alternatives": N}}`
first, then binary frames of 16-bit little-endian mono PCM, then `{"eof": 1}` (`{"reset": 1}` closes the current
stretch of speech and carries on, as in vosk-server). Every binary frame is answered with `{"partial": "…"}`, or,
where Vosk's endpointing closes a stretch of speech, with `{"text": "…", "result": [words]}` (or
`{"alternatives": […]}` when `max_alternatives` was asked for). `eof` is answered with the last stretch's result,
plus one field of ours that vosk-server clients ignore: `utterance`, the whole stream's recognition in the shape
/v1/asr answers (the same RecognitionStream does the work, so the two agree).

`StreamSession` is the protocol state of one stream; the WebSocket route (channels/voice_stream.py) feeds it
frames and sends what it returns. `StreamSlots` bounds the streams one worker process decodes at once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from voice.asr import Expectation, RecognitionStream, Segment, SpeechRecognizer, Transcript
from voice.audio import (
    MAX_DURATION_S,
    MAX_RATE,
    MIN_RATE,
    TARGET_RATE,
    AudioError,
    AudioStreamDecoder,
    AudioTooLarge,
    AudioTooLong,
)

# Close codes (RFC 6455 §7.4: 1000-1015 are the protocol's own, 4000-4999 are the application's; ours are
# 4000 + the HTTP status of the same failure).
CLOSE_NORMAL = 1000
CLOSE_INVALID_DATA = 1007       # a frame or config that is not what the protocol allows
CLOSE_TOO_BIG = 1009            # a single frame over the size limit (sent by simple-websocket itself)
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013          # too many streams on this worker, or the models are still loading
CLOSE_TIMEOUT = 4408            # no frame for the idle time, or the stream outlived its wall-clock limit
CLOSE_TOO_LONG = 4413           # more than 30 s of audio

MAX_PHRASES = 50
MAX_PHRASE_CHARS = 100
MAX_ALTERNATIVES = 10
# Spoken PINs are never echoed: partials and results during the PIN step show this instead.
MASK = "••••"


class SettingsLike(Protocol):
    def get(self, name: str, default: str = "") -> str: ...


class StreamError(Exception):
    """Ends a stream: the client gets `{"error": {"code", "message"}}` and then the close code."""

    def __init__(self, close_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass(frozen=True)
class StreamLimits:
    per_worker: int = 2             # streams one worker process decodes at once (each takes most of a core)
    idle_s: float = 10.0            # longest wait for the next frame
    max_wall_s: float = 45.0        # longest a stream may stay open, whatever it sends
    max_audio_s: float = MAX_DURATION_S
    max_frame_bytes: int = 1 << 20
    silence_s: float = 0.8          # hands-free: this much audio with no new words after speech ends the turn

    @classmethod
    def from_settings(cls, settings: SettingsLike) -> StreamLimits:
        return cls(
            per_worker=int(settings.get("MINWON_STREAM_LIMIT", "2")),
            idle_s=float(settings.get("MINWON_STREAM_IDLE_S", "10")),
            max_wall_s=float(settings.get("MINWON_STREAM_MAX_S", "45")),
            silence_s=float(settings.get("MINWON_STREAM_SILENCE_S", "0.8")),
        )


class StreamSlots:
    """A per-process count of open streams: a stream over the limit is refused at once, never queued (a queued
    stream would answer seconds late, which is worse than a quick 'busy')."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.peak = 0         # the most streams open at once so far (tests and benchmarks read it)
        self.refused = 0
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    def try_acquire(self) -> bool:
        with self._lock:
            if self._active >= self.limit:
                self.refused += 1
                return False
            self._active += 1
            self.peak = max(self.peak, self._active)
            return True

    def release(self) -> None:
        with self._lock:
            self._active -= 1


@dataclass(frozen=True)
class StreamConfig:
    sample_rate: int = TARGET_RATE
    phrase_list: tuple[str, ...] | None = None
    words: bool = True
    max_alternatives: int = 0


def _whole_number(value: Any) -> int | None:
    """An int, or a float with no fraction (vosk-server clients send 16000.0), else None; never a bool."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def parse_config(body: Any, current: StreamConfig) -> StreamConfig:
    """A `config` object → the stream's settings; anything the protocol does not allow closes with 1007."""
    if not isinstance(body, dict):
        raise StreamError(CLOSE_INVALID_DATA, "invalid_config", "config must be a JSON object.")
    unknown = set(body) - {"sample_rate", "phrase_list", "words", "max_alternatives", "model"}
    if unknown:
        raise StreamError(CLOSE_INVALID_DATA, "invalid_config", "Unknown config fields: " + ", ".join(sorted(unknown)))
    if "model" in body:
        raise StreamError(CLOSE_INVALID_DATA, "invalid_config", "This server does not load models on request.")
    config = current
    if "sample_rate" in body:
        rate = _whole_number(body["sample_rate"])
        if rate is None or not MIN_RATE <= rate <= MAX_RATE:
            raise StreamError(CLOSE_INVALID_DATA, "unsupported_sample_rate",
                              f"sample_rate must be a whole number of Hz from {MIN_RATE} to {MAX_RATE}.")
        config = StreamConfig(rate, config.phrase_list, config.words, config.max_alternatives)
    if "phrase_list" in body:
        phrases = body["phrase_list"]
        if phrases is not None and (not isinstance(phrases, list) or len(phrases) > MAX_PHRASES or not all(
                isinstance(p, str) and 0 < len(p) <= MAX_PHRASE_CHARS for p in phrases)):
            raise StreamError(CLOSE_INVALID_DATA, "invalid_phrase_list",
                              f"phrase_list must be at most {MAX_PHRASES} strings of 1 to {MAX_PHRASE_CHARS} characters.")
        config = StreamConfig(config.sample_rate, tuple(phrases) if phrases else None, config.words,
                              config.max_alternatives)
    if "words" in body:
        if not isinstance(body["words"], bool | int):
            raise StreamError(CLOSE_INVALID_DATA, "invalid_config", "words must be true or false.")
        config = StreamConfig(config.sample_rate, config.phrase_list, bool(body["words"]), config.max_alternatives)
    if "max_alternatives" in body:
        count = _whole_number(body["max_alternatives"])
        if count is None or not 0 <= count <= MAX_ALTERNATIVES:
            raise StreamError(CLOSE_INVALID_DATA, "invalid_config",
                              f"max_alternatives must be a whole number from 0 to {MAX_ALTERNATIVES}.")
        config = StreamConfig(config.sample_rate, config.phrase_list, config.words, count)
    return config


class StreamSession:
    """One stream's protocol state: `handle()` each frame and send what it returns, until `ended`.

    `expectation` is what the dialog expects (dialog mode); without one, a client's `phrase_list` limits
    recognition as `phrase` does on /v1/asr. `hands_free` ends the turn without an `eof`: at Vosk's first
    endpoint after speech, or after `limits.silence_s` of audio in which the words heard stopped changing.
    """

    def __init__(self, recognizer: SpeechRecognizer, locale: str | None, limits: StreamLimits,
                 expectation: Expectation | None = None, commands: Sequence[str] = (), hands_free: bool = False,
                 mask: bool = False) -> None:
        self._recognizer = recognizer
        self._locale = locale
        self._limits = limits
        self._expectation = expectation
        self._commands = tuple(commands)
        self.hands_free = hands_free
        self._mask = mask
        self.config = StreamConfig()
        self._decoder: AudioStreamDecoder | None = None
        self._stream: RecognitionStream | None = None
        self._last_partial = ""
        self._partial_since_s = 0.0
        self.ended = False
        self.transcript: Transcript | None = None

    @property
    def audio_s(self) -> float:
        return self._decoder.source_duration_s if self._decoder else 0.0

    # --- frames ---------------------------------------------------------------------------------

    def handle(self, message: str | bytes) -> list[dict[str, Any]]:
        if self.ended:
            return []     # frames already in flight when the turn ended are not an error
        if isinstance(message, bytes | bytearray):
            return self._audio(bytes(message))
        try:
            body = json.loads(message)
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict) or len(body) != 1:
            raise StreamError(CLOSE_INVALID_DATA, "invalid_frame",
                              'A text frame must be {"config": {...}}, {"eof": 1} or {"reset": 1}.')
        if "config" in body:
            if self._stream is not None:
                raise StreamError(CLOSE_INVALID_DATA, "config_after_audio", "config must come before the audio.")
            self.config = parse_config(body["config"], self.config)
            return []
        if "eof" in body:
            return self.finish()
        if "reset" in body:
            return self._results(self._started().close_segment())
        raise StreamError(CLOSE_INVALID_DATA, "invalid_frame",
                          'A text frame must be {"config": {...}}, {"eof": 1} or {"reset": 1}.')

    def _started(self) -> RecognitionStream:
        if self._stream is None:
            self._decoder = AudioStreamDecoder.raw_pcm(self.config.sample_rate, max_duration_s=self._limits.max_audio_s)
            expectation = self._expectation
            if expectation is None:
                expectation = (Expectation.limited(self.config.phrase_list) if self.config.phrase_list
                               else Expectation())
            self._stream = self._recognizer.start(self._locale, expectation, self._commands)
        return self._stream

    def _audio(self, data: bytes) -> list[dict[str, Any]]:
        if len(data) % 2:
            raise StreamError(CLOSE_INVALID_DATA, "odd_frame",
                              "A binary frame must hold whole 16-bit samples (an even number of bytes).")
        stream = self._started()
        assert self._decoder is not None
        try:
            pcm = self._decoder.feed(data)
        except (AudioTooLong, AudioTooLarge):
            raise StreamError(CLOSE_TOO_LONG, "audio_too_long",
                              f"A stream may carry at most {self._limits.max_audio_s:.0f} s of audio.") from None
        except AudioError as exc:
            raise StreamError(CLOSE_INVALID_DATA, exc.code, exc.message) from None
        closed = stream.accept(pcm)
        if closed is not None:
            if self.hands_free and closed.texts[0]:
                return [self._result(closed), *self._end()]
            self._last_partial = ""
            return [self._result(closed)]
        partial = stream.partial()
        if partial != self._last_partial:
            self._last_partial, self._partial_since_s = partial, stream.audio_s
        elif self.hands_free and partial and stream.audio_s - self._partial_since_s >= self._limits.silence_s:
            return self._end()
        return [{"partial": MASK if self._mask and partial else partial}]

    def finish(self) -> list[dict[str, Any]]:
        """End of the audio: the last stretch's result, carrying the whole utterance."""
        return self._end()

    def _end(self) -> list[dict[str, Any]]:
        stream = self._started()
        if self._decoder is not None and self._decoder.source_frames:
            stream.accept(self._decoder.finish())   # the resampler's tail
        closed = stream.end()
        self.transcript = stream.transcript()
        self.ended = True
        *earlier, last = self._results(closed)
        return [*earlier, {**last, "utterance": self._utterance_json(self.transcript)}]

    def _results(self, segments: list[Segment]) -> list[dict[str, Any]]:
        return [self._result(segment) for segment in segments] or [self._result(None)]

    # --- messages -------------------------------------------------------------------------------

    def _result(self, segment: Segment | None) -> dict[str, Any]:
        """A stretch of speech in vosk-server's shape."""
        if segment is None:
            return {"text": ""}
        if self.config.max_alternatives:
            alternatives = []
            for i, text in enumerate(segment.texts[: self.config.max_alternatives]):
                item: dict[str, Any] = {"text": self._shown(text), "confidence": round(segment.scores[i], 3)}
                if self.config.words:
                    item["result"] = self._words(segment, i)
                alternatives.append(item)
            return {"alternatives": alternatives}
        body: dict[str, Any] = {"text": self._shown(segment.texts[0])}
        if self.config.words and segment.words[0]:
            body["result"] = self._words(segment, 0)
        return body

    def _words(self, segment: Segment, index: int) -> list[dict[str, Any]]:
        return [{"conf": round(w.conf, 3), "end": round(w.end, 3), "start": round(w.start, 3),
                 "word": MASK if self._mask else w.word} for w in segment.word_confidences(index)]

    def _shown(self, text: str) -> str:
        return MASK if self._mask and text else text

    def _utterance_json(self, transcript: Transcript) -> dict[str, Any]:
        body = transcript.to_json()
        if self._mask:
            body.update(text=self._shown(body["text"]), heard=self._shown(body["heard"]), alternatives=[],
                        words=[{**w, "word": MASK} for w in body["words"]])
        return body
