"""The training variants the router learns from: misheard syllables that still sound like what was said, and
out-of-domain commands whose telling word is never dropped."""

from __future__ import annotations

import pytest

from hangul import ONSET_LETTERS, VOWEL_LETTERS, decompose
from understanding.examples import IntentExample
from understanding.service import SLOTS_DIR
from understanding.slots import SlotVocabulary
from understanding.variants import _NEAR_ONSETS, _NEAR_VOWELS, VariantGenerator


@pytest.fixture(scope="module")
def vocabulary() -> SlotVocabulary:
    return SlotVocabulary.load(SLOTS_DIR)


def _near(a: str, b: str, groups: tuple[str, ...]) -> bool:
    return any(a in group and b in group for group in groups)


@pytest.mark.parametrize("text", ["취소해 줘", "공유 꺼 줘", "다시 말해 줘"])
def test_a_misheard_syllable_is_a_near_sound_of_the_one_said(vocabulary, text):
    generator = VariantGenerator(vocabulary, seed=7)
    heard = {generator._mishear(text) for _ in range(40)}
    assert len(heard) > 3  # not always the same mistake
    for variant in heard:
        changed = [(said, got) for said, got in zip(text, variant, strict=True) if said != got]
        assert len(changed) == 1, variant
        (o1, m1, f1), (o2, m2, f2) = (decompose(c) for c in changed[0])
        assert f1 == f2, variant
        onset_moved = o1 != o2 and m1 == m2 and _near(ONSET_LETTERS[o1], ONSET_LETTERS[o2], _NEAR_ONSETS)
        vowel_moved = m1 != m2 and o1 == o2 and _near(VOWEL_LETTERS[m1], VOWEL_LETTERS[m2], _NEAR_VOWELS)
        assert onset_moved or vowel_moved, variant


def test_nothing_to_mishear_leaves_the_text_as_it_is(vocabulary):
    assert VariantGenerator(vocabulary, seed=7)._mishear("ok 123") == "ok 123"


def test_an_out_of_domain_command_keeps_its_telling_word(vocabulary):
    generator = VariantGenerator(vocabulary, seed=3)
    variants = [v for _ in range(5) for v in generator.variants("link my uber account", "en-US", 6, lose_words=False)]
    assert len(set(variants)) > 3
    assert all("uber" in v for v in variants), variants


def test_korean_on_and_off_are_also_said_as_leaving_it_so(vocabulary):
    generator = VariantGenerator(vocabulary, seed=5)
    variants = generator.variants("공유 꺼 줘", "ko-KR", 40) + generator.variants("공유 켜 줘", "ko-KR", 40)
    assert any("꺼 놔" in v or "꺼 둬" in v or "꺼놔" in v for v in variants), variants
    assert any("켜 놔" in v or "켜 둬" in v or "켜놔" in v for v in variants), variants


def _by_group(rows: list[tuple[str, str, str, int]]) -> dict[int, list[str]]:
    texts: dict[int, list[str]] = {}
    for text, _, _, group in rows:
        texts.setdefault(group, []).append(text)
    return texts


def test_adding_an_example_leaves_every_other_examples_variants_as_they_were(vocabulary):
    """Each example draws from a random sequence of its own: one new example does not reshuffle the training set
    (which moved the dev-set figures by a few utterances on every data change)."""
    examples = [IntentExample("cancel", "ko-KR", "취소해 줘"), IntentExample("cancel", "ko-KR", "그만둘래"),
                IntentExample("consent_off", "ko-KR", "{recipient}에 {data_item} 공유 꺼줘"),
                IntentExample("consent_off", "en-US", "stop sharing my {data_item} with {recipient}")]
    before = _by_group(VariantGenerator(vocabulary, seed=11).for_examples(examples))
    added = [*examples[:1], IntentExample("cancel", "ko-KR", "안 할래요"), *examples[1:]]
    after = _by_group(VariantGenerator(vocabulary, seed=11).for_examples(added))
    assert len(after) == len(before) + 1
    assert all(after[group] == texts for group, texts in before.items())
    reseeded = _by_group(VariantGenerator(vocabulary, seed=12).for_examples(examples))
    assert set(reseeded) == set(before) and any(reseeded[g] != before[g] for g in before)


def test_a_first_person_promise_is_also_said_formally(vocabulary):
    variants = VariantGenerator(vocabulary, seed=5).variants("이제 끝낼게", "ko-KR", 40)
    assert any(v.replace(" ", "").endswith("끝내겠습니다") for v in variants), variants
