"""Hangul syllable arithmetic (hangul.py) and the callers that use it.

Expected values are worked out by hand from code point = 0xAC00 + (onset * 21 + medial) * 28 + final.
"""

from __future__ import annotations

import pytest

from hangul import compose, decompose, is_syllable, letters
from retrieval.calibration import recogniser_variants
from retrieval.normalize import fold_syllable, jamo_sequence
from skills.spoken import with_particle
from voice.asr import to_jamo


@pytest.mark.parametrize(("syllable", "parts"), [
    ("가", (0, 0, 0)),      # U+AC00, first syllable
    ("각", (0, 0, 1)),      # U+AC01, final ㄱ
    ("값", (0, 0, 18)),     # U+AC12, final ㅄ
    ("글", (0, 18, 8)),     # U+AE00 = 0xAC00 + 512
    ("서", (9, 4, 0)),      # U+C11C = 0xAC00 + 5404
    ("예", (11, 7, 0)),     # U+C608 = 0xAC00 + 6664
    ("울", (11, 13, 8)),    # U+C6B8 = 0xAC00 + 6840
    ("본", (7, 8, 4)),      # U+BCF8 = 0xAC00 + 4344
    ("한", (18, 0, 4)),     # U+D55C = 0xAC00 + 10588
    ("힣", (18, 20, 27)),   # U+D7A3, last syllable: 11171 = 18 * 588 + 20 * 28 + 27
])
def test_decompose_and_compose(syllable, parts):
    assert is_syllable(syllable)
    assert decompose(syllable) == parts
    assert compose(*parts) == syllable


@pytest.mark.parametrize("char", ["a", "1", " ", "ㄱ", "ㅏ", "\u1100", "\u11a8", "\uabff", "\ud7a4", "。", "😀"])
def test_non_syllables_pass_through(char):
    assert not is_syllable(char)
    assert decompose(char) is None
    assert letters(char) == char
    assert letters(char, keep_silent_onset=False) == char


def test_compose_without_final():
    assert compose(2, 0) == "나"     # U+B098
    assert compose(18, 0) == "하"    # U+D558


@pytest.mark.parametrize(("syllable", "spelled", "spoken"), [
    ("가", "ㄱㅏ", "ㄱㅏ"),
    ("값", "ㄱㅏㅄ", "ㄱㅏㅄ"),
    ("예", "ㅇㅖ", "ㅖ"),
    ("울", "ㅇㅜㄹ", "ㅜㄹ"),
    ("힣", "ㅎㅣㅎ", "ㅎㅣㅎ"),
])
def test_letters_are_compatibility_jamo(syllable, spelled, spoken):
    assert letters(syllable) == spelled
    assert letters(syllable, keep_silent_onset=False) == spoken
    assert all(0x3131 <= ord(ch) <= 0x318E for ch in spelled)


# -- former copies: same results as before ----------------------------------------------------------

@pytest.mark.parametrize(("text", "jamo"), [
    ("예", "ㅇㅖ"),
    ("서울 값", "ㅅㅓㅇㅜㄹㄱㅏㅄ"),
    ("ok 가힣", "okㄱㅏㅎㅣㅎ"),
    ("ㄱ ㅏ", "ㄱㅏ"),
    ("", ""),
])
def test_asr_to_jamo(text, jamo):
    assert to_jamo(text) == jamo


@pytest.mark.parametrize(("ch", "folded"), [
    ("빢", "박"),    # (8, 0, 2) → (7, 0, 1): ㅃ → ㅂ, ㄲ → ㄱ
    ("값", "갑"),    # final ㅄ (18) → ㅂ (17): U+AC11
    ("본", "본"),
    ("a", "a"),
    ("ㄲ", "ㄲ"),
])
def test_normalize_fold_syllable(ch, folded):
    assert fold_syllable(ch) == folded


@pytest.mark.parametrize(("text", "sequence"), [
    ("서울", "ㅅㅓㅜㄹ"),        # silent ㅇ onset dropped
    ("값 예", "ㄱㅏㅂㅖ"),       # ㅄ folded to ㅂ, space and silent ㅇ dropped
    ("ok 가", "ㄱㅏ"),           # non-Hangul dropped
    ("ㄱㄴ", ""),                # jamo-only input has no syllables
])
def test_normalize_jamo_sequence(text, sequence):
    assert jamo_sequence(text) == sequence


@pytest.mark.parametrize(("word", "particle", "text"), [
    ("가", "은", "가는"),
    ("각", "은", "각은"),
    ("서울", "으로", "서울로"),     # final ㄹ takes 로
    ("본", "으로", "본으로"),
    ("서", "으로", "서로"),
    ("힣", "이", "힣이"),
    ("ABC", "이", "ABC이"),         # no Hangul: particle as given
])
def test_spoken_with_particle(word, particle, text):
    assert with_particle(word, particle) == text


class _ScriptedRng:
    """Stands in for numpy's Generator: picks the last syllable and returns scripted integers."""

    def __init__(self, *integers: int) -> None:
        self._integers = list(integers)

    def choice(self, options):
        return options[-1]

    def integers(self, high: int) -> int:
        value = self._integers.pop(0)
        assert 0 <= value < high
        return value


@pytest.mark.parametrize(("slot", "value", "misheard"), [
    (0, 18, "하"),   # onset ㄴ → ㅎ
    (1, 20, "니"),   # medial ㅏ → ㅣ: (2, 20, 0) = U+B2C8
    (2, 4, "난"),    # final none → ㄴ
])
def test_calibration_recogniser_variants(slot, value, misheard):
    assert recogniser_variants("가 나", _ScriptedRng(slot, value)) == ["가나", "가 " + misheard]
