"""The FAQ searcher as a component of the running service (one per process, loaded at start-up)."""

from __future__ import annotations

from pathlib import Path

from retrieval.dense import DEFAULT_ENCODER, ENCODER_SETTING, Encoder, EncoderSpec, load_encoder, parse_encoder_spec
from retrieval.search import FaqSearcher
from settings import PROJECT_DATA, Settings

DEFAULT_CORPUS_DIR = PROJECT_DATA / "faq"


def corpus_dir(settings: Settings) -> Path:
    """``MINWON_FAQ_CORPUS_DIR`` or the corpus shipped in ``data/faq``."""
    configured = settings.get("MINWON_FAQ_CORPUS_DIR", "")
    return Path(configured) if configured else DEFAULT_CORPUS_DIR


def encoder_spec(settings: Settings) -> str:
    """``MINWON_ENCODER``: ``use`` (the default, packaged multilingual USE) or
    ``sentence-transformers:/path/to/model``."""
    return settings.get(ENCODER_SETTING, DEFAULT_ENCODER)


def check_encoder_setting(settings: Settings) -> EncoderSpec:
    """Start-up check of ``MINWON_ENCODER`` (cheap: nothing is loaded); raises ``EncoderConfigError``."""
    return parse_encoder_spec(encoder_spec(settings))


def load_configured_encoder(settings: Settings) -> Encoder:
    return load_encoder(encoder_spec(settings))


def load_faq_searcher(settings: Settings) -> FaqSearcher:
    """The stored index when current (for the configured encoder), else a fresh build."""
    return FaqSearcher.load_or_build(settings.data_dir, corpus_dir(settings),
                                     encoder=load_configured_encoder(settings))
