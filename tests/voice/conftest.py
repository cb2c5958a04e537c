"""Voice fixtures: the shared app's speech models (loaded once per test run) and a speech helper."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from voice.asr import SpeechRecognizer
from voice.audio import decode_audio
from voice.tts import SpeechSynthesizer


@pytest.fixture(scope="session")
def recognizer(services) -> SpeechRecognizer:
    return services.components["asr"]


@pytest.fixture(scope="session")
def synthesizer(services) -> SpeechSynthesizer:
    return services.components["tts"]


@pytest.fixture(scope="session")
def speak_wav(synthesizer: SpeechSynthesizer) -> Callable[..., bytes]:
    """Text → espeak-ng speech as a WAV, through the project's own TTS."""

    def synthesize(text: str, voice: str = "ko", rate: int | None = None) -> bytes:
        return synthesizer.synthesize(text, voice, rate=rate)

    return synthesize


@pytest.fixture(scope="session")
def speak(speak_wav: Callable[..., bytes]) -> Callable[..., np.ndarray]:
    """Text → espeak-ng speech as 16 kHz mono int16."""

    def synthesize(text: str, voice: str = "ko", rate: int | None = None) -> np.ndarray:
        return decode_audio(speak_wav(text, voice, rate), "audio/wav").samples

    return synthesize
