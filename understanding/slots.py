"""Slot values in an utterance, found tolerantly, from the slot vocabularies kept in data/slots.

Recognisers drop or add spaces and mishear syllables, so values are looked for in a spaceless, lower-cased
form: the longest alias wins, a near-miss alias (one misheard syllable) still counts. What was found is
replaced by its {type} placeholder, both in that spaceless form and in the text as spoken (spaces kept),
which is what the router reads: "국세청에 정보 넘기는 거 막아 줘" → "{recipient}에 정보 넘기는 거 막아 줘".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import yaml
from rapidfuzz import fuzz

PLACEHOLDER = re.compile(r"\{(\w+)\}")
# A run of four or more digits is a code (a link code) wherever it appears.
CODE_RUN = re.compile(r"\d{4,}")
# … and so is a run of four or more spoken digits ("팔칠육오 사삼이일", "two four six eight").
SPOKEN_CODE = re.compile(r"(?:[공영일이삼사오육칠팔구]\s*){4,}|(?:\b(?:zero|oh|one|two|three|four|five|six|seven|eight|"
                         r"nine)\b\s*){4,}")
CODE = "code"
_PUNCT = re.compile(r"[\s.,!?~·'\"“”‘’()\[\]:;…-]+")
# Near misses are looked for only in utterance-length text: the scan is quadratic in the length.
_NEAR_MISS_MAX_CHARS = 120


def squash(text: str) -> str:
    """Spaceless, punctuation-free, lower-case NFC form used for every comparison."""
    return _PUNCT.sub("", unicodedata.normalize("NFC", text).lower())


@dataclass(frozen=True)
class SlotValue:
    id: str
    names: dict[str, str]  # locale prefix ("ko", "en") → spoken name
    aliases: tuple[str, ...]

    def name(self, locale: str) -> str:
        return self.names.get(locale[:2], self.names.get("ko", self.id))


@dataclass(frozen=True)
class SlotReading:
    """One way of reading the slot values of a text."""

    squashed: str                 # spaceless text, each value replaced by {type}
    template: str                 # the text as spoken (lower-case NFC), each value replaced by {type}
    found: dict[str, list[str]]   # slot type → value ids, in the order found


class SlotVocabulary:
    def __init__(self, types: dict[str, dict[str, SlotValue]]) -> None:
        self.types = types
        # (squashed alias, slot type, value id), longest first so that 국민건강보험공단 wins over 건강보험; ties in
        # a fixed order (type, value), so the same text parses the same way in every process.
        self._aliases = sorted(
            {(squash(a), t, v.id) for t, values in types.items() for v in values.values() for a in v.aliases},
            key=lambda item: (-len(item[0]), item),  # ties in a fixed order, not the set's hash order
        )
        self._short_latin = [item for item in self._aliases if _is_short_latin(item[0])]
        self._spelled = [item for item in self._aliases if item[0] and not _is_short_latin(item[0])]
        # Aliases of more than one slot type ("건강보험": a document and a data item; "건보": a document and a
        # recipient): only a text that says one of them has more than one reading.
        types_of: dict[str, set[str]] = {}
        for alias, slot_type, _ in self._aliases:
            types_of.setdefault(alias, set()).add(slot_type)
        self._shared = sorted(alias for alias, owners in types_of.items() if len(owners) > 1 and alias)

    @classmethod
    def load(cls, slots_dir: Path) -> SlotVocabulary:
        types: dict[str, dict[str, SlotValue]] = {}
        for path in sorted(Path(slots_dir).glob("*.yaml")):
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            types[path.stem] = {
                value_id: SlotValue(
                    id=value_id,
                    names={k: v for k, v in spec.items() if k in ("ko", "en")},
                    aliases=tuple(spec.get("aliases", [])) + tuple(v for k, v in spec.items() if k in ("ko", "en")),
                )
                for value_id, spec in raw.items()
            }
        return cls(types)

    def value(self, slot_type: str, value_id: str) -> SlotValue:
        return self.types[slot_type][value_id]

    def find(self, text: str, only: str | Collection[str] | None = None) -> tuple[str, dict[str, list[str]]]:
        """The squashed text with each found value replaced by {type}, and type → value ids found.
        `only` limits the search to one slot type or several."""
        reading = self.read(text, only)
        return reading.squashed, reading.found

    def readings(self, text: str) -> list[SlotReading]:
        """Every distinct reading: all types at once first, then each type on its own, so that an alias two
        types share ("건강보험": a document and a data item) is read both ways."""
        first = self.read(text)
        result = [first]
        spoken = squash(text)
        if not any(alias in spoken for alias in self._shared):
            return result
        for slot_type in self.types:
            alone = self.read(text, only=slot_type)
            if alone.found.get(slot_type) and alone.found.get(slot_type) != first.found.get(slot_type):
                result.append(alone)
        return result

    def read(self, text: str, only: str | Collection[str] | None = None) -> SlotReading:
        types = None if only is None else ({only} if isinstance(only, str) else set(only))
        spoken = unicodedata.normalize("NFC", text).lower()
        found: dict[str, list[str]] = {}
        spans: list[tuple[int, int, str]] = []  # (start, end, type) in `spoken`
        # Short Latin aliases (NTS, HF) would match inside other words once spaces are gone ("do-nt s-hare")
        # and be "near misses" of common words (this ~ nhis): they count only as whole words, exactly.
        for alias, slot_type, value_id in self._short_latin:
            if types is not None and slot_type not in types:
                continue
            pattern = rf"(?<![a-z0-9_]){re.escape(alias)}(?![a-z0-9_])"
            hits = [m for m in re.finditer(pattern, spoken) if not _overlaps(spans, m.start(), m.end())]
            if hits:
                spans.extend((m.start(), m.end(), slot_type) for m in hits)
                _add(found, slot_type, value_id)
        # The squashed text, each character with its position in `spoken`; a placeholder's characters with -1.
        squashed, origin = _squash_with_origin(spoken, spans)
        # Exact aliases first: a near miss of one value ("주민등록표초본") must not take the words that
        # spell another value exactly ("주민등록표등본"), nor swallow the next syllable ("소득금액증명 언…").
        for near in (False, True) if len(squashed) <= _NEAR_MISS_MAX_CHARS else (False,):
            for alias, slot_type, value_id in self._spelled:
                if types is not None and slot_type not in types:
                    continue
                start = squashed.find(alias) if not near else _near_miss(squashed, alias) if len(alias) >= 4 else -1
                if start < 0:
                    continue
                end = start + len(alias)
                covered = origin[start:end]
                if -1 not in covered:
                    spans.append((covered[0], covered[-1] + 1, slot_type))
                placeholder = "{" + slot_type + "}"
                squashed = squashed[:start] + placeholder + squashed[end:]
                origin = origin[:start] + [-1] * len(placeholder) + origin[end:]
                _add(found, slot_type, value_id)
        return SlotReading(squashed=squashed, template=_replace_spans(spoken, spans), found=found)


def _add(found: dict[str, list[str]], slot_type: str, value_id: str) -> None:
    ids = found.setdefault(slot_type, [])
    if value_id not in ids:
        ids.append(value_id)


def _overlaps(spans: list[tuple[int, int, str]], start: int, end: int) -> bool:
    return any(s < end and start < e for s, e, _ in spans)


def _squash_with_origin(spoken: str, spans: list[tuple[int, int, str]]) -> tuple[str, list[int]]:
    """`squash` of `spoken` with the spans already taken written as {type}; and where each character came from."""
    chars: list[str] = []
    origin: list[int] = []
    starts = {s: (e, t) for s, e, t in spans}
    i = 0
    while i < len(spoken):
        if i in starts:
            end, slot_type = starts[i]
            placeholder = "{" + slot_type + "}"
            chars.append(placeholder)
            origin.extend([-1] * len(placeholder))
            i = end
            continue
        if not _PUNCT.fullmatch(spoken[i]):
            chars.append(spoken[i])
            origin.append(i)
        i += 1
    return "".join(chars), origin


def _replace_spans(spoken: str, spans: list[tuple[int, int, str]]) -> str:
    """`spoken` with each span written as {type}, spaces around it kept as they were."""
    parts = []
    position = 0
    for start, end, slot_type in sorted(spans):
        if start < position:
            continue
        parts.append(spoken[position:start])
        parts.append("{" + slot_type + "}")
        position = end
    parts.append(spoken[position:])
    return "".join(parts)


def _is_short_latin(alias: str) -> bool:
    return alias.isascii() and len(alias) <= 4


def _near_miss(text: str, alias: str) -> int:
    """Start of a window of `text` within one edit of `alias` (a misheard syllable), else -1."""
    width = len(alias)
    needed = 100 * (1 - 1.0 / width) - 0.01
    # partial_ratio is the best of the same windows (and a few more at the ends): below the bar there, no window
    # can reach it, and the window-by-window scan is skipped (most aliases, most of the time).
    if fuzz.partial_ratio(alias, text, score_cutoff=needed) == 0:
        return -1
    best, best_start = 0.0, -1
    for start in range(0, max(0, len(text) - width) + 1):
        window = text[start:start + width]
        if "{" in window or "}" in window:
            continue
        score = fuzz.ratio(window, alias)
        if score > best:
            best, best_start = score, start
    return best_start if best >= needed else -1
