"""Korean and English normalisation shared by both rankers."""

from __future__ import annotations

from collections import Counter

import pytest

from retrieval.normalize import clean_text, fold_syllable, jamo_sequence, phonetic_key, stem_english


def jamo_terms(normalizer, text: str) -> Counter:
    return Counter(t for t in normalizer.lexical_terms(text) if t.startswith("j:"))


@pytest.mark.parametrize("spaced, spaceless", [
    ("주민등록 등본 발급", "주민등록등본발급"),
    ("전입 신고 어떻게 해요", "전입신고어떻게해요"),
    ("운전 면허 갱신", "운전면허갱신"),
])
def test_lexical_ngrams_ignore_spacing(normalizer, spaced, spaceless):
    assert jamo_terms(normalizer, spaced) == jamo_terms(normalizer, spaceless)
    assert jamo_terms(normalizer, "주민 등록 등 본") == jamo_terms(normalizer, "주민등록등본")


def test_dense_text_restores_dropped_spaces(normalizer):
    assert normalizer.dense_text("여권재발급온라인으로할수있나요") == "여권 재발급 온라인으로 할 수 있나요"


@pytest.mark.parametrize("with_particle, bare", [
    ("등본을", "등본"), ("여권은", "여권"), ("주민센터에서", "주민센터"), ("정부24로", "정부24"),
    ("인감증명서가", "인감증명서"), ("전입신고는", "전입신고"),
])
def test_particles_are_dropped_from_content_words(normalizer, with_particle, bare):
    assert normalizer.normalized_text(with_particle) == normalizer.normalized_text(bare)


@pytest.mark.parametrize("colloquial", [
    "등본 떼려면 어떻게 해?", "등본 뽑는 법", "등본 끊으려면", "등본 뗄 수 있어?",
])
def test_colloquial_issue_verbs_become_balgeup(normalizer, colloquial):
    assert "발급" in normalizer.normalized_text(colloquial).split()
    assert "발급" in normalizer.dense_text(colloquial)
    assert "m:발급" in normalizer.lexical_terms(colloquial)


def test_colloquial_and_formal_questions_share_their_content_words(normalizer):
    colloquial = set(normalizer.normalized_text("등본 떼려면 어떻게 해?").split())
    formal = set(normalizer.normalized_text("등본은 어떻게 발급받나요?").split())
    assert {"등본", "발급"} <= colloquial & formal


def test_phonetic_folding_merges_common_misrecognitions():
    assert phonetic_key("등뽄") == phonetic_key("등본")        # tense onset
    assert phonetic_key("세금") == phonetic_key("새금")        # ㅐ/ㅔ
    assert phonetic_key("의료") == phonetic_key("이료")        # ㅢ/ㅣ
    assert fold_syllable("밖") == fold_syllable("박")          # final ㄲ → ㄱ
    assert phonetic_key("등본") != phonetic_key("초본")


def test_jamo_sequence_absorbs_liaison_spelling():
    # Recognisers write what they hear: 전입 is pronounced [저닙].
    assert jamo_sequence("저닙신고") == jamo_sequence("전입신고")
    assert jamo_sequence("시럽급여") == jamo_sequence("실업급여")


def test_misheard_syllable_keeps_most_ngrams(normalizer):
    right = jamo_terms(normalizer, "주민등록 등본 발급")
    misheard = jamo_terms(normalizer, "주민등록 등봉 발급")
    shared = sum((right & misheard).values())
    assert shared / sum(right.values()) > 0.8


def test_spoken_110_becomes_digits():
    assert clean_text("일일공에 전화하고 싶어") == "110에 전화하고 싶어"
    assert clean_text("백십번 번호") == "110번 번호"


def test_english_is_lower_cased_stemmed_and_stopworded(normalizer):
    assert normalizer.lexical_terms("How do I renew my Passports?") == ["w:renew", "w:passport"]
    assert stem_english("certificates") == "certificate"
    assert stem_english("renewal") == "renew"
    assert stem_english("bus") == "bus"


def test_mixed_query_keeps_both_languages(normalizer):
    terms = normalizer.lexical_terms("passport 재발급 어떻게 해")
    assert "w:passport" in terms
    assert "m:발급" in terms
