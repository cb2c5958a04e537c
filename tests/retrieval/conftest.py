"""Shared, session-scoped retrieval fixtures: the models load once per test session (in the app's
start-up) and every test that builds its own index reuses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.dense import Encoder, SentenceTransformerEncoder, load_encoder, packaged_minilm_dir
from retrieval.normalize import TextNormalizer
from retrieval.search import FaqSearcher
from settings import PROJECT_DATA

ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = PROJECT_DATA / "faq"


@pytest.fixture(scope="session")
def searcher(services) -> FaqSearcher:
    """The app's own searcher (tests/conftest.py starts the app once per session; its loader
    builds the real corpus's index into the session's temporary data directory)."""
    return services.components["faq"]


@pytest.fixture(scope="session")
def normalizer(searcher) -> TextNormalizer:
    return searcher.normalizer


@pytest.fixture(scope="session")
def encoder(searcher) -> Encoder:
    """The default encoder (multilingual USE), as the app loaded it."""
    return searcher.encoder


@pytest.fixture(scope="session")
def minilm_encoder() -> SentenceTransformerEncoder:
    """The alternative encoder, loaded once per session the way MINWON_ENCODER names it: the packaged
    all-MiniLM-L6-v2 directory (requirements-dev.txt installs it with torch and sentence-transformers)."""
    loaded = load_encoder(f"sentence-transformers:{packaged_minilm_dir()}")
    assert isinstance(loaded, SentenceTransformerEncoder)
    return loaded


def write_entry(path: Path, entries: list[dict]) -> Path:
    """Write corpus entries as YAML the way a person would (one mapping per entry)."""
    import yaml

    path.write_text(yaml.safe_dump(entries, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def entry(**overrides) -> dict:
    base = {
        "id": "passport-issuance.ko.1",
        "topic": "passport-issuance",
        "locale": "ko-KR",
        "question": "여권은 어디서 만드나요?",
        "alternates": ["여권 발급 어디서 해", "여권 새로 만들기"],
        "answer_speech": "여권은 시청, 구청, 도청의 여권 민원실에서 신청해요. 본인이 직접 가야 합니다.",
        "answer_text": "여권은 전국 여권 사무 대행 기관(시청, 구청, 도청)에서 신청합니다.",
        "agency": "외교부",
        "source_url": "https://www.passport.go.kr",
        "updated": "2026-11-26",
    }
    base.update(overrides)
    return base
