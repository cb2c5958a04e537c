"""The one audio decoder of the project: WAV or raw PCM in, 16 kHz mono int16 out; and the WAV writer.

Everything goes through `AudioStreamDecoder`, which takes the body in chunks as they arrive, so a
chunked upload can be recognised while it is still coming in, and a whole file is just one chunk.
Limits are enforced on the bytes actually received, never on what a header claims, so a hostile
header cannot make the service allocate or wait for more than the limits allow.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import soxr

TARGET_RATE = 16_000
MAX_DURATION_S = 30.0
MAX_BYTES = 10 * 1024 * 1024
MIN_RATE, MAX_RATE = 4_000, 192_000
# A recording whose loudest 20 ms frame is below this level carries no speech (a muted or unplugged
# microphone, digital zeros); a quiet room recorded with a real microphone sits well above it.
SILENCE_DBFS = -55.0
_SILENCE_RMS = 32768.0 * 10 ** (SILENCE_DBFS / 20)

WAV_CONTENT_TYPES = {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/x-pn-wav"}
RAW_PCM_CONTENT_TYPE = "audio/l16"
SUPPORTED_HINT = "send audio/wav (PCM 8/16/24/32-bit or float) or audio/L16;rate=N"

# WAV format tags (RFC 2361); everything but PCM and IEEE float is a compressed or companded codec.
_WAVE_PCM, _WAVE_FLOAT, _WAVE_EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
_CODEC_NAMES = {0x0002: "MS ADPCM", 0x0006: "A-law", 0x0007: "mu-law", 0x0011: "IMA ADPCM",
                0x0031: "GSM 6.10", 0x0050: "MPEG", 0x0055: "MP3", 0x00FF: "AAC", 0x1610: "HE-AAC",
                0x6750: "Vorbis", 0xF1AC: "FLAC"}
# Declared data sizes that streaming writers use when they do not know the length yet.
_UNKNOWN_LENGTH_FLOOR = 0x7FFF0000

# Signatures of audio containers we recognise but do not decode (answered 415, not 400).
_CODEC_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"ID3", "MP3"), (0, b"OggS", "Ogg"), (0, b"fLaC", "FLAC"), (0, b"\x1aE\xdf\xa3", "WebM/Matroska"),
    (4, b"ftyp", "MP4/AAC"), (0, b"#!AMR", "AMR"), (0, b".snd", "Sun audio"), (0, b"FORM", "AIFF"),
    (0, b"RIFX", "big-endian RIFF"), (0, b"RF64", "RF64"),
)


class AudioError(Exception):
    """A request's audio cannot be used; `status` and `code` are what the HTTP layer answers."""

    status = 400
    code = "bad_audio"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAudio(AudioError):
    code = "not_audio"


class CorruptAudio(AudioError):
    code = "corrupt_audio"


class EmptyAudio(AudioError):
    code = "empty_audio"


class SilentAudio(AudioError):
    code = "silent_audio"


class AudioTooLong(AudioError):
    status = 413
    code = "audio_too_long"


class AudioTooLarge(AudioError):
    status = 413
    code = "audio_too_large"


class UnsupportedAudio(AudioError):
    status = 415
    code = "unsupported_audio"


@dataclass(frozen=True)
class PcmFormat:
    """How the samples of the source are laid out."""

    rate: int
    channels: int
    bits: int
    is_float: bool = False
    big_endian: bool = False

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.bits // 8

    @property
    def label(self) -> str:
        kind = "float" if self.is_float else "pcm"
        return f"{kind}{self.bits}{'be' if self.big_endian else ''}/{self.rate}Hz/{self.channels}ch"


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray          # int16, mono, at `rate`
    source: PcmFormat
    rate: int = TARGET_RATE

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    @property
    def pcm_bytes(self) -> bytes:
        return self.samples.astype("<i2", copy=False).tobytes()


def _media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    if not content_type:
        return "", {}
    main, *params = content_type.split(";")
    parsed = {}
    for param in params:
        name, _, value = param.partition("=")
        parsed[name.strip().lower()] = value.strip().strip('"')
    return main.strip().lower(), parsed


def _raw_pcm_format(params: dict[str, str]) -> PcmFormat:
    try:
        rate = int(params["rate"])
        channels = int(params.get("channels", "1"))
    except KeyError:
        raise CorruptAudio("audio/L16 needs its sample rate, e.g. audio/L16;rate=16000") from None
    except ValueError:
        raise CorruptAudio("audio/L16 rate and channels must be whole numbers") from None
    _check_rate_and_channels(rate, channels)
    # RFC 2586 / RFC 3551: L16 samples are in network byte order.
    return PcmFormat(rate=rate, channels=channels, bits=16, big_endian=True)


def _check_rate_and_channels(rate: int, channels: int) -> None:
    if rate <= 0 or channels <= 0:
        raise CorruptAudio("the sample rate and channel count must be positive")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UnsupportedAudio(f"sample rate {rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz")
    if channels > 2:
        raise UnsupportedAudio(f"{channels} channels: only mono or stereo audio is accepted")


def _sniff_codec(head: bytes) -> str | None:
    for offset, signature, name in _CODEC_SIGNATURES:
        if head[offset:offset + len(signature)] == signature:
            return name
    # An MPEG audio frame starts with 11 set sync bits.
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MPEG audio"
    return None


def _parse_fmt_chunk(body: bytes) -> PcmFormat:
    if len(body) < 16:
        raise CorruptAudio("the WAV fmt chunk is shorter than 16 bytes")
    tag, channels, rate, byte_rate, block_align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _WAVE_EXTENSIBLE:
        if len(body) < 40:
            raise CorruptAudio("the WAVE_FORMAT_EXTENSIBLE fmt chunk is truncated")
        tag = struct.unpack("<H", body[24:26])[0]   # first two bytes of the sub-format GUID
    if tag not in (_WAVE_PCM, _WAVE_FLOAT):
        name = _CODEC_NAMES.get(tag, f"format tag 0x{tag:04x}")
        raise UnsupportedAudio(f"WAV codec {name} is not supported: {SUPPORTED_HINT}")
    _check_rate_and_channels(rate, channels)
    allowed_bits = (32, 64) if tag == _WAVE_FLOAT else (8, 16, 24, 32)
    if bits not in allowed_bits:
        raise UnsupportedAudio(f"{bits}-bit {'float' if tag == _WAVE_FLOAT else 'PCM'} WAV is not supported")
    fmt = PcmFormat(rate=rate, channels=channels, bits=bits, is_float=tag == _WAVE_FLOAT)
    if block_align != fmt.frame_bytes:
        raise CorruptAudio(f"the WAV block align {block_align} does not match {channels} x {bits} bits")
    return fmt


def _to_float(raw: bytes, fmt: PcmFormat) -> np.ndarray:
    """Interleaved source bytes (whole frames) → float32 mono in [-1, 1]."""
    if fmt.is_float:
        x = np.frombuffer(raw, dtype="<f4" if fmt.bits == 32 else "<f8").astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise CorruptAudio("the float WAV holds NaN or infinite samples")
        np.clip(x, -1.0, 1.0, out=x)
    elif fmt.bits == 8:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif fmt.bits == 16:
        x = np.frombuffer(raw, dtype=">i2" if fmt.big_endian else "<i2").astype(np.float32) / 32768.0
    elif fmt.bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = ((v ^ 0x800000) - 0x800000).astype(np.float32) / 8388608.0
    else:
        x = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    if fmt.channels == 2:
        x = x.reshape(-1, 2).mean(axis=1, dtype=np.float32)
    return x


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 32767.0), -32768, 32767).astype(np.int16)


class _Resampler:
    """Streaming float32 mono resampler (soxr, high quality: band-limited, no sample dropping)."""

    def __init__(self, rate: int, target_rate: int) -> None:
        self._stream = None
        if rate != target_rate:
            self._stream = soxr.ResampleStream(rate, target_rate, 1, dtype="float32", quality="HQ")

    def push(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return x
        return self._stream.resample_chunk(x, last=last)


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Mono samples (int16, or float in [-1, 1]) at `rate` → int16 at `target_rate`."""
    x = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples.astype(np.float32)
    return _to_int16(_Resampler(rate, target_rate).push(x, last=True))


def resample_to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    return resample(samples, rate, TARGET_RATE)


class AudioStreamDecoder:
    """Incremental decoder: `feed()` chunks as they arrive, then `finish()`.

    Each call returns the new 16 kHz mono int16 samples ready so far, so a recogniser can consume them
    while the upload is still in progress.
    """

    def __init__(self, content_type: str | None, max_bytes: int = MAX_BYTES,
                 max_duration_s: float = MAX_DURATION_S, target_rate: int = TARGET_RATE,
                 reject_silence: bool = True, raw_format: PcmFormat | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_duration_s = max_duration_s
        self.target_rate = target_rate
        self.reject_silence = reject_silence
        self._loudness_frame = target_rate // 50
        media_type, params = _media_type(content_type)
        self.format: PcmFormat | None = None
        self._is_wav: bool | None = None
        self._declared_media_type = media_type
        if raw_format is not None:
            # Headerless PCM whose layout the caller knows (a WebSocket stream's configured sample rate).
            _check_rate_and_channels(raw_format.rate, raw_format.channels)
            self.format = raw_format
            self._is_wav = False
        elif media_type == RAW_PCM_CONTENT_TYPE:
            self.format = _raw_pcm_format(params)
            self._is_wav = False
        elif media_type in WAV_CONTENT_TYPES:
            self._is_wav = True
        elif media_type.startswith("audio/"):
            raise UnsupportedAudio(f"{media_type} is not supported: {SUPPORTED_HINT}")
        # Anything else (none, application/octet-stream, a form type from curl) is sniffed below.
        self._header = bytearray()
        self._data_left: int | None = None     # bytes of the data chunk still expected; None = until the end
        self._declared_data: int | None = None
        self._in_data = not self._is_wav and self.format is not None
        self._partial = b""
        self._resampler = _Resampler(self.format.rate, target_rate) if self.format else None
        self.bytes_received = 0
        self.source_frames = 0
        self.output_samples = 0
        self._loudest_rms = 0.0
        self._tail = np.zeros(0, dtype=np.int16)
        self._finished = False

    @classmethod
    def raw_pcm(cls, rate: int, max_duration_s: float = MAX_DURATION_S, reject_silence: bool = False,
                max_bytes: int = MAX_BYTES) -> AudioStreamDecoder:
        """Headerless 16-bit little-endian mono PCM at `rate` (the Vosk WebSocket protocol's audio)."""
        return cls(None, max_bytes=max_bytes, max_duration_s=max_duration_s, reject_silence=reject_silence,
                   raw_format=PcmFormat(rate=rate, channels=1, bits=16))

    @property
    def duration_s(self) -> float:
        return self.output_samples / self.target_rate

    @property
    def source_duration_s(self) -> float:
        """Audio received so far, in seconds of the source (what the 30 s limit counts)."""
        return self.source_frames / self.format.rate if self.format else 0.0

    def feed(self, chunk: bytes) -> np.ndarray:
        if self._finished:
            raise RuntimeError("feed() after finish()")
        self.bytes_received += len(chunk)
        if self.bytes_received > self.max_bytes:
            raise AudioTooLarge(f"audio larger than {self.max_bytes // (1024 * 1024)} MB")
        if not self._in_data:
            self._header += chunk
            chunk = self._parse_header()
            if not self._in_data:
                return np.zeros(0, dtype=np.int16)
        return self._decode_data(chunk)

    def finish(self) -> np.ndarray:
        """Flush the resampler and validate the whole: raises for empty, truncated or silent audio."""
        self._finished = True
        if not self._in_data:
            self._reject_incomplete_header()
        if self._data_left and self._declared_data is not None:
            got = self._declared_data - self._data_left
            raise CorruptAudio(f"truncated WAV: the header declares {self._declared_data} data bytes, "
                               f"only {got} arrived")
        if self.source_frames == 0:
            raise EmptyAudio("the audio holds no samples")
        out = self._emit(self._resampler.push(np.zeros(0, dtype=np.float32), last=True), final=True)
        if self.reject_silence and self._loudest_rms < _SILENCE_RMS:
            raise SilentAudio("the audio is silent: no speech was heard")
        return out

    # --- header ---------------------------------------------------------------------------------

    def _reject_incomplete_header(self) -> None:
        head = bytes(self._header)
        if not head:
            raise EmptyAudio("the request body is empty")
        if self._looks_like_riff(head):
            raise CorruptAudio("truncated WAV: the headers end before the audio data starts")
        codec = _sniff_codec(head)
        if codec:
            raise UnsupportedAudio(f"{codec} audio is not supported: {SUPPORTED_HINT}")
        raise NotAudio(f"the body is not audio: {SUPPORTED_HINT}")

    @staticmethod
    def _looks_like_riff(head: bytes) -> bool:
        """True for a RIFF/WAVE start, including one cut short before its first 12 bytes."""
        n = min(len(head), 4)
        return head[:n] == b"RIFF"[:n] and head[8:12] == b"WAVE"[: max(0, len(head) - 8)]

    def _parse_header(self) -> bytes:
        """Walk RIFF chunks in the buffered head; once at the data chunk, return the data bytes seen."""
        head = self._header
        if len(head) < 12:
            if not self._looks_like_riff(bytes(head)):
                self._reject_not_wav(bytes(head))
            return b""
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            self._reject_not_wav(bytes(head))
        pos = 12
        while len(head) >= pos + 8:
            chunk_id = bytes(head[pos:pos + 4])
            size = struct.unpack("<I", head[pos + 4:pos + 8])[0]
            body_start = pos + 8
            if chunk_id == b"data":
                if self.format is None:
                    raise CorruptAudio("the WAV data chunk comes before its fmt chunk")
                self._start_data(size)
                rest = bytes(head[body_start:])
                self._header = bytearray()
                return rest
            if chunk_id == b"fmt ":
                if len(head) < body_start + size:
                    return b""
                self.format = _parse_fmt_chunk(bytes(head[body_start:body_start + size]))
                self._resampler = _Resampler(self.format.rate, self.target_rate)
            elif not chunk_id.isascii():
                raise CorruptAudio("corrupt WAV: a chunk header is not readable")
            # Other chunks (LIST, fact, cue …) are skipped; RIFF chunks are padded to even sizes.
            pos = body_start + size + (size & 1)
            if pos > self.max_bytes:
                raise CorruptAudio("corrupt WAV: a chunk declares a size beyond the upload limit")
        # Drop what has been walked already, keep the unfinished part: memory stays bounded.
        if pos > 12 and len(head) >= pos:
            self._header = bytearray(b"RIFF\0\0\0\0WAVE") + head[pos:]
        return b""

    def _reject_not_wav(self, head: bytes) -> None:
        codec = _sniff_codec(head)
        if codec:
            raise UnsupportedAudio(f"{codec} audio is not supported: {SUPPORTED_HINT}")
        if self._is_wav:
            raise NotAudio("the body is declared as WAV but has no RIFF/WAVE header")
        raise NotAudio(f"the body is not audio: {SUPPORTED_HINT}")

    def _start_data(self, size: int) -> None:
        fmt = self.format
        assert fmt is not None
        self._in_data = True
        if size == 0 or size >= _UNKNOWN_LENGTH_FLOOR:
            return   # a streaming writer's placeholder: the data runs to the end of the body
        declared_s = size / fmt.frame_bytes / fmt.rate
        if declared_s > self.max_duration_s:
            raise AudioTooLong(f"the WAV header declares {declared_s:.0f} s of audio; the limit is "
                               f"{self.max_duration_s:.0f} s")
        if size > self.max_bytes:
            raise AudioTooLarge(f"the WAV header declares more than {self.max_bytes // (1024 * 1024)} MB")
        self._declared_data = size
        self._data_left = size

    # --- data -----------------------------------------------------------------------------------

    def _decode_data(self, chunk: bytes) -> np.ndarray:
        fmt = self.format
        assert fmt is not None and self._resampler is not None
        if self._data_left is not None:
            chunk = chunk[: self._data_left]   # anything after the data chunk (LIST, id3) is not audio
            self._data_left -= len(chunk)
        raw = self._partial + chunk
        usable = len(raw) - len(raw) % fmt.frame_bytes
        self._partial = raw[usable:]
        if usable == 0:
            return np.zeros(0, dtype=np.int16)
        frames = usable // fmt.frame_bytes
        self.source_frames += frames
        if self.source_frames / fmt.rate > self.max_duration_s:
            raise AudioTooLong(f"audio longer than {self.max_duration_s:.0f} s")
        return self._emit(self._resampler.push(_to_float(raw[:usable], fmt)))

    def _emit(self, x: np.ndarray, final: bool = False) -> np.ndarray:
        out = _to_int16(x)
        self.output_samples += len(out)
        # Loudness is measured on whole 20 ms frames; the remainder waits for the next chunk.
        frames = np.concatenate([self._tail, out])
        size = self._loudness_frame
        whole = len(frames) - len(frames) % size
        if final and whole == 0 and len(frames):
            whole = len(frames)
        if whole:
            blocks = frames[:whole].astype(np.float32)
            blocks = blocks.reshape(-1, size) if whole % size == 0 else blocks.reshape(1, -1)
            rms = float(np.sqrt(np.mean(blocks * blocks, axis=1)).max())
            self._loudest_rms = max(self._loudest_rms, rms)
        self._tail = frames[whole:]
        return out


def decode_audio(data: bytes, content_type: str | None, max_bytes: int = MAX_BYTES,
                 max_duration_s: float = MAX_DURATION_S, target_rate: int = TARGET_RATE,
                 reject_silence: bool = True) -> DecodedAudio:
    """A whole body → mono int16 at `target_rate` (the same decoder as a streamed upload, fed in one go)."""
    if len(data) > max_bytes:
        raise AudioTooLarge(f"audio larger than {max_bytes // (1024 * 1024)} MB")
    decoder = AudioStreamDecoder(content_type, max_bytes=max_bytes, max_duration_s=max_duration_s,
                                 target_rate=target_rate, reject_silence=reject_silence)
    head = decoder.feed(data)
    tail = decoder.finish()
    assert decoder.format is not None
    return DecodedAudio(samples=np.concatenate([head, tail]), source=decoder.format, rate=target_rate)


def encode_wav(pcm: np.ndarray, rate: int) -> bytes:
    """Mono int16 samples → a canonical 44-byte-header PCM WAV."""
    data = np.asarray(pcm, dtype=np.int16).astype("<i2", copy=False).tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, _WAVE_PCM, 1,
                         rate, rate * 2, 2, 16, b"data", len(data))
    return header + data
