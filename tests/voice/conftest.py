"""Voice fixtures: one Vosk model and one synthesis worker for the whole test session."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from settings import Settings
from voice.asr import AsrConfig, SpeechRecognizer
from voice.audio import decode_audio
from voice.tts import SpeechSynthesizer, TtsConfig


@pytest.fixture(scope="session")
def recognizer() -> SpeechRecognizer:
    return SpeechRecognizer.load(AsrConfig.from_settings(Settings.from_env({})))


@pytest.fixture(scope="session")
def synthesizer() -> Iterator[SpeechSynthesizer]:
    tts = SpeechSynthesizer(TtsConfig(timeout_s=20))
    yield tts
    tts.close()


@pytest.fixture(scope="session")
def speak(synthesizer: SpeechSynthesizer) -> Callable[..., np.ndarray]:
    """Text → espeak-ng speech as 16 kHz mono int16, through the project's own TTS and decoder."""

    def synthesize(text: str, voice: str = "ko", rate: int | None = None) -> np.ndarray:
        return decode_audio(synthesizer.synthesize(text, voice, rate=rate), "audio/wav").samples

    return synthesize
