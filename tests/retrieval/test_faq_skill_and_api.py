"""The FAQ skill in /v1/converse, GET /v1/faq/search and POST /v1/admin/reload, over the real app."""

from __future__ import annotations

import shutil
import threading

import pytest
import yaml

from retrieval.corpus import load_corpus
from services import FAQ
from tests.retrieval.conftest import CORPUS_DIR

ROOT_DATA = CORPUS_DIR.parent


def converse(client, text, locale=None, **extra):
    body = {"user_id": "faq-test-user", "text": text, **extra}
    if locale:
        body["locale"] = locale
    response = client.post("/v1/converse", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def entry(entry_id):
    return load_corpus(CORPUS_DIR).by_id()[entry_id]


def test_confident_question_is_answered_with_the_top_entrys_speech(client, searcher):
    question = "운전면허 갱신하려면 어디로 가야 돼요"
    top = searcher.search(question, "ko-KR").results[0]
    reply = converse(client, question, "ko-KR")
    assert reply["intent"] == "faq"
    assert top.topic == "driver-license-renewal"
    assert reply["speech"] == top.answer_speech == entry(top.id).answer_speech
    assert reply["display"] == {"title": top.question, "body": top.answer_text}
    assert reply["ssml"].startswith("<speak>")


def test_english_session_gets_the_english_entry_of_a_korean_question(client):
    reply = converse(client, "여권 재발급 온라인으로 하는 법", "en-US")
    assert reply["intent"] == "faq"
    speech = reply["speech"]
    assert speech and not any("\uac00" <= ch <= "\ud7a3" for ch in speech)
    english_speeches = {e.answer_speech for e in load_corpus(CORPUS_DIR).entries
                        if e.topic == "passport-reissue-online" and e.locale == "en-US"}
    assert speech in english_speeches


@pytest.mark.parametrize("text, locale", [("오늘 날씨 어때", "ko-KR"), ("order a pizza", "en-US")])
def test_out_of_domain_question_is_not_answered_but_points_to_110(client, searcher, text, locale):
    reply = converse(client, text, locale)
    closest = searcher.search(text, locale).results[0]
    assert reply["intent"] == "faq_not_sure"
    all_speeches = {e.answer_speech for e in load_corpus(CORPUS_DIR).entries}
    assert reply["speech"] not in all_speeches
    assert not any(s in reply["speech"] for s in all_speeches)  # no unrelated answer read out
    names = yaml.safe_load((ROOT_DATA / "retrieval" / "topic_names.yaml").read_text(encoding="utf-8"))
    if locale == "ko-KR":
        assert "정확한 답을 찾지 못했어요" in reply["speech"] and "일일공" in reply["speech"]
        name = names[closest.topic]["ko"]
        ending = "예요" if (ord(name[-1]) - 0xAC00) % 28 == 0 else "이에요"  # 출생신고예요 / 기초연금이에요
        assert f"가장 가까운 주제는 {name}{ending}." in reply["speech"]
    else:
        assert "not sure" in reply["speech"] and "one one zero" in reply["speech"]
        assert names[closest.topic]["en"] in reply["speech"]
    assert "110" in reply["display"]["body"]


def test_every_corpus_topic_has_a_spoken_name_in_both_languages():
    names = yaml.safe_load((ROOT_DATA / "retrieval" / "topic_names.yaml").read_text(encoding="utf-8"))
    topics = {e.topic for e in load_corpus(CORPUS_DIR).entries}
    assert sorted(t for t in topics if not (names.get(t, {}).get("ko") and names.get(t, {}).get("en"))) == []


def test_n_best_alternatives_reach_the_search(services):
    from skills.engine import Turn

    reply = services.dialog.converse(Turn(user_id="faq-nbest", text="음 저기 그", locale="ko-KR",
                                          alternatives=["국민연금 가입 기간 확인하는 법"]))
    assert reply.intent == "faq"
    speeches = {e.answer_speech for e in load_corpus(CORPUS_DIR).entries if e.topic == "national-pension-record"}
    assert reply.speech in speeches


def test_without_a_loaded_index_the_plain_fallback_answers(services, client, monkeypatch):
    monkeypatch.delitem(services.components, FAQ)
    reply = converse(client, "등본 발급 방법", "ko-KR")
    assert reply["intent"] == "fallback"
    assert "110" in reply["speech"]
    response = client.get("/v1/faq/search", query_string={"q": "등본"})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "index_loading"


# --- GET /v1/faq/search --------------------------------------------------------------------------------

def test_search_endpoint_shape_and_ranking(client, searcher):
    response = client.get("/v1/faq/search", query_string={"q": "주민등록등본 떼는 곳", "locale": "ko-KR", "k": 3})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"results", "confident"} and body["confident"] is True
    assert len(body["results"]) == 3
    assert all(set(r) == {"id", "topic", "question", "answer_speech", "score"} for r in body["results"])
    assert body["results"][0]["topic"] == "resident-registration-copy"
    direct = searcher.search("주민등록등본 떼는 곳", "ko-KR", k=3)
    assert [r["id"] for r in body["results"]] == [h.id for h in direct.results]


def test_search_over_real_http(live_server):
    import requests

    response = requests.get(f"{live_server}/v1/faq/search",
                            params={"q": "how do I pay a parking ticket", "locale": "en-US", "k": 2}, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["results"][0]["topic"] == "traffic-fine-payment" and body["confident"] is True


def test_search_endpoint_defaults_to_korean_and_five(client):
    body = client.get("/v1/faq/search", query_string={"q": "how do I renew my driving licence"}).get_json()
    assert len(body["results"]) == 5
    assert all(".ko." in r["id"] for r in body["results"])


@pytest.mark.parametrize("query, code", [
    ({"q": ""}, "missing_query"),
    ({}, "missing_query"),
    ({"q": "여권", "locale": "fr-FR"}, "unsupported_locale"),
    ({"q": "여권", "k": "0"}, "invalid_k"),
    ({"q": "여권", "k": "abc"}, "invalid_k"),
    ({"q": "여권", "k": "21"}, "invalid_k"),
    ({"q": "가" * 501}, "query_too_long"),
])
def test_search_endpoint_rejects_bad_input(client, query, code):
    response = client.get("/v1/faq/search", query_string=query)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code


# --- POST /v1/admin/reload -----------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"X-Admin-Key": "wrong"}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "token x"}])
def test_reload_needs_the_admin_key(client, services, headers):
    before = services.components[FAQ].index
    response = client.post("/v1/admin/reload", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_admin_key"
    assert services.components[FAQ].index is before


def test_reload_swaps_a_rebuilt_index_without_dropping_requests(app, tmp_path, normalizer, encoder):
    """A corpus edit picked up by POST /v1/admin/reload while searches keep arriving over HTTP."""
    from retrieval.search import FaqSearcher

    corpus = tmp_path / "faq"
    shutil.copytree(CORPUS_DIR, corpus)
    own = FaqSearcher.load_or_build(tmp_path / "data", corpus, normalizer=normalizer, encoder=encoder)
    services = app.extensions["minwon"]
    original = services.components[FAQ]
    services.components[FAQ] = own
    try:
        client = app.test_client()
        new_phrase = "청소년 여권 발급에 부모 동의서 필요한지"
        path = corpus / "passport-issuance.yaml"
        path.write_text(path.read_text(encoding="utf-8").replace(
            "alternates:\n", f"alternates:\n    - {new_phrase}\n", 1), encoding="utf-8")
        statuses: list[int] = []
        stop = threading.Event()

        def keep_searching() -> None:
            searching = app.test_client()
            while not stop.is_set():
                statuses.append(searching.get("/v1/faq/search", query_string={"q": "여권 발급"}).status_code)

        worker = threading.Thread(target=keep_searching)
        worker.start()
        try:
            response = client.post("/v1/admin/reload", headers={"X-Admin-Key": services.settings.admin_api_key})
        finally:
            stop.set()
            worker.join()
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["reloaded"] is True and body["entries"] == len(load_corpus(corpus).entries)
        assert statuses and set(statuses) == {200}
        assert new_phrase in {p for e in own.index.entries for p in e.phrasings}
        again = client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {services.settings.admin_api_key}"})
        assert again.status_code == 200 and again.get_json()["reloaded"] is False
        (corpus / "broken.yaml").write_text("- id: broken\n", encoding="utf-8")
        broken = client.post("/v1/admin/reload", headers={"X-Admin-Key": services.settings.admin_api_key})
        assert broken.status_code == 422
        assert "broken.yaml:1: topic: missing field" in broken.get_json()["error"]["message"]
        assert client.get("/v1/faq/search", query_string={"q": "여권 발급"}).status_code == 200
    finally:
        services.components[FAQ] = original


def test_openapi_documents_both_endpoints(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "get" in paths["/v1/faq/search"] and "post" in paths["/v1/admin/reload"]
    assert {p["name"] for p in paths["/v1/faq/search"]["get"]["parameters"]} == {"q", "locale", "k"}
