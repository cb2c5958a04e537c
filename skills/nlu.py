"""Utterance → intent + slots, from example utterances and slot vocabularies kept in data/.

Recognisers drop or add spaces and mishear syllables, so matching happens on a spaceless, lower-cased
form: slot values are found first (longest alias wins, a near-miss alias still counts), replaced by
their placeholder, and the rest is compared with each intent's examples by edit-distance similarity.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml
from rapidfuzz import fuzz

INTENT_THRESHOLD = 78.0
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_CODE_RUN = re.compile(r"\d{4,}")
_PUNCT = re.compile(r"[\s.,!?~·'\"“”‘’()\[\]:;…-]+")


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


@dataclass
class Parse:
    intent: str | None
    score: float
    slots: dict[str, str] = field(default_factory=dict)
    # slot type → every value the text could mean, when it named more than one (e.g. two data items).
    ambiguous: dict[str, list[str]] = field(default_factory=dict)


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

    @classmethod
    def load(cls, slots_dir: Path) -> SlotVocabulary:
        types: dict[str, dict[str, SlotValue]] = {}
        for path in sorted(slots_dir.glob("*.yaml")):
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
        """Returns the squashed text with each found value replaced by {type}, and type → value ids found.
        `only` limits the search to one slot type or several."""
        found: dict[str, list[str]] = {}
        types = None if only is None else ({only} if isinstance(only, str) else set(only))
        # Short Latin aliases (NTS, HF) would match inside other words once spaces are gone ("do-nt s-hare")
        # and be "near misses" of common words (this ~ nhis): they count only as whole words, exactly.
        text = unicodedata.normalize("NFC", text).lower()
        for alias, slot_type, value_id in self._short_latin:
            if types is not None and slot_type not in types:
                continue
            text, hits = re.subn(rf"(?<![a-z0-9_]){re.escape(alias)}(?![a-z0-9_])", "{" + slot_type + "}", text)
            if hits:
                ids = found.setdefault(slot_type, [])
                if value_id not in ids:
                    ids.append(value_id)
        squashed = squash(text)
        # Exact aliases first: a near miss of one value ("주민등록표초본") must not take the words that
        # spell another value exactly ("주민등록표등본"), nor swallow the next syllable ("소득금액증명 언…").
        # Near misses are looked for only in utterance-length text: the scan is quadratic in the length.
        for near in (False, True) if len(squashed) <= 120 else (False,):
            for alias, slot_type, value_id in self._aliases:
                if types is not None and slot_type not in types or not alias or _is_short_latin(alias):
                    continue
                start = squashed.find(alias) if not near else _near_miss(squashed, alias) if len(alias) >= 4 else -1
                if start < 0:
                    continue
                squashed = squashed[:start] + "{" + slot_type + "}" + squashed[start + len(alias):]
                ids = found.setdefault(slot_type, [])
                if value_id not in ids:
                    ids.append(value_id)
        return squashed, found


def _is_short_latin(alias: str) -> bool:
    return alias.isascii() and len(alias) <= 4


def _near_miss(text: str, alias: str) -> int:
    """Start of a window of `text` within one edit of `alias` (a misheard syllable), else -1."""
    width = len(alias)
    best, best_start = 0.0, -1
    for start in range(0, max(0, len(text) - width) + 1):
        window = text[start:start + width]
        if "{" in window or "}" in window:
            continue
        score = fuzz.ratio(window, alias)
        if score > best:
            best, best_start = score, start
    return best_start if best >= 100 * (1 - 1.0 / width) - 0.01 else -1


class IntentMatcher:
    def __init__(self, examples: dict[str, list[tuple[str, str]]], vocabulary: SlotVocabulary) -> None:
        # intent → [(locale, squashed example with {placeholders})]
        self.examples = examples
        self.vocabulary = vocabulary

    @classmethod
    def load(cls, data_dir: Path) -> IntentMatcher:
        vocabulary = SlotVocabulary.load(data_dir / "slots")
        examples: dict[str, list[tuple[str, str]]] = {}
        for path in sorted((data_dir / "intents").glob("*/*.yaml")):
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            locale = path.parent.name
            for example in raw["examples"]:
                examples.setdefault(raw["intent"], []).append((locale, _squash_template(example)))
        return cls(examples, vocabulary)

    @property
    def intents(self) -> list[str]:
        return sorted(self.examples)

    def parse(self, text: str, locale: str) -> Parse:
        template, found = self.vocabulary.find(text)
        readings = [(template, found)]
        # An alias that two slot types share ("건강보험": a document and a data item) is read both ways;
        # the reading that fits an intent's examples best wins.
        for slot_type in self.vocabulary.types:
            alt_template, alt_found = self.vocabulary.find(text, only=slot_type)
            if alt_found.get(slot_type) and alt_found.get(slot_type) != found.get(slot_type):
                readings.append((alt_template, alt_found))
        best = Parse(intent=None, score=0.0)
        best_found: dict[str, list[str]] = {}
        for template, reading in readings:
            template = _CODE_RUN.sub("{code}", template)
            if not template.strip("{}"):
                continue
            compact = _compact(template)
            for intent, examples in self.examples.items():
                for example_locale, example in examples:
                    # A placeholder weighs one character: "{document}" is one word, and its ten letters would
                    # otherwise make "등본 떼려면 어떻게 해" (an FAQ question) look like "등본 어떻게 됐어".
                    score = fuzz.ratio(compact, _compact(example))
                    # A same-language example is a slightly better witness than a cross-language one.
                    if example_locale != locale:
                        score -= 2
                    if score > best.score:
                        best = Parse(intent=intent, score=score)
                        best_found = reading
        found = best_found
        if best.score < INTENT_THRESHOLD:
            return Parse(intent=None, score=best.score)
        best.slots = {t: ids[0] for t, ids in found.items() if len(ids) == 1}
        best.ambiguous = {t: ids for t, ids in found.items() if len(ids) > 1}
        return best


_PLACEHOLDER_MARKS: dict[str, str] = {}


@lru_cache(maxsize=4096)
def _compact(template: str) -> str:
    """The template with each {placeholder} as one private-use character (the same one per slot type)."""
    return _PLACEHOLDER.sub(
        lambda m: _PLACEHOLDER_MARKS.setdefault(m.group(1), chr(0xE000 + len(_PLACEHOLDER_MARKS))), template)


def _squash_template(example: str) -> str:
    # Keep {placeholders} intact while squashing the words around them.
    parts = _PLACEHOLDER.split(example)
    return "".join("{" + part + "}" if i % 2 else squash(part) for i, part in enumerate(parts))


_YES = {"네", "예", "응", "어", "그래", "그래요", "좋아", "좋아요", "맞아", "맞아요", "맞습니다", "보내줘", "해줘", "해주세요",
        "yes", "yeah", "yep", "sure", "ok", "okay", "correct", "please", "doit", "goahead", "네네", "넵", "예스", "오케이"}
_NO = {"아니", "아니요", "아뇨", "아니오", "싫어", "싫어요", "안돼", "하지마", "no", "nope", "dont", "don't", "notnow",
       "아니야", "아니에요", "노"}
_YES_HEAD = ("네", "예", "응", "그래", "좋아", "맞아", "yes", "yeah", "sure", "ok")
_NO_HEAD = ("아니", "아뇨", "싫어", "no", "nope", "don")


def parse_yes_no(text: str) -> bool | None:
    """True for yes, False for no, None when the answer is neither (then the question is asked again)."""
    word = squash(text)
    if not word:
        return None
    if word in _NO or word.startswith(_NO_HEAD):
        return False
    if word in _YES or word.startswith(_YES_HEAD):
        return True
    return None


def is_bare_answer(text: str) -> bool:
    """The whole utterance is only a yes or a no ("응", "아니요", "yes"), with nothing else said."""
    return squash(text) in _YES | _NO


YES_NO_PHRASES = {"ko": ["네", "예", "응", "그래", "아니요", "아니"], "en": ["yes", "no", "yeah", "nope"]}

_DIGIT_WORDS = {
    "하나": "1", "둘": "2", "셋": "3", "넷": "4", "다섯": "5", "여섯": "6", "일곱": "7", "여덟": "8", "아홉": "9",
    "공": "0", "영": "0", "일": "1", "이": "2", "삼": "3", "사": "4", "오": "5", "육": "6", "륙": "6", "칠": "7",
    "팔": "8", "구": "9", "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}
_DIGIT_KEYS = sorted(_DIGIT_WORDS, key=len, reverse=True)
# Words around a spoken number that are not digits ("비밀번호는 …이에요", "my pin is …").
_NUMBER_FILLER = re.compile(
    r"^(제|내|나의|저의)?(비밀번호|비번|핀번호|핀|번호|연결코드|코드|mypinis|pinis|myPIN|pin|itis|its|thecodeis|code)?(는|은|is)?"
    r"|(입니다|이에요|예요|이요|요|이야|야|번|입니다요|please|thanks|thankyou)$",
    re.IGNORECASE,
)


def parse_digits(text: str) -> str | None:
    """Digits from '1357', '일 삼 오 칠', '하나 셋 다섯 일곱' or 'one three five seven'; None when other words remain."""
    squashed = _NUMBER_FILLER.sub("", squash(text))
    squashed = _NUMBER_FILLER.sub("", squashed)
    digits = []
    i = 0
    while i < len(squashed):
        if squashed[i].isdigit():
            digits.append(squashed[i])
            i += 1
            continue
        for key in _DIGIT_KEYS:
            if squashed.startswith(key, i):
                digits.append(_DIGIT_WORDS[key])
                i += len(key)
                break
        else:
            return None
    return "".join(digits) or None


DIGIT_PHRASES = {
    "ko": ["공", "영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구", "하나", "둘", "셋", "넷", "다섯", "여섯",
           "일곱", "여덟", "아홉"],
    "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
}
