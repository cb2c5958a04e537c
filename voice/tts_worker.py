"""The speech synthesis worker process (`python -m voice.tts_worker`), driven by voice.tts.

Jobs arrive as JSON lines on stdin; each answer is a frame on the original stdout: 1 status byte
(b"+" ok, b"-" error), a 4-byte big-endian length, then the WAV bytes or a UTF-8 error message.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import tempfile
from pathlib import Path

# espeak-ng voice identifiers (as pyttsx3 lists them) for the project's voices.
ESPEAK_VOICES = {"ko": "ko", "en": "gmw/en-us"}
_WAV_HEADER_BYTES = 44


def _send(out: int, ok: bool, payload: bytes) -> None:
    frame = (b"+" if ok else b"-") + struct.pack(">I", len(payload)) + payload
    view = memoryview(frame)
    while view:
        view = view[os.write(out, view):]


def main() -> None:
    # The protocol keeps the real stdout; fd 1 goes to /dev/null because pyttsx3's espeak driver
    # prints "Audio saved to …" there.
    out = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    import pyttsx3

    engine = pyttsx3.init("espeak")
    path = Path(tempfile.mkdtemp(prefix="minwon-tts-")) / "out.wav"
    _send(out, True, str(os.getpid()).encode())
    for line in sys.stdin:
        try:
            job = json.loads(line)
            engine.setProperty("voice", ESPEAK_VOICES[job["voice"]])
            # Rate and volume go in as espeak embedded commands (Ctrl-A, value, S = speed in words per
            # minute, A = amplitude in percent): pyttsx3's setProperty reaches espeak through its
            # asynchronous command queue and now and then takes effect one utterance late.
            text = f"\x01{int(job['rate'])}S\x01{round(float(job['volume']) * 100)}A{job['text']}"
            # The espeak driver keeps only the last save_to_file of a loop run: one job per run. It
            # also drops the audio of its last callback, which now and then is all of it: try again.
            for _ in range(3):
                engine.save_to_file(text, str(path))
                engine.runAndWait()
                if path.is_file() and path.stat().st_size > _WAV_HEADER_BYTES:
                    break
            _send(out, True, path.read_bytes())
        except Exception as exc:  # report any engine failure to the parent instead of dying
            _send(out, False, f"{type(exc).__name__}: {exc}".encode())
        finally:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
