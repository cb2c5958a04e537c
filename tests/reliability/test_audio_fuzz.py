"""Audio fuzzing: random bytes, mangled WAV headers and wrong declared sizes and rates end in a typed
audio error (a clean 4xx) or a decoded clip within the limits — never another exception."""

from __future__ import annotations

import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from voice.audio import AudioError, decode_audio


def wav(samples: bytes, rate: int, channels: int, bits: int, data_size: int | None = None) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    size = len(samples) if data_size is None else data_size
    return b"RIFF" + struct.pack("<I", min(36 + size, 2**32 - 1)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + \
        b"data" + struct.pack("<I", size) + samples


def decodes_cleanly(body: bytes, content_type: str | None) -> None:
    try:
        clip = decode_audio(body, content_type)
    except AudioError as exc:
        assert 400 <= exc.status < 500 and exc.message
        return
    assert clip.samples.dtype == np.int16 and len(clip.samples) <= 30 * 16000 + 16


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=4000),
       content_type=st.sampled_from(["audio/wav", "audio/L16;rate=16000", "audio/L16;rate=0", "audio/L16",
                                     "application/octet-stream", None, "audio/L16;rate=192000;channels=2"]))
def test_random_bytes(body, content_type):
    decodes_cleanly(body, content_type)


@settings(max_examples=200, deadline=None)
@given(rate=st.integers(min_value=0, max_value=400_000), channels=st.integers(min_value=0, max_value=9),
       bits=st.sampled_from([0, 4, 8, 12, 16, 24, 32, 48, 64]), seconds=st.floats(min_value=0, max_value=2),
       declared=st.one_of(st.none(), st.integers(min_value=0, max_value=2**32 - 1)),
       cut=st.integers(min_value=0, max_value=60))
def test_mangled_headers(rate, channels, bits, seconds, declared, cut):
    block = max(1, channels * bits // 8)
    samples = (np.random.default_rng(0).integers(-2000, 2000, int(seconds * 8000)) % 256).astype(np.uint8)
    payload = samples.tobytes()[: len(samples) // block * block]
    body = wav(payload, rate, channels, bits, declared)
    decodes_cleanly(body, "audio/wav")
    decodes_cleanly(body[: max(0, len(body) - cut)], "audio/wav")
