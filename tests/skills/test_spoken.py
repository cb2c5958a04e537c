from datetime import date

import pytest

from skills.spoken import (
    days_from_now,
    english_count,
    english_list,
    korean_list,
    mark_digits,
    native_korean_count,
    plain_speech,
    sino_korean,
    spoken_count,
    spoken_date,
    spoken_digits,
    to_ssml,
    with_particle,
)


@pytest.mark.parametrize(("n", "word"), [(1, "일"), (10, "십"), (11, "십일"), (20, "이십"), (105, "백오"),
                                         (1357, "천삼백오십칠"), (10000, "만"), (23000, "이만 삼천")])
def test_sino_korean(n, word):
    assert sino_korean(n) == word


@pytest.mark.parametrize(("n", "text"), [(1, "한 건"), (2, "두 건"), (3, "세 건"), (4, "네 건"), (10, "열 건"),
                                         (12, "열두 건"), (20, "스무 건"), (21, "스물한 건")])
def test_native_counts(n, text):
    assert native_korean_count(n, "건") == text


@pytest.mark.parametrize(("days", "ko", "en"), [(10, "열흘 뒤", "in 10 days"), (3, "사흘 뒤", "in 3 days"),
                                                 (-2, "이틀 전", "2 days ago"), (1, "내일", "tomorrow"),
                                                 (0, "오늘", "today"), (14, "14일 뒤", "in 14 days")])
def test_relative_days(days, ko, en):
    assert days_from_now(days, "ko-KR") == ko
    assert days_from_now(days, "en-US") == en


def test_dates_for_the_ear():
    assert spoken_date(date(2026, 11, 20), "ko-KR", today=date(2026, 11, 26)) == "11월 20일"
    assert spoken_date(date(2027, 1, 5), "ko-KR", today=date(2026, 11, 26)) == "2027년 1월 5일"
    assert spoken_date(date(2026, 11, 20), "en-US", today=date(2026, 11, 26)) == "November 20"
    assert english_count(3, "certificate") == "three certificates"
    assert english_count(1, "certificate") == "one certificate"


def test_codes_are_read_digit_by_digit():
    speech = f"인증 번호는 {mark_digits('4071')} 입니다."
    assert plain_speech(speech) == "인증 번호는 4 0 7 1 입니다."
    assert '<say-as interpret-as="digits">4071</say-as>' in to_ssml(speech)
    assert spoken_digits("4071", "ko-KR") == "사 공 칠 일"
    assert to_ssml("A & B <c>") == "<speak>A &amp; B &lt;c&gt;</speak>"


@pytest.mark.parametrize(("word", "particle", "text"), [
    ("소득금액증명", "은", "소득금액증명은"), ("가족관계증명서", "은", "가족관계증명서는"),
    ("소득 정보", "를", "소득 정보를"), ("주민등록표 등본", "이", "주민등록표 등본이"),
    ("서울", "으로", "서울로"), ("공단", "으로", "공단으로"), ("국세청", "과", "국세청과"),
    ("국민건강보험공단", "와", "국민건강보험공단과"), ("소득 정보", "인가요", "소득 정보인가요"),
    ("3", "은", "3은"), ("2", "은", "2는"), ("NTS", "은", "NTS은"),
])
def test_korean_particles_fit_the_last_syllable(word, particle, text):
    assert with_particle(word, particle) == text


def test_spoken_lists():
    assert korean_list(["소득 정보", "건강보험 자격 정보"]) == "소득 정보와 건강보험 자격 정보"
    assert korean_list(["등본", "초본", "가족관계증명서"]) == "등본, 초본과 가족관계증명서"
    assert english_list(["a", "b", "c"]) == "a, b, and c"
    assert english_list(["a", "b"], "or") == "a or b"
    assert spoken_count(2, "ko-KR", "곳", "place") == "두 곳"
    assert spoken_count(2, "en-US", "곳", "place") == "two places"
