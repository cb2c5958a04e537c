"""Numbers, counters, dates and codes phrased for the ear, in Korean and English.

Korean counts things with native numerals before a counter ("세 건", "두 개") and days with their own
words up to ten ("사흘", "열흘"); dates use Sino-Korean numbers, which a speaker reads correctly from
"11월 20일". English follows the usual spoken forms ("in 10 days", "November 20").
"""

from __future__ import annotations

import re
from datetime import date
from xml.sax.saxutils import escape

from hangul import FINAL_RIEUL, decompose

_SINO_DIGITS = "영일이삼사오육칠팔구"
_NATIVE_ONES = ["", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉"]
_NATIVE_TENS = ["", "열", "스물", "서른", "마흔", "쉰", "예순", "일흔", "여든", "아흔"]
_KO_DAYS = ["", "하루", "이틀", "사흘", "나흘", "닷새", "엿새", "이레", "여드레", "아흐레", "열흘"]
_EN_SMALL = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"]


def sino_korean(n: int) -> str:
    """일, 십오, 이백삼십, 만 이천 … (the reading of digits in dates, amounts and codes)."""
    if n == 0:
        return "영"
    parts = []
    for unit_value, unit in ((10**8, "억"), (10**4, "만")):
        if n >= unit_value:
            head, n = divmod(n, unit_value)
            parts.append(("" if head == 1 and unit == "만" else sino_korean(head)) + unit)
    small = ""
    for unit_value, unit in ((1000, "천"), (100, "백"), (10, "십")):
        digit, n = divmod(n, unit_value)
        if digit:
            small += ("" if digit == 1 else _SINO_DIGITS[digit]) + unit
    if n:
        small += _SINO_DIGITS[n]
    if small:
        parts.append(small)
    return " ".join(parts)


def native_korean_count(n: int, counter: str) -> str:
    """'세 건', '열두 개', '스무 건'; numbers from 100 on are written as digits."""
    if not 0 < n < 100:
        return f"{n}{counter}"
    tens, ones = divmod(n, 10)
    word = _NATIVE_TENS[tens] + _NATIVE_ONES[ones]
    if n == 20:
        word = "스무"
    return f"{word} {counter}"


def english_number(n: int) -> str:
    """'three', 'ten', then digits ('12'), as English speech usually has it."""
    return _EN_SMALL[n] if 0 <= n <= 10 else str(n)


def english_count(n: int, singular: str, plural: str | None = None) -> str:
    noun = singular if n == 1 else (plural or singular + "s")
    return f"{english_number(n)} {noun}"


def korean_days(n: int) -> str:
    """하루, 이틀 … 열흘, then '15일'."""
    return _KO_DAYS[n] if 0 < n <= 10 else f"{n}일"


def days_from_now(days: int, locale: str) -> str:
    """'열흘 뒤' / 'in 10 days', '사흘 전' / '3 days ago', '오늘' / 'today'."""
    ko = locale.startswith("ko")
    if days == 0:
        return "오늘" if ko else "today"
    if days == 1:
        return "내일" if ko else "tomorrow"
    if days == -1:
        return "어제" if ko else "yesterday"
    if ko:
        return f"{korean_days(abs(days))} {'뒤' if days > 0 else '전'}"
    return f"in {abs(days)} days" if days > 0 else f"{abs(days)} days ago"


def spoken_date(day: date, locale: str, today: date | None = None) -> str:
    """'11월 20일' / 'November 20'; the year is said only when it is not this year."""
    same_year = today is None or today.year == day.year
    if locale.startswith("ko"):
        text = f"{day.month}월 {day.day}일"
        return text if same_year else f"{day.year}년 {text}"
    text = f"{_EN_MONTHS[day.month - 1]} {day.day}"
    return text if same_year else f"{text}, {day.year}"


def spoken_digits(code: str, locale: str) -> str:
    """A code read digit by digit: '일 삼 오 칠' / '1 3 5 7'."""
    digits = [c for c in code if c.isdigit()]
    if locale.startswith("ko"):
        return " ".join(_SINO_DIGITS[int(c)] if c != "0" else "공" for c in digits)
    return " ".join(digits)


_DIGIT_RUN = re.compile(r"\[\[digits:(\d+)\]\]")


def mark_digits(code: str) -> str:
    """Marks a code inside speech text so that SSML reads it digit by digit and plain text spaces it out."""
    return f"[[digits:{code}]]"


def plain_speech(text: str) -> str:
    return _DIGIT_RUN.sub(lambda m: " ".join(m.group(1)), text)


def to_ssml(text: str) -> str:
    """<speak> with codes as <say-as interpret-as="digits"> and a short break between sentences."""
    parts = []
    last = 0
    for match in _DIGIT_RUN.finditer(text):
        parts.append(escape(text[last:match.start()]))
        parts.append(f'<say-as interpret-as="digits">{match.group(1)}</say-as>')
        last = match.end()
    parts.append(escape(text[last:]))
    body = "".join(parts)
    body = re.sub(r"([.?!。])\s+(?=\S)", r'\1 <break time="300ms"/> ', body)
    return f"<speak>{body}</speak>"


# -- Korean particles and lists --------------------------------------------------------------------

# Digits read in Sino-Korean: those whose reading ends in a consonant (일, 삼, 육, 칠, 팔, 십/영 …).
_DIGIT_HAS_FINAL = {"0": True, "1": True, "2": False, "3": True, "4": False, "5": False, "6": True, "7": True,
                    "8": True, "9": False}
_PARTICLES = {"은": ("은", "는"), "는": ("은", "는"), "이": ("이", "가"), "가": ("이", "가"), "을": ("을", "를"),
              "를": ("을", "를"), "과": ("과", "와"), "와": ("과", "와"), "으로": ("으로", "로"), "로": ("으로", "로"),
              "이나": ("이나", "나"), "나": ("이나", "나"), "이에요": ("이에요", "예요"), "예요": ("이에요", "예요"),
              "인가요": ("인가요", "인가요")}


def _final_consonant(word: str) -> int | None:
    """Index of the last syllable's final consonant (0 = none), or None when the word ends in no Hangul/digit."""
    for char in reversed(word.strip()):
        parts = decompose(char)
        if parts is not None:
            return parts[2]
        if char.isdigit():
            return 1 if _DIGIT_HAS_FINAL[char] else 0
        if char.isalpha():
            return None
    return None


def with_particle(word: str, particle: str) -> str:
    """'소득금액증명은', '가족관계증명서는', '소득 정보를', '서울로' — the particle that fits the last syllable."""
    with_final, without_final = _PARTICLES[particle]
    final = _final_consonant(word)
    if final is None:
        return word + particle
    if with_final == "으로":
        # ㄹ takes 로, like a vowel: 서울로, 교실로.
        return word + ("로" if final in (0, FINAL_RIEUL) else "으로")
    return word + (with_final if final else without_final)


def korean_list(words: list[str], particle: str = "과") -> str:
    """'A, B와 C' (the particle joins the last two, fitted to the word before it)."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-2] + [with_particle(words[-2], particle) + " " + words[-1]])


def english_list(words: list[str], conjunction: str = "and") -> str:
    if len(words) <= 2:
        return f" {conjunction} ".join(words)
    return ", ".join(words[:-1]) + f", {conjunction} " + words[-1]


def spoken_count(n: int, locale: str, ko_counter: str, en_singular: str, en_plural: str | None = None) -> str:
    """'세 건' / 'three certificates'."""
    if locale.startswith("ko"):
        return native_korean_count(n, ko_counter)
    return english_count(n, en_singular, en_plural)


def spoken_period(days: int, locale: str) -> str:
    """A validity period: '1년' / 'one year' for whole years, else '30일' / '30 days'."""
    years, rest = divmod(days, 365)
    if years and not rest:
        return f"{years}년" if locale.startswith("ko") else english_count(years, "year")
    return f"{days}일" if locale.startswith("ko") else english_count(days, "day")
