"""Short answers to the service's own questions: yes or no, a run of digits (a PIN, a link code), and
which of two offered choices ("첫 번째", "the second one")."""

from __future__ import annotations

import re

from understanding.slots import squash

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


# A yes or a no that asks for nothing ("하지 마" and "보내 줘" are answers too, but they are also requests).
_BARE = {"네", "예", "응", "어", "그래", "그래요", "좋아", "좋아요", "맞아", "맞아요", "맞습니다", "네네", "넵", "예스", "오케이",
         "yes", "yeah", "yep", "sure", "ok", "okay", "correct", "아니", "아니요", "아뇨", "아니오", "아니야", "아니에요",
         "노", "no", "nope"}


# Sounds people make while thinking. Said alone they ask for nothing: the router leaves them to the open question
# (asked again) or the FAQ's "not sure", rather than let a classifier guess a command from a syllable. ("어" is
# not here: alone it is a yes.)
_FILLERS = {"음", "흠", "음음", "으음", "어어", "에", "um", "umm", "uh", "uhh", "uhm", "hmm", "hm", "er", "erm", "mm"}


def is_filler(text: str) -> bool:
    """The utterance is only thinking sounds ("음…", "um uh"), nothing a request or an answer is made of."""
    words = re.findall(r"[\w']+", text.lower())
    return bool(words) and all(word in _FILLERS for word in words)


def is_bare_answer(text: str) -> bool:
    """The whole utterance is only a yes or a no ("응", "아니요", "yes"), with nothing else said."""
    return squash(text) in _BARE


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


# Which of the offered choices: ordinal words and their everyday stand-ins ("앞에 거", "the latter").
_FIRST = ("첫번째", "첫째", "첫번", "처음", "첫거", "앞에", "앞의", "앞엣", "앞쪽", "전자", "일번", "1번", "하나",
          "first", "former", "thefirst", "one", "number1", "numberone", "option1", "optionone")
_SECOND = ("두번째", "둘째", "두번", "두째", "뒤에", "뒤의", "뒤엣", "뒤쪽", "후자", "나중", "마지막", "2번", "둘",
           "second", "latter", "thesecond", "two", "last", "number2", "numbertwo", "option2", "optiontwo")
_CHOICE_FILLER = re.compile(r"^(음|어|그|저|그럼|the)+|(거|것|걸|거요|걸로|거로|요|으로|로|이요|요|one|please|요청)+$")


def parse_choice(text: str) -> int | None:
    """0 for the first of two offered choices, 1 for the second, None when the answer names neither."""
    word = squash(text)
    if not word:
        return None
    stripped = _CHOICE_FILLER.sub("", word) or word
    for candidate in (word, stripped):
        first = candidate.startswith(_FIRST)
        second = candidate.startswith(_SECOND)
        if first != second:
            return 0 if first else 1
    return None
