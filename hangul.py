"""Hangul syllable arithmetic: precomposed syllables (U+AC00 가 … U+D7A3 힣) ↔ jamo indices and letters.

A syllable's code point is ``0xAC00 + (onset * 21 + medial) * 28 + final`` with 19 onsets, 21 medials
(vowels) and 28 finals, final 0 meaning no final consonant (batchim). Letters are the position-free
compatibility jamo (U+3131 ㄱ …), so an onset ㄴ and a final ㄴ are the same letter.

Imports nothing from the project: retrieval/, voice/ and skills/ all use it.
"""

from __future__ import annotations

SYLLABLE_FIRST = 0xAC00  # 가
SYLLABLE_LAST = 0xD7A3   # 힣

ONSET_COUNT = 19
MEDIAL_COUNT = 21
FINAL_COUNT = 28         # including 0, no final consonant

ONSET_LETTERS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
VOWEL_LETTERS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
FINAL_LETTERS = ("", *"ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ")

ONSET_IEUNG = 11   # ㅇ as an onset: silent
FINAL_RIEUL = 8    # ㄹ as a final


def is_syllable(char: str) -> bool:
    """Whether ``char`` (one character) is a precomposed Hangul syllable."""
    return SYLLABLE_FIRST <= ord(char) <= SYLLABLE_LAST


def decompose(syllable: str) -> tuple[int, int, int] | None:
    """(onset, medial, final) indices of one syllable (final 0: no batchim); None for any other character."""
    code = ord(syllable) - SYLLABLE_FIRST
    if not 0 <= code <= SYLLABLE_LAST - SYLLABLE_FIRST:
        return None
    onset, rest = divmod(code, MEDIAL_COUNT * FINAL_COUNT)
    medial, final = divmod(rest, FINAL_COUNT)
    return onset, medial, final


def compose(onset: int, medial: int, final: int = 0) -> str:
    """The syllable with these indices (0 <= onset < 19, 0 <= medial < 21, 0 <= final < 28)."""
    return chr(SYLLABLE_FIRST + (onset * MEDIAL_COUNT + medial) * FINAL_COUNT + final)


def letters(char: str, *, keep_silent_onset: bool = True) -> str:
    """A syllable spelled in compatibility jamo (값 → ㄱㅏㅄ); any other character unchanged.

    With ``keep_silent_onset=False`` the unpronounced onset ㅇ is left out (아 → ㅏ).
    """
    parts = decompose(char)
    if parts is None:
        return char
    onset, medial, final = parts
    lead = "" if onset == ONSET_IEUNG and not keep_silent_onset else ONSET_LETTERS[onset]
    return lead + VOWEL_LETTERS[medial] + FINAL_LETTERS[final]
