"""HTTP endpoints of the FAQ search: ``GET /v1/faq/search`` and ``POST /v1/admin/reload``."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, jsonify, request

from http_api import ApiError, check_rate, error_responses, locale_schema, parse_locale, require_admin_key, services
from retrieval.corpus import CorpusError
from retrieval.search import MAX_QUERY_CHARS, FaqSearcher

bp = Blueprint("retrieval", __name__)

MAX_K = 20


def searcher() -> FaqSearcher:
    found = services().faq_searcher()
    if found is None:
        raise ApiError(503, "index_loading", "The FAQ index is still loading. Please retry shortly.",
                       {"Retry-After": "5"})
    return found


@bp.get("/v1/faq/search")
def search() -> Any:
    check_rate()
    query = request.args.get("q", "")
    if not query.strip():
        raise ApiError(400, "missing_query", "q must be a non-empty question.")
    if len(query) > MAX_QUERY_CHARS:
        raise ApiError(400, "query_too_long", f"q must be at most {MAX_QUERY_CHARS} characters.")
    locale = parse_locale(request.args.get("locale"), default="ko-KR")
    raw_k = request.args.get("k", "5")
    # isdigit() accepts "²" and other digits int() cannot read; only ASCII 0-9 are a number here.
    if not (raw_k.isascii() and raw_k.isdecimal()) or not 1 <= int(raw_k) <= MAX_K:
        raise ApiError(400, "invalid_k", f"k must be a whole number from 1 to {MAX_K}.")
    response = searcher().search(query, locale, k=int(raw_k))
    return jsonify({
        "results": [{"id": h.id, "topic": h.topic, "question": h.question, "answer_speech": h.answer_speech,
                     "score": h.score} for h in response.results],
        "confident": response.confident,
    })


@bp.post("/v1/admin/reload")
def reload() -> Any:
    require_admin_key()
    current = searcher()
    previous_key = current.index.key
    started = time.perf_counter()
    try:
        index = current.reload()
    except CorpusError as exc:
        # The current index stays in service; the problems name file, line and field, no personal data.
        raise ApiError(422, "invalid_corpus", str(exc)) from exc
    return jsonify({
        "reloaded": index.key != previous_key,
        "entries": len(index.entries),
        "index_key": index.key[:16],
        "seconds": round(time.perf_counter() - started, 2),
    })


OPENAPI_COMPONENTS = {
    "FaqSearchResponse": {
        "type": "object", "required": ["results", "confident"],
        "properties": {
            "results": {"type": "array", "items": {
                "type": "object", "required": ["id", "topic", "question", "answer_speech", "score"],
                "properties": {
                    "id": {"type": "string"}, "topic": {"type": "string"}, "question": {"type": "string"},
                    "answer_speech": {"type": "string"},
                    "score": {"type": "number", "minimum": 0, "maximum": 1,
                              "description": "Calibrated probability that this entry answers the question."},
                }}},
            "confident": {"type": "boolean",
                          "description": "False when the best score is under the calibrated threshold: "
                                         "do not read the answer out."},
        },
    },
    "ReloadResponse": {
        "type": "object", "required": ["reloaded", "entries", "index_key", "seconds"],
        "properties": {"reloaded": {"type": "boolean"}, "entries": {"type": "integer"},
                       "index_key": {"type": "string"}, "seconds": {"type": "number"}},
    },
}

OPENAPI_PATHS = {
    "/v1/faq/search": {"get": {
        "summary": "Hybrid (lexical + dense) search of the government FAQ, answered in the given locale.",
        "parameters": [
            {"name": "q", "in": "query", "required": True,
             "schema": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS}},
            {"name": "locale", "in": "query", "required": False,
             "schema": locale_schema(default="ko-KR")},
            {"name": "k", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 5}},
        ],
        "responses": {
            "200": {"description": "ranked entries", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/FaqSearchResponse"}}}},
            **error_responses(400, 429, 503),
        },
    }},
    "/v1/admin/reload": {"post": {
        "summary": "Re-read the FAQ corpus and swap in a rebuilt index; searches keep running meanwhile.",
        "description": "Needs the admin API key (MINWON_ADMIN_API_KEY) in X-Admin-Key or as a Bearer token.",
        "parameters": [{"name": "X-Admin-Key", "in": "header", "required": False, "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "the index in service now", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ReloadResponse"}}}},
            **error_responses(401, 422, 503),
        },
    }},
}
