"""The router as a component of the running service and of the build: its training inputs from the data
directory and settings, its models trained or loaded once per process."""

from __future__ import annotations

import threading
from pathlib import Path

from retrieval.corpus import load_corpus
from retrieval.index import DEFAULT_OUT_OF_DOMAIN
from retrieval.search import FaqSearcher
from settings import PROJECT_DATA
from understanding.examples import IntentExamples
from understanding.model import DENSE, LEXICAL, RouterModel, TrainingInputs, load_or_train
from understanding.router import IntentRouter
from understanding.slots import SlotVocabulary

INTENTS_DIR = PROJECT_DATA / "intents"
SLOTS_DIR = PROJECT_DATA / "slots"

# Models by (key, normaliser): every Services object of a process with the same inputs shares one (tests build
# many apps, each with its own data directory; a gunicorn worker builds one).
_MODELS: dict[tuple[str, int], RouterModel] = {}
_MODELS_LOCK = threading.Lock()


def training_inputs(corpus_dir: Path, out_of_domain_path: Path = DEFAULT_OUT_OF_DOMAIN) -> TrainingInputs:
    return TrainingInputs.load(INTENTS_DIR, SLOTS_DIR, load_corpus(corpus_dir), out_of_domain_path)


def router_model(data_dir: Path, inputs: TrainingInputs, kind: str, searcher: FaqSearcher | None = None,
                 force: bool = False) -> RouterModel:
    """The process's model for these inputs: shared when already loaded, else loaded from (or trained into) the
    data directory."""
    normalizer = searcher.normalizer if searcher is not None and kind == DENSE else None
    encoder = searcher.encoder if searcher is not None and kind == DENSE else None
    memo = (inputs.key(kind, encoder.identity if encoder else None), id(normalizer))
    with _MODELS_LOCK:
        if not force and memo in _MODELS:
            return _MODELS[memo]
        model = load_or_train(data_dir, inputs, kind, normalizer, encoder, force=force)
        _MODELS[memo] = model
        return model


def build_router(data_dir: Path, corpus_dir: Path) -> IntentRouter:
    """The router with its lexical model (trained or loaded on first use); `attach_dense_model` adds the other."""
    return IntentRouter(IntentExamples.load(INTENTS_DIR), SlotVocabulary.load(SLOTS_DIR),
                        lambda: router_model(data_dir, training_inputs(corpus_dir), LEXICAL))


def attach_dense_model(router: IntentRouter, data_dir: Path, corpus_dir: Path, searcher: FaqSearcher) -> RouterModel:
    """Trains or loads the dense model with the searcher's normaliser and encoder, and routes with it."""
    model = router_model(data_dir, training_inputs(corpus_dir), DENSE, searcher)
    router.attach(model, searcher.normalizer, searcher.encoder)
    return model
