"""The audio decoder: every bad input with its error and status, formats, resampling, streaming."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from voice.audio import (
    MAX_BYTES,
    AudioStreamDecoder,
    AudioTooLarge,
    AudioTooLong,
    CorruptAudio,
    EmptyAudio,
    NotAudio,
    SilentAudio,
    UnsupportedAudio,
    decode_audio,
    encode_wav,
    resample,
    resample_to_16k,
)


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def wav_bytes(samples: np.ndarray, rate: int, channels: int = 1, bits: int = 16, fmt_tag: int = 1,
              data_size: int | None = None, extensible: bool = False, extra_chunks: bytes = b"") -> bytes:
    """A WAV written by hand (not by encode_wav), so the decoder is checked against the format itself."""
    x = np.repeat(samples[:, None], channels, axis=1).reshape(-1) if channels > 1 else samples
    if fmt_tag == 3:
        data = x.astype("<f4" if bits == 32 else "<f8").tobytes()
    elif bits == 8:
        data = np.clip(np.rint(x * 127 + 128), 0, 255).astype(np.uint8).tobytes()
    elif bits == 16:
        data = np.rint(x * 32767).astype("<i2").tobytes()
    elif bits == 24:
        v = np.rint(x * 8388607).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        data = v.tobytes()
    else:
        data = np.rint(x * 2147483647).astype("<i4").tobytes()
    block = channels * bits // 8
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits, 0)
        fmt += struct.pack("<H", fmt_tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra_chunks + b"data" + struct.pack("<I", size)
    return b"RIFF" + struct.pack("<I", 4 + len(body) - 4 + len(data)) + body + data


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


# --- formats -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 16, 24, 32])
@pytest.mark.parametrize("channels", [1, 2])
def test_pcm_wav_of_every_width_and_layout_decodes_to_the_same_tone(bits, channels):
    audio = decode_audio(wav_bytes(tone(440, 22050, 0.5), 22050, channels, bits), "audio/wav")
    assert audio.source.bits == bits and audio.source.channels == channels
    assert audio.samples.dtype == np.int16
    assert len(audio.samples) == 8000
    assert abs(dominant_frequency(audio.samples, 16000) - 440) < 3
    peak = np.abs(audio.samples[1000:-1000]).max() / 32767
    assert 0.45 < peak < 0.55   # scaled right for each width: 8-bit is unsigned, 24-bit sign-extended


@pytest.mark.parametrize("bits", [32, 64])
def test_float_wav_and_extensible_header_decode(bits):
    plain = decode_audio(wav_bytes(tone(300, 16000, 0.3), 16000, bits=bits, fmt_tag=3), None)
    extensible = decode_audio(wav_bytes(tone(300, 16000, 0.3), 16000, bits=bits, fmt_tag=3, extensible=True),
                              "audio/x-wav")
    assert plain.source.is_float and extensible.source.is_float
    assert np.array_equal(plain.samples, extensible.samples)
    assert abs(dominant_frequency(plain.samples, 16000) - 300) < 3


def test_raw_l16_is_big_endian_with_the_declared_rate_and_channels():
    x = np.rint(tone(1000, 8000, 0.5) * 32767).astype(">i2")
    stereo = np.repeat(x[:, None], 2, axis=1).reshape(-1)
    audio = decode_audio(stereo.tobytes(), "audio/L16; rate=8000; channels=2")
    assert audio.source.rate == 8000 and audio.source.channels == 2
    assert len(audio.samples) == 8000
    assert abs(dominant_frequency(audio.samples, 16000) - 1000) < 3


def test_unknown_chunks_before_data_are_skipped_and_trailing_chunks_ignored():
    listing = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0"   # odd size: padded
    body = wav_bytes(tone(500, 16000, 0.25), 16000, extra_chunks=listing) + b"id3 " + struct.pack("<I", 4) + b"tags"
    audio = decode_audio(body, "audio/wav")
    assert len(audio.samples) == 4000


def test_streaming_in_tiny_chunks_gives_exactly_the_one_shot_result():
    body = wav_bytes(tone(700, 44100, 1.0) + 0.1 * tone(3000, 44100, 1.0), 44100, channels=2, bits=24)
    whole = decode_audio(body, "audio/wav").samples
    decoder = AudioStreamDecoder("audio/wav")
    parts = [decoder.feed(body[i:i + 333]) for i in range(0, len(body), 333)]
    parts.append(decoder.finish())
    assert np.array_equal(np.concatenate(parts), whole)


def test_streaming_placeholder_length_reads_to_the_end():
    body = wav_bytes(tone(500, 16000, 0.5), 16000, data_size=0xFFFFFFFF)
    assert len(decode_audio(body, "audio/wav").samples) == 8000


# --- resampling ----------------------------------------------------------------------------------

def test_resampling_a_1khz_sine_from_44k1_keeps_its_frequency_and_length():
    x = tone(1000, 44100, 2.0)
    y = resample_to_16k(x, 44100)
    assert abs(len(y) - 32000) <= 1
    assert abs(dominant_frequency(y, 16000) - 1000) < 2
    # The waveform itself matches a 1 kHz sine generated at 16 kHz (no drift, no phase jumps).
    reference = np.rint(tone(1000, 16000, 2.0) * 32767)
    middle = slice(1000, 31000)
    assert np.max(np.abs(y[middle] - reference[middle])) < 0.01 * 32767


def test_resampling_filters_out_what_16k_cannot_hold_instead_of_aliasing_it():
    # A 10 kHz tone at 44.1 kHz is above the 8 kHz Nyquist limit. Dropping samples would fold it to
    # 6 kHz at full strength; a proper resampler removes it.
    y = resample_to_16k(tone(10_000, 44100, 1.0), 44100).astype(np.float64)
    assert np.sqrt(np.mean(y ** 2)) < 0.01 * 32767 * 0.5 / np.sqrt(2)


def test_upsampling_to_24k_for_a_platform():
    y = resample(np.rint(tone(440, 22050, 1.0) * 32767).astype(np.int16), 22050, 24000)
    assert abs(len(y) - 24000) <= 1
    assert abs(dominant_frequency(y, 24000) - 440) < 2


def test_encode_wav_writes_a_canonical_header_the_decoder_reads_back():
    pcm = np.rint(tone(250, 16000, 0.5) * 20000).astype(np.int16)
    body = encode_wav(pcm, 16000)
    assert body[:4] == b"RIFF" and body[8:16] == b"WAVEfmt " and len(body) == 44 + 2 * len(pcm)
    assert struct.unpack("<HHIIHH", body[20:36]) == (1, 1, 16000, 32000, 2, 16)
    assert np.array_equal(decode_audio(body, "audio/wav").samples, pcm)


# --- bad input: each case, its error and its HTTP status ------------------------------------------

SPEECHLIKE = tone(300, 16000, 1.0)
GOOD = wav_bytes(SPEECHLIKE, 16000)


@pytest.mark.parametrize(("body", "content_type", "error", "status"), [
    (b"", "audio/wav", EmptyAudio, 400),
    (b'{"text": "hello"}', "audio/wav", NotAudio, 400),
    (b"\x89PNG\r\n\x1a\n" + bytes(200), None, NotAudio, 400),
    (b"just some text that is not sound", "application/octet-stream", NotAudio, 400),
    (b"RIFF\x24\x00\x00\x00WA", "audio/wav", CorruptAudio, 400),                 # cut inside the header
    (GOOD[:30], "audio/wav", CorruptAudio, 400),                                # cut inside fmt
    (b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(100), "audio/wav", NotAudio, 400),  # RIFF, but a video
    (GOOD[:12] + b"data" + GOOD[40:], "audio/wav", CorruptAudio, 400),          # data before fmt
    (wav_bytes(SPEECHLIKE, 16000, data_size=20 * 32000), "audio/wav", CorruptAudio, 400),  # truncated data
    (wav_bytes(np.zeros(0), 16000), "audio/wav", EmptyAudio, 400),
    (wav_bytes(np.zeros(16000), 16000), "audio/wav", SilentAudio, 400),
    (wav_bytes(np.full(16000, 1e-5), 16000), "audio/wav", SilentAudio, 400),    # -100 dBFS hum
    (wav_bytes(tone(300, 8000, 31.0), 8000), "audio/wav", AudioTooLong, 413),
    (bytes(MAX_BYTES + 1), "audio/L16;rate=16000", AudioTooLarge, 413),
    (wav_bytes(SPEECHLIKE, 16000, fmt_tag=0x55), "audio/wav", UnsupportedAudio, 415),   # MP3 in WAV
    (wav_bytes(SPEECHLIKE, 16000, fmt_tag=0x02), "audio/wav", UnsupportedAudio, 415),   # MS ADPCM
    (wav_bytes(SPEECHLIKE, 16000, fmt_tag=0x11, extensible=True), "audio/wav", UnsupportedAudio, 415),
    (b"ID3\x04\x00" + bytes(500), "audio/wav", UnsupportedAudio, 415),
    (b"OggS" + bytes(500), None, UnsupportedAudio, 415),
    (GOOD, "audio/mpeg", UnsupportedAudio, 415),
    (GOOD, "audio/ogg; codecs=opus", UnsupportedAudio, 415),
    (GOOD[44:], "audio/L16", CorruptAudio, 400),                                # no rate declared
    (wav_bytes(SPEECHLIKE, 16000, channels=2)[:-1] + b"", "audio/L16;rate=16000;channels=6",
     UnsupportedAudio, 415),
])
def test_bad_audio_is_rejected_with_its_error_and_status(body, content_type, error, status):
    with pytest.raises(error) as caught:
        decode_audio(body, content_type)
    assert caught.value.status == status
    assert caught.value.message


def test_a_one_hour_header_on_one_second_of_data_is_refused_before_any_decoding():
    decoder = AudioStreamDecoder("audio/wav")
    header = wav_bytes(np.zeros(0), 16000, data_size=3600 * 32000)
    with pytest.raises(AudioTooLong):
        decoder.feed(header)          # refused on the header alone: nothing was buffered or decoded
    assert decoder.source_frames == 0


def test_a_stream_that_runs_past_30_seconds_is_stopped_as_it_arrives():
    decoder = AudioStreamDecoder("audio/L16;rate=16000")
    second = (np.rint(tone(300, 16000, 1.0) * 10000).astype(">i2")).tobytes()
    with pytest.raises(AudioTooLong):
        for _ in range(40):
            decoder.feed(second)
    assert decoder.source_frames <= 31 * 16000


def test_192k_stereo_8bit_near_the_size_limit_decodes_within_limits():
    # 192 kHz x 2 channels x 8 bits = 384 kB/s: 25 s is just under 10 MB and under 30 s.
    x = tone(1000, 192000, 25.0, amplitude=0.3)
    audio = decode_audio(wav_bytes(x, 192000, channels=2, bits=8), "audio/wav")
    assert abs(len(audio.samples) - 25 * 16000) <= 1
    assert abs(dominant_frequency(audio.samples[:64000], 16000) - 1000) < 3


def test_unsupported_rate_and_bad_block_align_are_named():
    with pytest.raises(UnsupportedAudio, match="sample rate"):
        decode_audio(wav_bytes(SPEECHLIKE, 384000), "audio/wav")
    body = bytearray(GOOD)
    body[32:34] = struct.pack("<H", 3)   # block align 3 for 16-bit mono
    with pytest.raises(CorruptAudio, match="block align"):
        decode_audio(bytes(body), "audio/wav")
