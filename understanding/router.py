"""The router: for every turn, one decision between the intents of data/intents, the FAQ and "none" (out of
domain), with one calibrated confidence.

A turn's transcripts (the recogniser's best and its alternatives) are read for slot values (every reading of
an alias two types share), embedded once, and classified together; the best-supported decision wins, as in the
FAQ search, and the embeddings go on to the FAQ search so the turn is not embedded twice. Then:

* top probability ≥ ROUTE_THRESHOLD → that intent (`faq`: the FAQ skill, which applies its own confidence;
  `none`: the honest "not sure");
* below it, two plausible in-domain candidates → a clarifying question naming both (`clarify`);
* otherwise → the FAQ, which answers or says it is not sure.

Until the sentence encoder has loaded (start-up, runs without models) the lexical model routes; once the FAQ
loader has the normaliser and the encoder, the dense model takes over (`attach`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from retrieval.dense import Encoder
from retrieval.normalize import TextNormalizer
from retrieval.scoring import embed_queries
from retrieval.search import query_transcripts
from understanding.answers import is_filler
from understanding.examples import IntentExamples
from understanding.model import DENSE, FAQ, NONE, RouterModel
from understanding.slots import PLACEHOLDER, SlotReading, SlotVocabulary

log = logging.getLogger(__name__)

CLARIFY = "clarify"
# Chosen on the tuning split of tests/fixtures/nlu (`python app.py eval-nlu --split tuning --sweep`), averaged
# over three training seeds: accuracy 0.957 at 0.4, 0.955 at 0.45, 0.951 at 0.5; out-of-domain rejection
# 0.907, 0.920, 0.920. 0.45 keeps the rejection and most of the accuracy.
ROUTE_THRESHOLD = 0.45
# A clarifying question needs two candidates that are both plausible: the second at least this likely, and the
# two together this likely (else the turn is not about either, and the FAQ decides).
CLARIFY_SECOND = 0.2
CLARIFY_TOGETHER = 0.7
# Intents a clarifying question may offer (a greeting or "repeat" is never worth asking about).
OFFERABLE = frozenset({"certificate_status", "certificate_expiring", "consent_list", "consent_on", "consent_off",
                       "send_to_wallet", "link_account", "help", FAQ})


@dataclass(frozen=True)
class Routing:
    decision: str                          # an intent, FAQ, NONE or CLARIFY
    probability: float                     # calibrated probability of the top class
    candidates: tuple[tuple[str, float], ...]  # the best classes, best first (label, probability)
    slots: dict[str, str] = field(default_factory=dict)
    # slot type → every value the text could mean, when it named more than one (e.g. two data items).
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    transcripts: tuple[str, ...] = ()
    # The transcripts' sentence embeddings (rows match `transcripts`), for the FAQ search; None without encoder.
    embeddings: np.ndarray | None = None
    model: str = ""

    @property
    def intent(self) -> str | None:
        """The intent a skill handles, or None when the turn goes to the FAQ side or a clarifying question."""
        return None if self.decision in (FAQ, NONE, CLARIFY) else self.decision

    @property
    def offered(self) -> tuple[str, str]:
        """The two candidates a clarifying question names."""
        return self.candidates[0][0], self.candidates[1][0]


def decide(candidates: Sequence[tuple[str, float]], threshold: float = ROUTE_THRESHOLD,
           second_floor: float = CLARIFY_SECOND, together: float = CLARIFY_TOGETHER) -> str:
    (top, p1), (second, p2) = candidates[0], candidates[1]
    if p1 >= threshold:
        return top
    if top in OFFERABLE and second in OFFERABLE and p2 >= second_floor and p1 + p2 >= together:
        return CLARIFY
    return FAQ


class IntentRouter:
    def __init__(self, examples: IntentExamples, vocabulary: SlotVocabulary,
                 lexical_model: Callable[[], RouterModel]) -> None:
        self.examples = examples
        self.vocabulary = vocabulary
        # intent → the slot types its examples name ({document} for send_to_wallet, …)
        self._slot_types: dict[str, set[str]] = {}
        for example in examples.examples:
            self._slot_types.setdefault(example.intent, set()).update(PLACEHOLDER.findall(example.template))
        # The lexical model is trained or loaded on first use (a command-line tool that never routes never pays).
        self._load_lexical = lexical_model
        self._lexical: RouterModel | None = None
        self._dense: tuple[RouterModel, TextNormalizer, Encoder] | None = None
        self._lock = threading.Lock()

    @property
    def intents(self) -> list[str]:
        return self.examples.intents

    @property
    def model_kind(self) -> str:
        return DENSE if self._dense is not None else "lexical"

    def attach(self, model: RouterModel, normalizer: TextNormalizer, encoder: Encoder) -> None:
        """Routes with the dense model from now on (the FAQ loader calls this once the encoder is loaded)."""
        if model.kind != DENSE:
            raise ValueError("attach takes the dense model")
        # The words of requests (the intent examples and the slot values' aliases) are common in turns too: the
        # encoder computes their tokens' own work once (the FAQ searcher has it do the same for the corpus).
        encoder.prepare([normalizer.dense_text(text) for text in self._request_words()])
        self._dense = (model, normalizer, encoder)

    def _request_words(self) -> list[str]:
        texts = [PLACEHOLDER.sub(" ", example.template) for example in self.examples.examples]
        texts += [alias for values in self.vocabulary.types.values() for value in values.values()
                  for alias in value.aliases]
        return texts

    def lexical_model(self) -> RouterModel:
        if self._lexical is None:
            with self._lock:
                if self._lexical is None:
                    self._lexical = self._load_lexical()
        return self._lexical

    def route(self, text: str, alternatives: Sequence[str] = (), *, threshold: float = ROUTE_THRESHOLD) -> Routing:
        transcripts = [t for t in query_transcripts(text, list(alternatives)) if not is_filler(t)]
        if not transcripts:
            return Routing(decision=FAQ, probability=0.0, candidates=((FAQ, 0.0), (NONE, 0.0)))
        model, probabilities, reading, embeddings = self._classify(transcripts)
        order = np.argsort(-probabilities, kind="stable")[:3]
        candidates = tuple((model.classes[i], round(float(probabilities[i]), 4)) for i in order)
        return Routing(
            decision=decide(candidates, threshold), probability=candidates[0][1], candidates=candidates,
            slots={t: ids[0] for t, ids in reading.found.items() if len(ids) == 1},
            ambiguous={t: list(ids) for t, ids in reading.found.items() if len(ids) > 1},
            transcripts=tuple(transcripts), embeddings=embeddings, model=model.kind,
        )

    def probabilities(self, text: str) -> dict[str, float]:
        """Every class's probability for `text` (e.g. to weigh an answer to a clarifying question)."""
        transcripts = query_transcripts(text)
        if not transcripts:
            return {}
        model, probabilities, _, _ = self._classify(transcripts)
        return {label: float(p) for label, p in zip(model.classes, probabilities, strict=True)}

    def _classify(self, transcripts: list[str]) -> tuple[RouterModel, np.ndarray, SlotReading, np.ndarray | None]:
        """The model used, the winning row's probabilities, its slot reading, and the transcripts' embeddings."""
        dense = self._dense
        embeddings = None
        if dense is not None:
            model, normalizer, encoder = dense
            embeddings = embed_queries(normalizer, encoder, transcripts)
        else:
            model = self.lexical_model()
        readings: list[SlotReading] = []
        owners: list[int] = []
        for i, transcript in enumerate(transcripts):
            for reading in self.vocabulary.readings(transcript):
                readings.append(reading)
                owners.append(i)
        rows = None if embeddings is None else embeddings[owners]
        probabilities = model.classify(readings, rows)
        # The best-supported reading of the best-supported transcript decides; the first transcript wins ties.
        best = int(np.argmax(probabilities.max(axis=1)))
        # Its slots come from the reading of that transcript that fits the decided intent: the one whose slot types
        # the intent's examples use, with the most values found ("건강보험 지갑으로 보내줘" names the document,
        # "건보공단 정보 공유 취소" the agency), else the deciding reading itself.
        top = int(np.argmax(probabilities[best]))
        fitting = self._slot_types.get(model.classes[top], set())
        candidates = [i for i, owner in enumerate(owners) if owner == owners[best]
                      and int(np.argmax(probabilities[i])) == top and readings[i].found
                      and set(readings[i].found) <= fitting]
        slots_from = max(candidates, key=lambda i: (sum(map(len, readings[i].found.values())), -i), default=best)
        return model, probabilities[best], readings[slots_from], embeddings
