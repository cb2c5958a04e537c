"""Text normalisation shared by the lexical and the dense ranker (queries and corpus alike).

Speech recognisers drop or add spaces, mishear single syllables and pass through the way
people really talk ("등본 떼려면 어떻게 해?"). Both rankers see the same normalised forms:

* ``dense_text``: a natural sentence with Korean spacing restored by Kiwi and colloquial
  verbs replaced by the administrative word (떼다/뽑다/끊다 → 발급받다);
* ``lexical_terms``: content morphemes (particles and endings dropped, colloquialisms mapped),
  jamo 2-4-grams over the *spaceless*, phonetically folded Hangul (so "주민 등록 등본" and
  "주민등록등본" share every n-gram, "등뽄"/"등본" differ in none, and a misheard syllable such as
  "등봉" loses only the few n-grams around one jamo), and light-stemmed English words.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from hangul import compose, decompose, letters

# Bump when a rule below changes the terms or texts an index was built from.
NORMALIZER_VERSION = "3"

# Phonetic folding of one syllable: distinctions that Korean speech recognisers commonly blur.
# Onsets: tense → plain (ㄲ→ㄱ, ㄸ→ㄷ, ㅃ→ㅂ, ㅆ→ㅅ, ㅉ→ㅈ).
_ONSET_FOLD = {1: 0, 4: 3, 8: 7, 10: 9, 13: 12}
# Vowels: ㅐ/ㅔ, ㅒ/ㅖ, ㅙ/ㅚ/ㅞ and ㅢ/ㅣ sound alike in everyday speech.
_MEDIAL_FOLD = {1: 5, 3: 7, 10: 15, 11: 15, 19: 20}
# Final consonants: the seven representative sounds (받침 대표음: ㄱ ㄴ ㄷ ㄹ ㅁ ㅂ ㅇ).
_FINAL_FOLD = {
    2: 1, 3: 1, 24: 1, 9: 1,          # ㄲ ㄳ ㅋ ㄺ → ㄱ
    5: 4, 6: 4,                         # ㄵ ㄶ → ㄴ
    19: 7, 20: 7, 22: 7, 23: 7, 25: 7, 27: 7,  # ㅅ ㅆ ㅈ ㅊ ㅌ ㅎ → ㄷ
    10: 16, 11: 8, 12: 8, 13: 8, 14: 8, 15: 8,  # ㄻ → ㅁ; ㄼ ㄽ ㄾ ㄿ ㅀ → ㄹ
    18: 17, 26: 17,                     # ㅄ ㅍ → ㅂ
}

# Colloquial verbs that mean "get a document issued" (등본 떼다, 증명서 뽑다, 초본 끊다).
_ISSUE_VERBS = frozenset({"떼", "뽑", "끊"})
_ISSUE_MORPHEMES = (("발급", "NNG"), ("받", "VV"))

# Morpheme tags that carry meaning for retrieval (nouns, numbers, foreign words, verb and
# adjective stems, roots, prefixes like 재-). Particles (J*), endings (E*), punctuation drop out.
_CONTENT_TAGS = ("NNG", "NNP", "NNB", "NR", "NP", "SL", "SN", "SH", "VV", "VA", "XR", "XPN", "MAG")
# Light verbs and auxiliaries that every question has; they only add noise.
_STOP_MORPHEMES = frozenset({
    "하", "되", "있", "없", "주", "보", "싶", "것", "수", "좀", "요", "거", "그", "이", "받",
    "어떻", "어떻게",
})

# Spoken forms of numbers that recognisers emit in Hangul.
_SPOKEN_NUMBERS = (
    (re.compile(r"일\s?일\s?공(?=번|$|\s|에|으로|로)"), "110"),
    (re.compile(r"백\s?십\s?번"), "110번"),
)

_EN_STOPWORDS = frozenset({
    "a", "an", "the", "i", "me", "my", "we", "our", "you", "your", "it", "its", "is", "are", "was",
    "were", "be", "been", "am", "do", "does", "did", "can", "could", "would", "should", "will", "shall",
    "may", "might", "must", "to", "of", "in", "on", "at", "for", "from", "by", "with", "about", "into",
    "how", "what", "when", "where", "which", "who", "whom", "why", "there", "here", "this", "that",
    "these", "those", "and", "or", "but", "if", "so", "please", "tell", "want", "need", "get", "got",
    "let", "know", "just", "like", "any", "some",
})
_EN_WORD = re.compile(r"[a-z0-9]+")
_HANGUL_RUN = re.compile(r"[\uac00-\ud7a3]+")
_HAS_HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")
_NOT_WORD = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Unicode NFKC, lower-case Latin, punctuation to spaces, one space between words."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NOT_WORD.sub(" ", text.replace("_", " "))
    for pattern, replacement in _SPOKEN_NUMBERS:
        text = pattern.sub(replacement, text)
    return _SPACES.sub(" ", text).strip()


def fold_syllable(ch: str) -> str:
    """One Hangul syllable with tense onsets, near-homophone vowels and finals folded."""
    parts = decompose(ch)
    if parts is None:
        return ch
    onset, medial, final = parts
    return compose(_ONSET_FOLD.get(onset, onset), _MEDIAL_FOLD.get(medial, medial), _FINAL_FOLD.get(final, final))


def phonetic_key(text: str) -> str:
    """Spaceless, phonetically folded Hangul of ``text`` (other characters dropped)."""
    return "".join(fold_syllable(ch) for run in _HANGUL_RUN.findall(text) for ch in run)


@lru_cache(maxsize=4096)
def stem_english(word: str) -> str:
    """A deliberately light stemmer: plural and common verb/noun suffixes, nothing clever."""
    for suffix, replacement in (("ies", "y"), ("sses", "ss"), ("xes", "x"), ("ches", "ch"), ("shes", "sh"),
                                ("ing", ""), ("ment", ""), ("als", ""), ("al", ""), ("ed", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: len(word) - len(suffix)] + replacement
    return word


def english_terms(text: str) -> list[str]:
    return [stem_english(w) for w in _EN_WORD.findall(text) if w not in _EN_STOPWORDS]


def has_hangul(text: str) -> bool:
    return bool(_HAS_HANGUL.search(text))


class TextNormalizer:
    """Holds the Kiwi analyser (slow to load, ~5 s) and turns text into both rankers' forms.

    Kiwi is not documented as safe for concurrent calls, so analysis runs under a lock; one call
    takes well under a millisecond.
    """

    def __init__(self) -> None:
        from kiwipiepy import Kiwi

        # No user dictionary: Kiwi splits compounds (인감증명서 → 인감 + 증명서) the same way
        # whether or not the spaces are there, and a misheard part (인간) then differs from
        # the corpus word in one morpheme only.
        self._kiwi = Kiwi()
        self._lock = threading.Lock()
        # Both rankers (and the n-best transcripts of one request) analyse the same text.
        self._analyse = lru_cache(maxsize=4096)(self._analyse_uncached)
        # Kiwi loads its spacing model lazily; pay that cost now, not on the first request.
        self.dense_text("등본 떼려면 어떻게 해")

    def _analyse_uncached(self, text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Re-spaced text and its morphemes, with colloquial issue-verbs mapped to 발급받다."""
        with self._lock:
            spaced = self._kiwi.space(text)
            tokens = self._kiwi.tokenize(spaced)
            morphemes: list[tuple[str, str]] = []
            changed = False
            for t in tokens:
                if t.tag.startswith("VV") and t.form in _ISSUE_VERBS:
                    morphemes.extend(_ISSUE_MORPHEMES)
                    changed = True
                else:
                    morphemes.append((t.form, t.tag))
            joined = self._kiwi.join(morphemes) if changed else spaced
        return joined, tuple(morphemes)

    def dense_text(self, text: str) -> str:
        """The sentence the dense encoder sees."""
        text = clean_text(text)
        if not has_hangul(text):
            return text
        return self._analyse(text)[0]

    def normalized_text(self, text: str) -> str:
        """Content words only, space separated: what the normalisation keeps of a question."""
        text = clean_text(text)
        if not has_hangul(text):
            return " ".join(english_terms(text))
        _, morphemes = self._analyse(text)
        return " ".join(_content_forms(morphemes))

    def lexical_terms(self, text: str) -> list[str]:
        """Bag of terms for BM25: morphemes (m:), folded jamo n-grams (j:), English stems (w:)."""
        text = clean_text(text)
        if not has_hangul(text):
            return [f"w:{w}" for w in english_terms(text)]
        joined, morphemes = self._analyse(text)
        terms = [f"m:{form}" for form in _content_forms(morphemes)]
        terms += [f"j:{g}" for g in jamo_ngrams(joined)]
        latin = " ".join(form for form, tag in morphemes if tag == "SL")
        terms += [f"w:{w}" for w in english_terms(latin)]
        return terms


def _content_forms(morphemes: Iterable[tuple[str, str]]) -> list[str]:
    forms = []
    for form, tag in morphemes:
        base = tag.split("-")[0]
        if base in _CONTENT_TAGS and form not in _STOP_MORPHEMES and base != "SL":
            forms.append(form)
    return forms


def jamo_sequence(text: str) -> str:
    """Folded Hangul as one jamo string across syllable and word boundaries, silent ㅇ onsets
    dropped: liaison spellings ("저닙" for 전입) and dropped spaces give the same sequence.

    Letters are position-free (compatibility jamo): an onset ㄴ and a final ㄴ are the same letter,
    which is what lets "저닙" and "전입" spell alike."""
    return "".join(letters(ch, keep_silent_onset=False) for ch in phonetic_key(text))


def jamo_ngrams(text: str, orders: Iterable[int] = (2, 3, 4)) -> list[str]:
    seq = jamo_sequence(text)
    grams = [seq[i:i + n] for n in orders for i in range(len(seq) - n + 1)]
    return grams or ([seq] if seq else [])
