"""The router's classifier: trained at build time, calibrated, stored beside the FAQ index and loaded when its
inputs have not changed.

Classes: every intent of data/intents, `faq` (the FAQ corpus's questions and alternates) and `none` (the
out-of-domain requests of data/retrieval/out_of_domain.yaml, and the intents' own sentence frames said about the
everyday things of out_of_domain_objects.yaml: "택배 상태 알려줘"). The intent examples are multiplied by the
variant generator; FAQ phrasings and out-of-domain requests get recogniser-like variants. A multinomial logistic
regression (scikit-learn, fixed seed, one thread) reads the features of understanding/features.py. One
temperature, fitted on out-of-fold predictions (folds keep each example's variants together), makes its
probabilities calibrated; the same out-of-fold predictions find the FAQ phrasings that are really an intent's
command ("stop sharing my information"), which the final fit leaves out. Two models are kept: `lexical` (no Kiwi,
no encoder: routing works from the first request and without models) and `dense` (Kiwi morphemes and the sentence
embedding as well).

Stored under ``<data_dir>/index/router/<kind>/`` as ``manifest.json`` (key, checksum) and ``model.npz`` (no
pickles). The key hashes every input: examples, slot vocabularies, FAQ corpus, out-of-domain sets, encoder
identity, normaliser version and this package's code.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml
from rapidfuzz import fuzz
from scipy import sparse

from retrieval.corpus import Corpus, FaqEntry
from retrieval.dense import Encoder
from retrieval.index import index_lock, publish_artifact, stored_key, verified_manifest
from retrieval.normalize import NORMALIZER_VERSION, TextNormalizer
from settings import PROJECT_DATA
from understanding.examples import IntentExamples
from understanding.features import FEATURES_VERSION, Featurizer
from understanding.slots import SlotReading, SlotVocabulary, squash
from understanding.variants import VariantGenerator, stable_key

log = logging.getLogger(__name__)

MODEL_FORMAT = "router-model/1"
FAQ = "faq"
NONE = "none"
SEED = 20261127
LEXICAL, DENSE = "lexical", "dense"
# L2 strength of the logistic regression (sklearn's C; larger fits the training variants more closely).
REGULARISATION_C = 8.0
CALIBRATION_FOLDS = 3
# Class weights beyond "every class weighs the same": the FAQ is one class but as varied as all the intents.
CLASS_PRIOR: dict[str, float] = {}
# An FAQ phrasing this close to an intent example (rapidfuzz ratio of the spaceless forms) is that intent's, not
# the FAQ's: "도움말" is both an FAQ alternate and the help command, and the command wins.
SAME_AS_EXAMPLE = 90.0
# An FAQ row whose out-of-fold prediction is an intent this likely is that intent's, not the FAQ's.
CLAIMED_BY_INTENT = 0.9
# Recogniser-like variants of each FAQ phrasing and out-of-domain request.
FAQ_VARIANTS = 1
NONE_VARIANTS = 3
# Out-of-domain sentences made from each intent example with a slot (its frame, about an everyday object).
DECOYS_PER_EXAMPLE = 2
DEFAULT_OUT_OF_DOMAIN_OBJECTS = PROJECT_DATA / "retrieval" / "out_of_domain_objects.yaml"
# Questions about the service in a personal request's words, trained as the FAQ class, and the variants of each.
DEFAULT_SERVICE_QUESTIONS = PROJECT_DATA / "retrieval" / "service_questions.yaml"
SERVICE_QUESTION_VARIANTS = 8
# Commands for devices, apps and shops said with the intents' verbs ("에어컨 꺼 줘", "link my uber account"),
# trained as "none", and the variants of each (politeness, spacing, a misheard syllable).
DEFAULT_OUT_OF_DOMAIN_COMMANDS = PROJECT_DATA / "retrieval" / "out_of_domain_commands.yaml"
COMMAND_VARIANTS = 6
PACKAGE_DIR = Path(__file__).resolve().parent
_KEYED_MODULES = ("slots.py", "examples.py", "variants.py", "features.py", "model.py")
_FILES = ("model.npz",)


class ModelCorrupt(RuntimeError):
    """A stored model exists but cannot be trusted."""


@dataclass(frozen=True)
class TrainingRow:
    text: str
    label: str
    locale: str
    group: int  # the example (or FAQ entry, or request) the row came from
    # A row from the FAQ corpus, which the final fit may leave out when the intents claim it (see `train`).
    from_corpus: bool = False


@dataclass(frozen=True)
class TrainingInputs:
    examples: IntentExamples
    vocabulary: SlotVocabulary
    faq_entries: Sequence[FaqEntry]
    out_of_domain: dict[str, list[str]]          # locale → requests
    out_of_domain_objects: dict[str, list[str]]  # locale → everyday things that are not government business
    service_questions: dict[str, list[str]]      # locale → questions about the service in a request's words
    out_of_domain_commands: dict[str, list[str]]  # locale → commands we do not serve, in the intents' verbs
    corpus_hash: str
    out_of_domain_bytes: bytes
    slots_bytes: bytes

    @classmethod
    def load(cls, intents_dir: Path, slots_dir: Path, corpus: Corpus, out_of_domain_path: Path,
             objects_path: Path = DEFAULT_OUT_OF_DOMAIN_OBJECTS,
             service_questions_path: Path = DEFAULT_SERVICE_QUESTIONS,
             commands_path: Path = DEFAULT_OUT_OF_DOMAIN_COMMANDS) -> TrainingInputs:
        requests, objects = Path(out_of_domain_path).read_bytes(), Path(objects_path).read_bytes()
        questions, commands = Path(service_questions_path).read_bytes(), Path(commands_path).read_bytes()
        slots_bytes = b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in sorted(Path(slots_dir).glob("*.yaml")))
        return cls(examples=IntentExamples.load(intents_dir), vocabulary=SlotVocabulary.load(slots_dir),
                   faq_entries=tuple(corpus.entries), out_of_domain=_texts_by_locale(requests),
                   out_of_domain_objects=_texts_by_locale(objects), service_questions=_texts_by_locale(questions),
                   out_of_domain_commands=_texts_by_locale(commands), corpus_hash=corpus.content_hash,
                   out_of_domain_bytes=b"\0".join((requests, objects, questions, commands)),
                   slots_bytes=slots_bytes)

    def key(self, kind: str, encoder_identity: str | None) -> str:
        digest = hashlib.sha256()
        for part in (MODEL_FORMAT, kind, FEATURES_VERSION, NORMALIZER_VERSION if kind == DENSE else "-",
                     encoder_identity or "-", self.examples.content_hash, self.corpus_hash):
            digest.update(part.encode() + b"\0")
        digest.update(self.slots_bytes + b"\0" + self.out_of_domain_bytes)
        for name in _KEYED_MODULES:
            digest.update((PACKAGE_DIR / name).read_bytes())
        return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class RouterModel:
    kind: str                      # LEXICAL | DENSE
    classes: tuple[str, ...]
    weights: np.ndarray            # (n_classes, n_features) float32
    bias: np.ndarray               # (n_classes,)
    temperature: float
    featurizer: Featurizer
    key: str
    train_seconds: float = 0.0
    rows: int = 0

    def probabilities(self, features: sparse.csr_matrix) -> np.ndarray:
        """Calibrated class probabilities, one row per feature row."""
        logits = np.asarray(features @ self.weights.T) + self.bias
        return _softmax(logits / self.temperature)

    def classify(self, readings: Sequence[SlotReading], embeddings: np.ndarray | None) -> np.ndarray:
        """`probabilities` of a turn's few readings without building a sparse matrix (the per-turn path):
        each row gathers the weights of its non-zero columns."""
        by_feature = self._by_feature
        logits = np.empty((len(readings), len(self.classes)), dtype=np.float32)
        for i, reading in enumerate(readings):
            columns, values = self.featurizer.row(reading)
            logits[i] = values @ by_feature[columns]
        if embeddings is not None:
            logits += self.featurizer.dense_block(embeddings) @ by_feature[self.featurizer.width:]
        return _softmax((logits + self.bias) / self.temperature)

    @cached_property
    def _by_feature(self) -> np.ndarray:
        """The weights as (n_features, n_classes), so that a row's columns are contiguous rows here."""
        return np.ascontiguousarray(self.weights.T)


def _texts_by_locale(raw: bytes) -> dict[str, list[str]]:
    data = yaml.safe_load(raw.decode("utf-8")) or {}
    return {str(locale): [str(t) for t in texts] for locale, texts in data.items()}


def training_rows(inputs: TrainingInputs) -> list[TrainingRow]:
    """Intent examples with their generated variants, FAQ phrasings and out-of-domain requests, in a fixed order.
    Each row's group is a number of its source (example, FAQ entry, request) alone, so that a change to one
    source moves neither the others' variants nor their calibration folds."""
    generator = VariantGenerator(inputs.vocabulary, SEED)
    rows = [TrainingRow(text, intent, locale, group)
            for text, intent, locale, group in generator.for_examples(inputs.examples.examples)]
    example_forms = [squash(e.template) for e in inputs.examples.examples]
    for entry in inputs.faq_entries:
        group = stable_key("faq", entry.locale, entry.id)
        for phrasing in entry.phrasings:
            form = squash(phrasing)
            if any(fuzz.ratio(form, example) >= SAME_AS_EXAMPLE for example in example_forms):
                continue
            rows.extend(TrainingRow(t, FAQ, entry.locale, group, from_corpus=True)
                        for t in generator.noisy(phrasing, FAQ_VARIANTS))
    for locale, questions in sorted(inputs.service_questions.items()):
        for question in questions:
            group = stable_key("service-question", locale, question)
            rows.extend(TrainingRow(t, FAQ, locale, group)
                        for t in generator.variants(question, locale, SERVICE_QUESTION_VARIANTS, key=FAQ))
    for locale, requests in sorted(inputs.out_of_domain.items()):
        for request in requests:
            group = stable_key("out-of-domain", locale, request)
            rows.extend(TrainingRow(t, NONE, locale, group) for t in generator.noisy(request, NONE_VARIANTS))
    for locale, commands in sorted(inputs.out_of_domain_commands.items()):
        for command in commands:
            group = stable_key("command", locale, command)
            rows.extend(TrainingRow(t, NONE, locale, group)
                        for t in generator.variants(command, locale, COMMAND_VARIANTS, lose_words=False, key=NONE))
    for example in inputs.examples.examples:
        objects = inputs.out_of_domain_objects.get(example.locale, [])
        decoys = generator.decoys(example.template, example.locale, objects, DECOYS_PER_EXAMPLE)
        group = stable_key("decoy", example.intent, example.locale, example.template)
        rows.extend(TrainingRow(t, NONE, example.locale, group) for t in decoys)
    return rows


def embed(normalizer: TextNormalizer, encoder: Encoder, texts: list[str], batch: int = 64) -> np.ndarray:
    """The encoder's vectors of the normaliser's dense text: what the FAQ search embeds for a query."""
    from retrieval.scoring import embed_queries

    parts = [embed_queries(normalizer, encoder, texts[i:i + batch]) for i in range(0, len(texts), batch)]
    return np.vstack(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def train(inputs: TrainingInputs, kind: str, normalizer: TextNormalizer | None = None,
          encoder: Encoder | None = None) -> RouterModel:
    """Trains and calibrates one model. DENSE needs the normaliser and the encoder; LEXICAL uses neither."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    if kind == DENSE and (normalizer is None or encoder is None):
        raise ValueError("the dense router model needs the normaliser and the encoder")
    started = time.perf_counter()
    rows = training_rows(inputs)
    featurizer = Featurizer(normalizer if kind == DENSE else None)
    readings = [inputs.vocabulary.read(r.text) for r in rows]
    groups = [r.group for r in rows]
    term_lists, unknown = featurizer.fit(readings, groups, [r.label != NONE for r in rows])
    classes = tuple(sorted({r.label for r in rows}))
    y = np.asarray([classes.index(r.label) for r in rows])
    embeddings = embed(normalizer, encoder, [r.text for r in rows]) if kind == DENSE else None
    x = featurizer.matrix(readings, embeddings, term_lists, unknown)
    fold_groups = np.asarray(groups)

    # Every class weighs the same in total ("balanced"), times its prior below.
    counts = np.bincount(y, minlength=len(classes))
    weights_by_class = {i: len(y) / (len(classes) * counts[i]) * CLASS_PRIOR.get(label, 1.0)
                        for i, label in enumerate(classes)}

    def classifier(start: tuple[np.ndarray, np.ndarray] | None = None) -> LogisticRegression:
        """The learner; `start` (coefficients, intercepts) of a fit on most of the same rows makes the solver
        start there. The optimum is the same (the loss is strictly convex), it is reached in fewer steps."""
        model = LogisticRegression(C=REGULARISATION_C, class_weight=weights_by_class, max_iter=500, tol=1e-4,
                                   random_state=SEED, warm_start=start is not None)
        if start is not None:
            model.coef_, model.intercept_ = start[0].copy(), start[1].copy()
        return model

    # One thread: the fits are small, and on a shared machine more threads mostly wait for each other.
    with threadpool_limits(1):
        # Out-of-fold logits: each example's variants are scored by a model that never saw any of them.
        logits = np.zeros((len(rows), len(classes)))
        # A source's fold is a function of its group number alone (not of how many other sources there are, as
        # in GroupKFold's balancing), so adding one example leaves every other example in its fold.
        folds = fold_groups % CALIBRATION_FOLDS
        starts: list[tuple[np.ndarray, np.ndarray]] = []
        for fold_number in range(CALIBRATION_FOLDS):
            fit_rows, held_rows = np.flatnonzero(folds != fold_number), np.flatnonzero(folds == fold_number)
            fold = classifier(starts[0] if starts else None).fit(x[fit_rows], y[fit_rows])
            if len(fold.classes_) == len(classes):
                starts.append((fold.coef_, fold.intercept_))
            held = np.full((len(held_rows), len(classes)), -1e4)
            held[:, fold.classes_] = fold.decision_function(x[held_rows])
            logits[held_rows] = held
        temperature = fit_temperature(logits, y)
        # An FAQ phrasing that the intents' own examples claim out of fold ("정보 공유 동의 철회", "stop sharing
        # my information": commands the corpus lists as ways to ask about them) teaches the FAQ class the very
        # words of an intent; the final model leaves such rows out.
        out_of_fold = _softmax(logits / temperature)
        intents = np.asarray([label not in (FAQ, NONE) for label in classes])
        from_corpus = np.asarray([r.from_corpus for r in rows])
        claimed = from_corpus & intents[out_of_fold.argmax(axis=1)] & (
            out_of_fold.max(axis=1) >= CLAIMED_BY_INTENT) if FAQ in classes else np.zeros(len(y), dtype=bool)
        keep = ~claimed
        final = classifier((np.mean([c for c, _ in starts], axis=0), np.mean([b for _, b in starts], axis=0))
                           if starts else None).fit(x[keep], y[keep])
    weights = np.zeros((len(classes), x.shape[1]), dtype=np.float32)
    bias = np.zeros(len(classes), dtype=np.float32)
    weights[final.classes_] = final.coef_
    bias[final.classes_] = final.intercept_
    elapsed = time.perf_counter() - started
    log.info("trained the %s router model: %d rows (%d FAQ rows left out as an intent's), %d features, "
             "temperature %.2f, %.1f s", kind, len(rows), int(claimed.sum()), x.shape[1], temperature, elapsed)
    return RouterModel(kind=kind, classes=classes, weights=weights, bias=bias, temperature=temperature,
                       featurizer=featurizer, key=inputs.key(kind, encoder.identity if encoder else None),
                       train_seconds=elapsed, rows=len(rows))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the log loss of softmax(logits / T) (temperature scaling)."""
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(labels))

    def loss(log_t: float) -> float:
        p = _softmax(logits / np.exp(log_t))
        return float(-np.mean(np.log(np.clip(p[rows, labels], 1e-12, 1.0))))

    result = minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded")
    return float(np.exp(result.x))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# -- persistence -------------------------------------------------------------------------------------------

def model_directory(data_dir: Path, kind: str) -> Path:
    return Path(data_dir) / "index" / "router" / kind


def save_model(model: RouterModel, directory: Path) -> None:
    """Writes the model atomically (see `publish_artifact`)."""
    def write(staging: Path) -> None:
        featurizer = model.featurizer
        lexical = sorted(featurizer.lexical_vocabulary, key=featurizer.lexical_vocabulary.__getitem__)
        evidence = sorted(featurizer.evidence_vocabulary, key=featurizer.evidence_vocabulary.__getitem__)
        with (staging / "model.npz").open("wb") as f:
            np.savez(f, classes=np.asarray(model.classes, dtype=str), weights=model.weights, bias=model.bias,
                     temperature=np.asarray([model.temperature]), lexical_terms=np.asarray(lexical, dtype=str),
                     idf=featurizer.idf, evidence_terms=np.asarray(evidence, dtype=str),
                     known_words=np.asarray(sorted(featurizer.known_words), dtype=str))

    publish_artifact(directory, _FILES, {"format": MODEL_FORMAT, "kind": model.kind, "key": model.key,
                                         "rows": model.rows, "classes": list(model.classes),
                                         "train_seconds": round(model.train_seconds, 2)}, write)


def load_model(directory: Path, expected_key: str, normalizer: TextNormalizer | None) -> RouterModel:
    directory = Path(directory)
    manifest = verified_manifest(directory, expected_key, _FILES, ModelCorrupt, "router model")
    try:
        with np.load(directory / "model.npz", allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        lexical = {str(t): i for i, t in enumerate(arrays["lexical_terms"])}
        evidence = {str(t): i for i, t in enumerate(arrays["evidence_terms"])}
        kind = str(manifest["kind"])
        featurizer = Featurizer(normalizer if kind == DENSE else None, lexical, arrays["idf"].astype(np.float32),
                                evidence, frozenset(str(w) for w in arrays["known_words"]))
        model = RouterModel(kind=kind, classes=tuple(str(c) for c in arrays["classes"]),
                            weights=arrays["weights"].astype(np.float32), bias=arrays["bias"].astype(np.float32),
                            temperature=float(arrays["temperature"][0]), featurizer=featurizer, key=expected_key,
                            train_seconds=float(manifest.get("train_seconds", 0.0)), rows=int(manifest.get("rows", 0)))
    except (OSError, ValueError, KeyError) as exc:
        raise ModelCorrupt(f"cannot read the router model in {directory}: {exc}") from exc
    if model.weights.shape[0] != len(model.classes) or len(featurizer.idf) != len(lexical):
        raise ModelCorrupt(f"router model arrays in {directory} disagree in size")
    return model


def load_or_train(data_dir: Path, inputs: TrainingInputs, kind: str, normalizer: TextNormalizer | None = None,
                  encoder: Encoder | None = None, force: bool = False) -> RouterModel:
    """The stored model when its key matches, else a new one, trained and stored (one builder at a time)."""
    key = inputs.key(kind, encoder.identity if kind == DENSE and encoder else None)
    directory = model_directory(data_dir, kind)
    for attempt in ("shared", "exclusive"):
        with index_lock(directory, exclusive=attempt == "exclusive"):
            if not force and stored_key(directory) == key:
                try:
                    return load_model(directory, key, normalizer)
                except ModelCorrupt as exc:
                    log.warning("stored router model is corrupt, retraining: %s", exc)
            if attempt == "exclusive":
                model = train(inputs, kind, normalizer, encoder)
                save_model(model, directory)
                return model
    raise AssertionError("unreachable")

