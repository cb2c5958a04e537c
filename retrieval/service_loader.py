"""The FAQ searcher as a component of the running service (one per process, loaded at start-up)."""

from __future__ import annotations

from pathlib import Path

from retrieval.search import FaqSearcher
from settings import PROJECT_DATA, Settings

DEFAULT_CORPUS_DIR = PROJECT_DATA / "faq"


def corpus_dir(settings: Settings) -> Path:
    """``MINWON_FAQ_CORPUS_DIR`` or the corpus shipped in ``data/faq``."""
    configured = settings.get("MINWON_FAQ_CORPUS_DIR", "")
    return Path(configured) if configured else DEFAULT_CORPUS_DIR


def load_faq_searcher(settings: Settings) -> FaqSearcher:
    """The stored index when current, else a fresh build."""
    return FaqSearcher.load_or_build(settings.data_dir, corpus_dir(settings))
