"""The FAQ searcher as a component of the running service (one per process, loaded at start-up)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from retrieval.search import FaqSearcher

if TYPE_CHECKING:
    from services import Services
    from settings import Settings

COMPONENT = "faq"
DEFAULT_CORPUS_DIR = Path(__file__).resolve().parent.parent / "data" / "faq"


def corpus_dir(settings: Settings) -> Path:
    """``MINWON_FAQ_CORPUS_DIR`` or the corpus shipped in ``data/faq``."""
    configured = settings.get("MINWON_FAQ_CORPUS_DIR", "")
    return Path(configured) if configured else DEFAULT_CORPUS_DIR


def load_faq_searcher(services: Services) -> FaqSearcher:
    """Loader for ``Services.add_loader``: the stored index when current, else a fresh build."""
    return FaqSearcher.load_or_build(services.settings.data_dir, corpus_dir(services.settings))
