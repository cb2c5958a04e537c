"""Hybrid search over the real corpus: ranking, cross-lingual answers, confidence, n-best, threads.

Queries here are written for the tests, not taken from the evaluation dev set."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest


def top(searcher, query, locale, **kw):
    response = searcher.search(query, locale, **kw)
    assert response.results, query
    return response, response.results[0]


@pytest.mark.parametrize("query, topic", [
    ("주민등록등본 하나 발급받고 싶은데", "resident-registration-copy"),
    ("주민등록초본발급하는곳", "resident-registration-abstract"),       # spaces dropped
    ("운전면허증 갱신 기간 지났어요", "driver-license-renewal"),
    ("실업 급여 받으려면 어디에 신청해", "unemployment-benefit"),
    ("전자문서 지갑에 증명서 넣는 법", "digital-wallet"),
])
def test_korean_queries_find_their_topic(searcher, query, topic):
    response, hit = top(searcher, query, "ko-KR")
    assert hit.topic == topic
    assert hit.locale == "ko-KR"
    assert response.confident


def test_misheard_syllable_still_finds_the_topic(searcher):
    # 인감 → 인간 is a one-jamo recognition error
    _, hit = top(searcher, "인간증명서 발급받는 곳", "ko-KR")
    assert hit.topic == "seal-certificate"


def test_english_question_in_korean_session_is_answered_in_korean(searcher):
    response, hit = top(searcher, "How can I renew my passport on the internet?", "ko-KR")
    assert hit.topic == "passport-reissue-online"
    assert hit.locale == "ko-KR"
    assert hit.id.startswith("passport-reissue-online.ko.")
    assert any("\uac00" <= ch <= "\ud7a3" for ch in hit.answer_speech)
    assert response.confident


def test_korean_question_in_english_session_is_answered_in_english(searcher):
    _, hit = top(searcher, "기초연금 신청 자격이 궁금해요", "en-US")
    assert hit.topic == "basic-pension"
    assert hit.locale == "en-US"
    assert not any("\uac00" <= ch <= "\ud7a3" for ch in hit.answer_speech)


@pytest.mark.parametrize("query, locale", [
    ("오늘 날씨 어때", "ko-KR"),
    ("order a pizza", "en-US"),
    ("볼륨 좀 키워 줘", "ko-KR"),
    ("who is the best football player ever", "en-US"),
    ("라면 맛있게 끓이는 법", "ko-KR"),
])
def test_out_of_domain_requests_are_not_confident(searcher, query, locale):
    response = searcher.search(query, locale)
    assert response.confident is False
    threshold = searcher.index.calibrators["hybrid"].threshold
    assert response.results[0].score < threshold


def test_scores_are_probabilities_in_rank_order_and_entries_unique(searcher):
    response = searcher.search("여권 만들려면 뭐 가져가요", "ko-KR", k=8)
    scores = [h.score for h in response.results]
    assert len(response.results) == 8
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert len({h.id for h in response.results}) == 8
    assert all(h.locale == "ko-KR" for h in response.results)


def test_n_best_alternative_rescues_a_garbled_first_transcript(searcher):
    garbled = searcher.search("음 그게 저기", "ko-KR")
    assert not garbled.confident
    rescued = searcher.search("음 그게 저기", "ko-KR", alternatives=["자동차 등록 이전 신청 방법"])
    assert rescued.confident
    assert rescued.results[0].topic == "vehicle-registration"


def test_empty_query_is_an_empty_unconfident_response(searcher):
    response = searcher.search("   ", "ko-KR")
    assert response.results == [] and response.confident is False


def test_bad_arguments_raise(searcher):
    with pytest.raises(ValueError, match="locale"):
        searcher.search("여권", "ja-JP")
    with pytest.raises(ValueError, match="k must"):
        searcher.search("여권", "ko-KR", k=0)


def test_concurrent_searches_give_the_same_answers_as_sequential(searcher):
    queries = [("가족관계증명서 떼는 곳", "ko-KR"), ("how do I report a birth", "en-US"),
               ("건축물대장 열람", "ko-KR"), ("child allowance application", "en-US")] * 6
    expected = [[h.id for h in searcher.search(q, loc).results] for q, loc in queries]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda ql: [h.id for h in searcher.search(*ql).results], queries))
    assert got == expected


def test_single_rankers_are_selectable(searcher):
    for ranker in ("lexical", "dense"):
        response = searcher.search("국민연금 가입 내역 조회", "ko-KR", ranker=ranker)
        assert response.results[0].topic == "national-pension-record"
