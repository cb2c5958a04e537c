"""Training utterances generated from the intent examples: templates × slot values (names and aliases) ×
politeness levels × particles × spacing loss and misheard syllables, the way citizens and recognisers vary
what the examples say.

"{recipient}에 {data_item} 공유 꺼줘" becomes "건보한테 소득 정보 공유 꺼 주세요", "국세청에소득공유꺼줄래", … and
"stop sharing my {data_item} with {recipient}" becomes "please stop sharing my income data with the nts".
Deterministic for a given seed: the same examples always give the same training set. Each example's variants
come from a random sequence of its own, keyed to the seed and the example (`stable_key`), so that adding, editing
or removing one example changes that example's variants only, not every other one's.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable

import numpy as np

from hangul import ONSET_LETTERS, VOWEL_LETTERS, compose, decompose, is_syllable
from retrieval.calibration import recogniser_variants
from retrieval.normalize import has_hangul
from understanding.examples import IntentExample
from understanding.slots import PLACEHOLDER, SlotVocabulary

# Utterances generated per intent and locale, spread over its examples (each example at least MIN, at most MAX).
# Which variants are drawn moves the tuning figures by a few utterances from one seed to the next; 540 (was 360)
# made the tuning accuracy the same over three seeds (0.983 each; at 360 it was 0.975-0.979) for about a third
# more training rows.
PER_INTENT = 540
MIN_PER_EXAMPLE = 4
MAX_PER_EXAMPLE = 60

# Sentence endings and the other politeness levels a citizen may use instead (longest ending first).
_KO_ENDINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # "" : a command said as a bare noun phrase, as people talk to speakers ("공유 동의 철회", "증명서 상태").
    ("해줘", ("해줘", "해 줘", "해 주세요", "해주세요", "해 줄래", "해줄래요", "해 주실래요", "해 주시겠어요", "해 줘요", "해 주십시오",
             "")),
    ("알려줘", ("알려줘", "알려 줘", "알려 주세요", "알려줄래", "알려 줄래요", "알려 주실래요", "알려 주시겠어요", "알려줘요", "")),
    # Turning something on or off is also said as leaving it so ("꺼 놔", "켜 둬").
    # 꺼 is also heard without its tension ("거 줘"); 켜 keeps its aspiration better and is left as said.
    ("꺼 줘", ("꺼 줘", "꺼줘", "꺼 놔", "꺼 둬", "꺼 놔 줘", "꺼 둬요", "꺼 놓을래", "꺼 주세요", "꺼 놔 주세요", "거 줘",
              "거 놔")),
    ("꺼줘", ("꺼줘", "꺼 줘", "꺼 놔", "꺼 둬", "꺼놔줘", "꺼 둬요", "꺼 놓을래", "꺼 주세요", "꺼 놔 주세요", "거줘",
             "거 놔 줘")),
    ("켜 줘", ("켜 줘", "켜줘", "켜 놔", "켜 둬", "켜 놔 줘", "켜 둬요", "켜 놓을래", "켜 주세요", "켜 놔 주세요")),
    ("켜줘", ("켜줘", "켜 줘", "켜 놔", "켜 둬", "켜놔줘", "켜 둬요", "켜 놓을래", "켜 주세요", "켜 놔 주세요")),
    ("줘", ("줘", " 줘", " 주세요", "주세요", "줄래", " 줄래요", " 주실래요", " 주시겠어요", "줘요")),
    ("됐어", ("됐어", "됐어요", "됐나요", "됐니", "되었나요", "됐습니까", "됐을까", "됐는지 알려 줘")),
    ("있어", ("있어", "있어요", "있나요", "있니", "있습니까", "있을까", "있는지 알려 줘")),
    ("나왔어", ("나왔어", "나왔어요", "나왔나요", "나왔니", "나왔습니까")),
    ("유효해", ("유효해", "유효해요", "유효한가요", "유효하니", "유효합니까", "유효한지 알려 줘")),
    ("할게", ("할게", "할게요", "하겠습니다", "할래", "할래요")),
    ("마", ("마", "마세요", "말아 줘", "말아 주세요", "지 마요")),
    ("돼", ("돼", "돼요", "되나요", "됩니까")),
    ("해", ("해", "해요", "합니다", "하세요")),
)
# A promise or a wish in the first person (-ㄹ게, -ㄹ래: "마칠게", "끝낼래") said formally ("마치겠습니다"), with the
# weight of each ending among the draws: -겠습니다 is the usual formal one, -겠어요 the softer one.
_KO_FORMAL_FIRST_PERSON: tuple[tuple[str, float], ...] = (("겠습니다", 2.0), ("겠어요", 1.0))
_KO_FORMAL_ENDINGS = tuple(ending for ending, _ in _KO_FORMAL_FIRST_PERSON)
_KO_FORMAL_SHARES = np.asarray([weight for _, weight in _KO_FORMAL_FIRST_PERSON]) / sum(
    weight for _, weight in _KO_FORMAL_FIRST_PERSON)
_FINAL_RIEUL = 8  # ㄹ as a final consonant (hangul.decompose)
# Endings that take 요 to become polite ("그만해" → "그만해요"), when no rule above applied.
_TAKES_YO = tuple("어아해여줘와워돼게지네래") + ("거든",)
_KO_OPENERS = ("", "", "", "", "저기 ", "음 ", "혹시 ", "그럼 ")
_EN_OPENERS = ("", "", "", "hey ", "um ", "okay ", "so ")
# Openers and closers for a request ("can you send …"): only where the example starts with a verb.
_EN_REQUEST_OPENERS = ("", "", "please ", "can you ", "could you ", "i want to ", "i'd like to ")
_EN_REQUEST_CLOSERS = ("", "", "", " please", " now", " for me")
_EN_VERBS = frozenset({"send", "stop", "share", "turn", "tell", "read", "check", "list", "put", "add", "allow", "let",
                       "withdraw", "revoke", "start", "link", "connect", "cancel", "repeat", "say", "help", "show",
                       "give", "block", "keep", "find", "get", "move", "save", "store", "unlink", "pair"})
# Recogniser-like corruption needs something to corrupt: short commands stay as written.
_MIN_SYLLABLES_TO_CORRUPT = 4
# Sounds a recogniser hears one for another: onsets of one place of articulation (plain, tense, aspirated:
# 꺼 → 거, 켜 → 커) and vowels that sound alike (취 → 최, 켜 → 커, 돼 → 되). Unlike the uniform corruption of
# retrieval's recogniser_variants, these keep a short command sounding like itself ("최소해 줘", "그마내").
_NEAR_ONSETS = ("ㄱㄲㅋ", "ㄷㄸㅌ", "ㅂㅃㅍ", "ㅈㅉㅊ", "ㅅㅆ")
_NEAR_VOWELS = ("ㅐㅔ", "ㅓㅕ", "ㅗㅓ", "ㅟㅚㅞ", "ㅙㅚㅞ", "ㅢㅣ", "ㅜㅡ", "ㅛㅗ", "ㅠㅜ")
_EN_CONTRACTIONS = (("what is", "what's"), ("do not", "don't"), ("i am", "i'm"), ("that is", "that's"),
                    ("it is", "it's"), ("i would", "i'd"))
# Particles a slot value takes, by type, when the example wrote one or none ("{recipient}에" → 한테, 에게, …).
_KO_PARTICLES = {
    "recipient": (("에", "에게", "한테", "에다", "으로", ""), ("에", "에게", "한테", "에다", "로", "")),
    "document": (("을", "은", "이", ""), ("를", "는", "가", "")),
    "data_item": (("을", "은", "이", ""), ("를", "는", "가", "")),
}
_SPOKEN_DIGITS_KO = "공일이삼사오육칠팔구"
_SPOKEN_DIGITS_EN = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def stable_key(*parts: object) -> int:
    """A 63-bit number that depends on `parts` only (not on what else is being generated or in which order)."""
    digest = hashlib.sha256("\0".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _formal_first_person(text: str) -> str | None:
    """The stem of a sentence ending in -ㄹ게 or -ㄹ래 ("이만 마칠게" → "이만 마치"), for -겠습니다; None otherwise."""
    if len(text) < 2 or text[-1] not in "게래":
        return None
    parts = decompose(text[-2])
    if parts is None or parts[2] != _FINAL_RIEUL:
        return None
    if text[-2] == "을":  # "먹을게" → "먹"
        return text[:-2]
    return text[:-2] + compose(parts[0], parts[1], 0)


def has_final_consonant(word: str) -> bool:
    """Whether the last Hangul syllable of `word` ends in a consonant (을 vs 를); Latin words as spoken in Korean
    are taken to end in a vowel."""
    for ch in reversed(word):
        if is_syllable(ch):
            parts = decompose(ch)
            return bool(parts and parts[2])
        if ch.isalnum():
            return False
    return False


class VariantGenerator:
    def __init__(self, vocabulary: SlotVocabulary, seed: int) -> None:
        self.vocabulary = vocabulary
        self.seed = seed
        # Reset per example (`_draw_for`); the pieces below all draw from it.
        self.rng = np.random.default_rng(seed)
        # slot type → [(value id, surface form)] per language ("ko": Hangul forms, "en": Latin ones)
        self.surfaces: dict[str, dict[str, list[str]]] = {}
        for slot_type, values in vocabulary.types.items():
            by_language: dict[str, list[str]] = {"ko": [], "en": []}
            for value in values.values():
                for alias in dict.fromkeys(value.aliases):
                    by_language["ko" if has_hangul(alias) else "en"].append(alias)
            self.surfaces[slot_type] = by_language

    def for_examples(self, examples: Iterable[IntentExample]) -> list[tuple[str, str, str, int]]:
        """(text, intent, locale, group) for every example; `group` identifies the example it came from (for
        calibration folds that keep an example's variants together), the same number whatever other examples
        there are."""
        grouped: dict[tuple[str, str], list[IntentExample]] = {}
        for example in examples:
            grouped.setdefault((example.intent, example.locale), []).append(example)
        rows: list[tuple[str, str, str, int]] = []
        for (intent, locale), members in sorted(grouped.items()):
            # One more example of an intent lowers its siblings' count by a little; each example's variants are
            # drawn in a fixed order, so the ones it keeps are the same as before (a prefix).
            per_example = min(MAX_PER_EXAMPLE, max(MIN_PER_EXAMPLE, math.ceil(PER_INTENT / len(members))))
            for example in members:
                group = stable_key("example", intent, locale, example.template)
                for text in self.variants(example.template, locale, per_example, key=intent):
                    rows.append((text, intent, locale, group))
        return rows

    def decoys(self, template: str, locale: str, objects: list[str], count: int) -> list[str]:
        """The example's sentence frame said about something else: each slot ({document}, {recipient},
        {data_item}) filled with one of `objects` ("택배 상태 알려줘"); none for an example without such a slot."""
        slots = PLACEHOLDER.findall(template)
        if not objects or not slots or any(s not in _KO_PARTICLES for s in slots):
            return []
        return self.variants(template, locale, count, objects=objects, key="decoy")[:count]

    def variants(self, template: str, locale: str, count: int, objects: list[str] | None = None,
                 lose_words: bool = True, key: str = "") -> list[str]:
        """The example itself (slots filled) and up to `count - 1` distinct variants of it. With `objects`,
        the slots are filled with those instead of slot values. `lose_words` False: no English word is dropped
        (a command whose one telling word is "uber" must not become "link my account"). The draws depend on the
        seed, `key` (e.g. the intent), the locale and the template only: the same call gives the same variants,
        and a smaller `count` a prefix of them."""
        self._draw_for("variants", key, locale, template, objects is not None, lose_words)
        korean = locale.startswith("ko")
        seen: dict[str, None] = {}
        attempts = 0
        while len(seen) < count and attempts < count * 6:
            plain = attempts == 0 and objects is None
            attempts += 1
            text = self._fill(template, korean, plain, objects)
            if not plain:
                text = self._restyle_ko(text) if korean else self._restyle_en(text, lose_words)
            text = re.sub(r"\s+", " ", text).strip()
            if text:
                seen.setdefault(text, None)
        return list(seen)

    def noisy(self, text: str, count: int) -> list[str]:
        """The text and recogniser-like variants of it (spaces lost, a misheard syllable, a word lost), drawn
        for this text alone."""
        self._draw_for("noisy", text)
        out = dict.fromkeys([text])
        for variant in recogniser_variants(text, self.rng):
            if len(out) > count:
                break
            out.setdefault(variant, None)
        if has_hangul(text) and self.rng.random() < 0.5:
            out.setdefault(self._lose_spaces(text), None)
        return list(out)[: count + 1]

    # -- pieces ------------------------------------------------------------------------------------------

    def _draw_for(self, *parts: object) -> None:
        """Starts the random sequence of one item (see the module's docstring)."""
        self.rng = np.random.default_rng(stable_key(self.seed, *parts))

    def _fill(self, template: str, korean: bool, plain: bool, objects: list[str] | None = None) -> str:
        parts = PLACEHOLDER.split(template)
        out: list[str] = []
        for i, part in enumerate(parts):
            if i % 2 == 0:
                out.append(part)
                continue
            slot_type = part
            if objects:
                value = objects[int(self.rng.integers(len(objects)))]
                if not korean and re.search(r"\b(my|the|a|an|your)\s*$", out[-1]):
                    value = re.sub(r"^(my|the|a|an|some)\s+", "", value)  # "is my {document}" + "my package"
            else:
                value = self._value(slot_type, korean, plain)
            following = parts[i + 1] if i + 1 < len(parts) else ""
            if korean and slot_type in _KO_PARTICLES and not plain:
                value, rest = self._particle(slot_type, value, following)
                parts[i + 1] = rest
            out.append(value)
        return "".join(out)

    def _value(self, slot_type: str, korean: bool, plain: bool) -> str:
        if slot_type == "code":
            digits = "".join(str(d) for d in self.rng.integers(0, 10, size=8))
            if plain or self.rng.random() < 0.5:
                return digits
            words = _SPOKEN_DIGITS_KO if korean else _SPOKEN_DIGITS_EN
            # Spoken one by one, or in groups as people read a code ("팔칠육오 사삼이일").
            joiner = " " if not korean or self.rng.random() < 0.5 else ""
            spoken = [words[int(d)] for d in digits]
            return " ".join(joiner.join(spoken[i:i + 4]) for i in range(0, len(spoken), 4))
        forms = self.surfaces.get(slot_type, {}).get("ko" if korean else "en") or ["{" + slot_type + "}"]
        return forms[0] if plain else forms[int(self.rng.integers(len(forms)))]

    def _particle(self, slot_type: str, value: str, following: str) -> tuple[str, str]:
        """The value with a particle, and what follows it with the example's own particle taken off."""
        with_final, without_final = _KO_PARTICLES[slot_type]
        choices = with_final if has_final_consonant(value) else without_final
        known = sorted({p for p in with_final + without_final if p}, key=len, reverse=True)
        # A particle is what stands between the value and a space ("{document}을 …"), not the start of a word.
        written = next((p for p in known if following.startswith(p) and following[len(p):][:1] in ("", " ")), "")
        if not written and slot_type == "recipient":
            return value, following  # "{recipient} {data_item}": no particle in the example, none added
        particle = choices[int(self.rng.integers(len(choices)))]
        return value + particle, following[len(written):]

    def _restyle_ko(self, text: str) -> str:
        rng = self.rng
        bare = text.rstrip("?!. ")
        for ending, alternatives in _KO_ENDINGS:
            if bare.endswith(ending):
                bare = bare[: -len(ending)] + alternatives[int(rng.integers(len(alternatives)))]
                break
        else:
            formal = _formal_first_person(bare)
            if formal and rng.random() < 0.5:
                bare = formal + _KO_FORMAL_ENDINGS[int(rng.choice(len(_KO_FORMAL_ENDINGS), p=_KO_FORMAL_SHARES))]
            elif bare.endswith(_TAKES_YO) and rng.random() < 0.5:
                bare += "요"
        if rng.random() < 0.25:
            bare = bare.replace("내 ", "제 ", 1) if "내 " in bare and rng.random() < 0.5 else bare
        opener = _KO_OPENERS[int(rng.integers(len(_KO_OPENERS)))]
        text = opener + bare + ("?" if rng.random() < 0.2 else "")
        roll = rng.random()
        if roll < 0.25:
            return self._lose_spaces(text)
        if roll < 0.45:
            return self._lose_some_spaces(text)
        if roll < 0.55 and sum(map(is_syllable, text)) >= _MIN_SYLLABLES_TO_CORRUPT:
            variants = recogniser_variants(text, rng)
            return variants[-1] if variants else text
        if roll < 0.65:
            return self._mishear(text)
        return text

    def _mishear(self, text: str) -> str:
        """One syllable heard as a near sound (see _NEAR_ONSETS, _NEAR_VOWELS); the text itself when none has one."""
        choices = []
        for i, ch in enumerate(text):
            parts = decompose(ch) if is_syllable(ch) else None
            if parts is None:
                continue
            onset, medial, final = parts
            for group in _NEAR_ONSETS:
                if ONSET_LETTERS[onset] in group:
                    choices += [(i, ONSET_LETTERS.index(o), medial, final) for o in group if o != ONSET_LETTERS[onset]]
            for group in _NEAR_VOWELS:
                if VOWEL_LETTERS[medial] in group:
                    choices += [(i, onset, VOWEL_LETTERS.index(v), final) for v in group if v != VOWEL_LETTERS[medial]]
        if not choices:
            return text
        i, onset, medial, final = choices[int(self.rng.integers(len(choices)))]
        return text[:i] + compose(onset, medial, final) + text[i + 1:]

    def _restyle_en(self, text: str, lose_words: bool = True) -> str:
        rng = self.rng
        text = text.lower()
        for long, short in _EN_CONTRACTIONS:
            if rng.random() < 0.5:
                text = text.replace(short, long) if short in text else text.replace(long, short)
        words = text.split()
        if words and words[0] in _EN_VERBS:
            opener = _EN_REQUEST_OPENERS[int(rng.integers(len(_EN_REQUEST_OPENERS)))]
            closer = _EN_REQUEST_CLOSERS[int(rng.integers(len(_EN_REQUEST_CLOSERS)))]
        else:
            opener, closer = _EN_OPENERS[int(rng.integers(len(_EN_OPENERS)))], ""
        text = opener + text + closer
        if len(words) >= 3 and rng.random() < 0.15 and lose_words:
            variants = recogniser_variants(text, rng)
            text = variants[0] if variants else text
        return text

    @staticmethod
    def _lose_spaces(text: str) -> str:
        return text.replace(" ", "")

    def _lose_some_spaces(self, text: str) -> str:
        words = text.split(" ")
        if len(words) < 3:
            return text.replace(" ", "")
        out = words[0]
        for word in words[1:]:
            out += ("" if self.rng.random() < 0.5 else " ") + word
        return out
