"""Talk to a running Minwon Voice service: `python -m voice.harness --url http://127.0.0.1:8080`.

Each turn sends audio to /v1/voice, prints what was heard and what the service answered, and plays
the answer (or saves it with --out). The session is kept across turns until the service ends it.

Audio comes from the microphone (push-to-talk with Enter, or --vad to start and stop on voice),
from WAV files (--wav FILE, repeatable), or from text synthesised here first (--say "text", repeatable:
a loopback test that needs no microphone).

`--stream` sends the audio over the WebSocket /v1/voice/stream while it is spoken (files and --say at real-time
pace) and prints the partial transcripts as they come; the reply's sentences play as they arrive. With a ws://
or wss:// `--url` it speaks the plain Vosk WebSocket protocol to any vosk-server-compatible address (no dialog):
`python -m voice.harness --stream --url ws://127.0.0.1:2700 --wav question.wav`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import requests

from voice.audio import TARGET_RATE, decode_audio, encode_wav

NO_MICROPHONE = 2
HTTP_FAILED = 1
STREAM_CHUNK_S = 0.1


class MicrophoneUnavailable(Exception):
    pass


# --- audio sources ------------------------------------------------------------------------------

def _sounddevice():
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library itself is missing
        raise MicrophoneUnavailable(
            f"no microphone support: {exc}. Install PortAudio (Debian: libportaudio2), or use --wav or --say.") from None
    return sounddevice


def _input_device(sd) -> int | str | None:
    wanted = os.environ.get("MINWON_HARNESS_INPUT_DEVICE") or None
    try:
        sd.query_devices(wanted, kind="input")
    except (ValueError, sd.PortAudioError) as exc:
        raise MicrophoneUnavailable(f"no microphone found ({exc}); use --wav FILE or --say TEXT instead.") from None
    return wanted


def record_push_to_talk() -> bytes | None:
    """Enter starts, Enter stops; 'q' quits. Returns a 16 kHz mono WAV, or None to quit."""
    sd = _sounddevice()
    device = _input_device(sd)
    if input("[Enter] to speak, q [Enter] to quit: ").strip().lower() == "q":
        return None
    frames: queue.Queue[np.ndarray] = queue.Queue()
    with sd.InputStream(samplerate=TARGET_RATE, channels=1, dtype="int16", device=device,
                        callback=lambda data, *_: frames.put(data.copy())):
        input("recording … [Enter] to stop ")
    chunks = []
    while not frames.empty():
        chunks.append(frames.get())
    return encode_wav(np.concatenate(chunks)[:, 0] if chunks else np.zeros(0, np.int16), TARGET_RATE)


def record_until_silence(max_s: float = 15.0, trailing_silence_s: float = 0.8) -> bytes | None:
    """Waits for speech, records until it stops. The threshold sits 12 dB over the room's own noise."""
    sd = _sounddevice()
    device = _input_device(sd)
    block = TARGET_RATE // 50
    print("listening … (Ctrl-C to quit)")
    try:
        with sd.InputStream(samplerate=TARGET_RATE, channels=1, dtype="int16", device=device, blocksize=block) as mic:
            noise = [float(np.sqrt(np.mean(mic.read(block)[0].astype(np.float64) ** 2))) for _ in range(25)]
            threshold = max(np.median(noise) * 4, 60.0)
            recorded: list[np.ndarray] = []
            quiet = 0
            while len(recorded) * block < max_s * TARGET_RATE:
                data = mic.read(block)[0][:, 0]
                loud = np.sqrt(np.mean(data.astype(np.float64) ** 2)) > threshold
                if recorded or loud:
                    recorded.append(data)
                    quiet = 0 if loud else quiet + 1
                    if quiet * block >= trailing_silence_s * TARGET_RATE:
                        break
    except KeyboardInterrupt:
        return None
    return encode_wav(np.concatenate(recorded), TARGET_RATE)


def synthesised(texts: list[str], voice: str) -> Iterator[bytes]:
    from voice.tts import SpeechSynthesizer

    tts = SpeechSynthesizer()
    try:
        for text in texts:
            print(f"(say) {text}")
            yield tts.synthesize(text, voice, sample_rate=TARGET_RATE)
    finally:
        tts.close()


def from_files(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        yield path.read_bytes()


# --- the conversation ---------------------------------------------------------------------------

def play(wav: bytes) -> None:
    try:
        sd = _sounddevice()
        audio = decode_audio(wav, "audio/wav", target_rate=22050, reject_silence=False)
        sd.play(audio.samples, 22050, blocking=True)
    except Exception as exc:  # noqa: BLE001 - playback is a convenience; --out is the way to keep it
        print(f"(cannot play the answer: {exc}; use --out to save it)")


def out_path(out: Path, turn: int) -> Path:
    return out if turn == 1 else out.with_name(f"{out.stem}-{turn}{out.suffix or '.wav'}")


def converse(url: str, device_token: str | None, locale: str | None, turns: Iterator[bytes | None],
             out: Path | None) -> int:
    session_id: str | None = None
    http = requests.Session()
    if device_token:
        http.headers["Authorization"] = f"Bearer {device_token}"
    for number, wav in enumerate(turns, start=1):
        if wav is None:
            break
        params = {**({"session_id": session_id} if session_id else {}), **({"locale": locale} if locale else {})}
        response = http.post(f"{url.rstrip('/')}/v1/voice", params=params, data=wav,
                             headers={"Content-Type": "audio/wav", "Accept": "application/json"}, timeout=120)
        if response.status_code != 200:
            print(f"error {response.status_code}: {response.text}", file=sys.stderr)
            return HTTP_FAILED
        body = response.json()
        reply = body["response"]
        session_id = reply["session_id"]
        print(f"you:     {body['transcript'] or '(not understood)'}")
        print(f"service: {reply['speech']}")
        print(f"session: {session_id} intent={reply['intent']} expects={reply['expects']}")
        if body.get("audio_b64"):
            answer = base64.b64decode(body["audio_b64"])
            if out:
                path = out_path(out, number)
                path.write_bytes(answer)
                print(f"saved:   {path}")
            else:
                play(answer)
        if reply["end_session"]:
            print("(the service ended the session)")
            break
    return 0


# --- streaming over WebSocket -------------------------------------------------------------------

def pcm_chunks(wav: bytes, chunk_s: float = STREAM_CHUNK_S) -> list[bytes]:
    """A WAV → 16 kHz 16-bit little-endian mono pieces of `chunk_s` seconds."""
    pcm = decode_audio(wav, "audio/wav", reject_silence=False).pcm_bytes
    size = int(TARGET_RATE * chunk_s) * 2
    return [pcm[i:i + size] for i in range(0, len(pcm), size)]


def paced(chunks: Iterable[bytes], chunk_s: float = STREAM_CHUNK_S) -> Iterator[bytes]:
    """Yields each piece when a speaker would have finished saying it (real-time pace)."""
    started = time.monotonic()
    for n, chunk in enumerate(chunks):
        time.sleep(max(0.0, started + (n + 1) * chunk_s - time.monotonic()))
        yield chunk


def microphone_chunks(stop: threading.Event) -> Iterator[bytes]:
    """16 kHz pieces from the microphone as they are recorded, until `stop` is set."""
    sd = _sounddevice()
    device = _input_device(sd)
    blocks: queue.Queue[bytes] = queue.Queue()
    with sd.InputStream(samplerate=TARGET_RATE, channels=1, dtype="int16", device=device,
                        blocksize=int(TARGET_RATE * STREAM_CHUNK_S),
                        callback=lambda data, *_: blocks.put(data[:, 0].astype("<i2").tobytes())):
        while not stop.is_set():
            try:
                yield blocks.get(timeout=0.2)
            except queue.Empty:
                continue
    while not blocks.empty():
        yield blocks.get()


def stream_address(url: str, dialog: bool, params: dict[str, str]) -> str:
    """The WebSocket address: a ws:// or wss:// URL as given (a vosk-server), else this service's stream route."""
    if url.startswith(("ws://", "wss://")):
        return url
    base = url.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    query = urlencode({**({"dialog": "1"} if dialog else {}), **params})
    return f"{base}/v1/voice/stream" + (f"?{query}" if query else "")


class StreamFailed(Exception):
    pass


def stream_turn(address: str, device_token: str | None, chunks: Iterable[bytes]) -> tuple[dict | None, list[bytes]]:
    """Streams one utterance and prints what comes back; returns the dialog reply (None from a plain Vosk
    server) and the reply's speech, one WAV per sentence."""
    import websocket  # websocket-client (requirements-dev.txt, as sounddevice is)

    headers = [f"Authorization: Bearer {device_token}"] if device_token else []
    try:
        ws = websocket.create_connection(address, header=headers, enable_multithread=True, timeout=120)
    except (OSError, websocket.WebSocketException) as exc:
        status = getattr(exc, "status_code", None)
        raise StreamFailed(f"cannot open the stream at {address}: "
                           f"{f'HTTP {status}' if status else type(exc).__name__}") from None
    failure: list[str] = []

    def send() -> None:
        try:
            ws.send(json.dumps({"config": {"sample_rate": TARGET_RATE}}))
            for chunk in chunks:
                ws.send_binary(chunk)
            ws.send(json.dumps({"eof": 1}))
        except (websocket.WebSocketException, OSError):
            pass    # the server ended the turn itself (hands-free) or refused the stream: the receiver says why
        except MicrophoneUnavailable as exc:
            failure.append(str(exc))
            with contextlib.suppress(websocket.WebSocketException, OSError):
                ws.close()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    reply, speech, last_partial, close_code = None, [], "", None
    try:
        while True:
            frame = ws.recv_frame()
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                close_code = int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None
                break
            if frame.opcode == websocket.ABNF.OPCODE_BINARY:
                speech.append(frame.data)
                continue
            body = json.loads(frame.data.decode())
            if "partial" in body:
                if body["partial"] and body["partial"] != last_partial:
                    print(f"\r… {body['partial']}\033[K", end="", flush=True)
                last_partial = body["partial"]
            elif "error" in body:
                print(f"\rerror: {body['error']['code']}: {body['error']['message']}\033[K")
            elif "response" in body:
                reply = body
            elif "text" in body or "alternatives" in body:
                text = body.get("text", (body.get("alternatives") or [{}])[0].get("text", ""))
                if text:
                    print(f"\r▸ {text}\033[K")
    except (websocket.WebSocketException, OSError):
        pass
    sender.join(5)
    with contextlib.suppress(websocket.WebSocketException, OSError):
        ws.close()
    if failure:
        raise MicrophoneUnavailable(failure[0])
    if close_code != 1000:
        raise StreamFailed(f"the stream was closed with {close_code}")
    print("\r\033[K", end="")
    return reply, speech


def converse_streaming(url: str, device_token: str | None, locale: str | None, turns: Iterator[Iterable[bytes] | None],
                       out: Path | None, hands_free: bool = False) -> int:
    plain = url.startswith(("ws://", "wss://"))
    session_id: str | None = None
    for number, chunks in enumerate(turns, start=1):
        if chunks is None:
            break
        params = {**({"session_id": session_id} if session_id else {}), **({"locale": locale} if locale else {}),
                  **({"hands_free": "1"} if hands_free else {})}
        try:
            body, speech = stream_turn(stream_address(url, not plain, params), device_token, chunks)
        except StreamFailed as exc:
            print(exc, file=sys.stderr)
            return HTTP_FAILED
        if body is None:
            continue     # a plain Vosk server: the results are printed already
        reply = body["response"]
        session_id = reply["session_id"]
        print(f"you:     {body['transcript'] or '(not understood)'}")
        print(f"service: {reply['speech']}")
        print(f"session: {session_id} intent={reply['intent']} expects={reply['expects']} "
              f"sentences={body['sentences']}")
        if speech and out:
            joined = np.concatenate([decode_audio(w, "audio/wav", reject_silence=False).samples for w in speech])
            path = out_path(out, number)
            path.write_bytes(encode_wav(joined, TARGET_RATE))
            print(f"saved:   {path}")
        elif speech:
            for wav in speech:
                play(wav)
        if reply["end_session"]:
            print("(the service ended the session)")
            break
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m voice.harness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the running service")
    parser.add_argument("--device-token", default=os.environ.get("MINWON_DEVICE_TOKEN"),
                        help="speak as this device (default: $MINWON_DEVICE_TOKEN; none: anonymous, public answers "
                             "only); the demo speakers' tokens are demo-device-token-ko and demo-device-token-en")
    parser.add_argument("--locale", choices=["ko-KR", "en-US"], default=None)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--say", action="append", metavar="TEXT", help="synthesise TEXT and send it (repeatable)")
    source.add_argument("--wav", action="append", type=Path, metavar="FILE", help="send a WAV file (repeatable)")
    source.add_argument("--vad", action="store_true", help="microphone: start and stop on voice, not on Enter")
    parser.add_argument("--voice", default="ko", choices=["ko", "en"], help="voice for --say")
    parser.add_argument("--out", type=Path, help="save answers here (turn 2 → NAME-2.wav …) instead of playing")
    parser.add_argument("--stream", action="store_true",
                        help="stream over the WebSocket /v1/voice/stream while speaking (files at real-time pace) and "
                             "print partial transcripts; with a ws:// URL, any vosk-server-compatible server")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.stream:
        return main_streaming(args)
    if args.say:
        turns: Iterator[bytes | None] = synthesised(args.say, args.voice)
    elif args.wav:
        turns = from_files(args.wav)
    else:
        try:
            _input_device(_sounddevice())
        except MicrophoneUnavailable as exc:
            print(exc, file=sys.stderr)
            return NO_MICROPHONE
        record = record_until_silence if args.vad else record_push_to_talk

        def microphone() -> Iterator[bytes | None]:
            while True:
                yield record()

        turns = microphone()
    try:
        return converse(args.url, args.device_token, args.locale, turns, args.out)
    except MicrophoneUnavailable as exc:
        print(exc, file=sys.stderr)
        return NO_MICROPHONE
    except requests.ConnectionError:
        print(f"cannot reach the service at {args.url}: is it running (python app.py serve)?", file=sys.stderr)
        return HTTP_FAILED


def main_streaming(args: argparse.Namespace) -> int:
    if args.say or args.wav:
        wavs = synthesised(args.say, args.voice) if args.say else from_files(args.wav)
        turns: Iterator[Iterable[bytes] | None] = (paced(pcm_chunks(wav)) for wav in wavs)
    else:
        try:
            _input_device(_sounddevice())
        except MicrophoneUnavailable as exc:
            print(exc, file=sys.stderr)
            return NO_MICROPHONE

        def microphone() -> Iterator[Iterable[bytes] | None]:
            while True:
                if input("[Enter] to speak, q [Enter] to quit: ").strip().lower() == "q":
                    return
                stop = threading.Event()
                if not args.vad:
                    # Enter again ends the utterance; with --vad the service's endpointing does (hands-free).
                    threading.Thread(target=lambda stop=stop: (input("streaming … [Enter] to stop\n"), stop.set()),
                                     daemon=True).start()
                yield microphone_chunks(stop)
                stop.set()

        turns = microphone()
    try:
        return converse_streaming(args.url, args.device_token, args.locale, turns, args.out, hands_free=args.vad)
    except MicrophoneUnavailable as exc:
        print(exc, file=sys.stderr)
        return NO_MICROPHONE


if __name__ == "__main__":
    sys.exit(main())
