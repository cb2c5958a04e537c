"""The router as a component of the running service and of the build: its training inputs from the data
directory and settings, its models trained or loaded once per process."""

from __future__ import annotations

import threading
from pathlib import Path

from retrieval.corpus import load_corpus
from retrieval.index import DEFAULT_OUT_OF_DOMAIN
from retrieval.search import FaqSearcher
from retrieval.service_loader import corpus_dir
from settings import PROJECT_DATA, Settings
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


def intents_dir(settings: Settings) -> Path:
    """``MINWON_INTENTS_DIR`` or the examples shipped in ``data/intents``. Another directory lets a developer try
    phrasings (and `eval-nlu` them) without editing the reviewed ones; the router then knows only its intents."""
    configured = settings.get("MINWON_INTENTS_DIR", "")
    return Path(configured) if configured else INTENTS_DIR


def training_inputs(corpus: Path, intents: Path = INTENTS_DIR,
                    out_of_domain_path: Path = DEFAULT_OUT_OF_DOMAIN) -> TrainingInputs:
    return TrainingInputs.load(intents, SLOTS_DIR, load_corpus(corpus), out_of_domain_path)


def configured_training_inputs(settings: Settings) -> TrainingInputs:
    """What the configured service trains its router on: its FAQ corpus and its intent examples."""
    return training_inputs(corpus_dir(settings), intents_dir(settings))


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


def build_router(settings: Settings) -> IntentRouter:
    """The router with its lexical model (trained or loaded on first use); `attach_dense_model` adds the other."""
    return IntentRouter(IntentExamples.load(intents_dir(settings)), SlotVocabulary.load(SLOTS_DIR),
                        lambda: router_model(settings.data_dir, configured_training_inputs(settings), LEXICAL))


def attach_dense_model(router: IntentRouter, settings: Settings, searcher: FaqSearcher) -> RouterModel:
    """Trains or loads the dense model with the searcher's normaliser and encoder, and routes with it."""
    model = router_model(settings.data_dir, configured_training_inputs(settings), DENSE, searcher)
    router.attach(model, searcher.normalizer, searcher.encoder)
    return model
