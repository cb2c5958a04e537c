"""Hybrid FAQ search: the public face of the retrieval package.

``FaqSearcher.load_or_build`` gives a searcher whose ``search`` ranks corpus entries for a
question (and the recogniser's other transcripts of it), in the caller's locale, with a
calibrated confidence. The searcher holds an immutable index snapshot; ``reload`` builds a
new one aside and swaps the reference, so searches in flight finish on the old one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.corpus import LOCALES, FaqEntry, load_corpus
from retrieval.dense import Encoder, load_encoder
from retrieval.index import (
    DEFAULT_OUT_OF_DOMAIN,
    FaqIndex,
    IndexCorrupt,
    build_index,
    index_key,
    index_lock,
    load_index,
    save_index,
    stored_key,
)
from retrieval.normalize import TextNormalizer
from retrieval.scoring import RANKERS, confidence_features, entry_evidence, ranking_scores

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 500
MAX_ALTERNATIVES = 10
DISK_CHECK_SECONDS = 10.0


@dataclass(frozen=True)
class SearchHit:
    id: str
    topic: str
    question: str
    answer_speech: str
    answer_text: str
    score: float
    locale: str


@dataclass(frozen=True)
class SearchResponse:
    results: list[SearchHit]
    confident: bool


def index_directory(data_dir: Path) -> Path:
    return Path(data_dir) / "index" / "faq"


class FaqSearcher:
    def __init__(self, index: FaqIndex, normalizer: TextNormalizer, encoder: Encoder,
                 data_dir: Path, corpus_dir: Path, out_of_domain_path: Path = DEFAULT_OUT_OF_DOMAIN) -> None:
        self._index = index
        self._normalizer = normalizer
        self._encoder = encoder
        self._data_dir = Path(data_dir)
        self._corpus_dir = Path(corpus_dir)
        self._out_of_domain_path = Path(out_of_domain_path)
        self._reload_lock = threading.Lock()
        self._next_disk_check = time.monotonic() + DISK_CHECK_SECONDS
        self._prepare_encoder(index)

    def _prepare_encoder(self, index: FaqIndex) -> None:
        """Lets the encoder compute ahead what it can for the corpus's words, which queries use most."""
        self._encoder.prepare([self._normalizer.dense_text(p) for entry in index.entries for p in entry.phrasings])

    @property
    def index(self) -> FaqIndex:
        return self._index

    @property
    def normalizer(self) -> TextNormalizer:
        return self._normalizer

    @property
    def encoder(self) -> Encoder:
        return self._encoder

    @classmethod
    def load_or_build(cls, data_dir: Path, corpus_dir: Path, *, progress: bool | None = None,
                      out_of_domain_path: Path = DEFAULT_OUT_OF_DOMAIN,
                      normalizer: TextNormalizer | None = None,
                      encoder: Encoder | None = None) -> FaqSearcher:
        """Load the persisted index when it matches the corpus, else build and persist one.

        ``normalizer`` and ``encoder`` let a caller that already loaded the models (tests, a
        second corpus) share them; by default they are loaded here (~10 s).
        """
        normalizer = normalizer or TextNormalizer()
        encoder = encoder or load_encoder()
        index = _load_or_build_index(Path(data_dir), Path(corpus_dir), normalizer, encoder,
                                     Path(out_of_domain_path), progress, force=False)
        return cls(index, normalizer, encoder, data_dir, corpus_dir, out_of_domain_path)

    def reload(self, *, force: bool = False) -> FaqIndex:
        """Re-read the corpus, rebuild the index if it changed (or ``force``), and swap it in.

        Searches keep running on the previous index until the new one is ready; a corpus error
        raises and leaves the current index in place.
        """
        with self._reload_lock:
            index = _load_or_build_index(self._data_dir, self._corpus_dir, self._normalizer,
                                         self._encoder, self._out_of_domain_path, False, force=force)
            self._prepare_encoder(index)
            self._index = index
            return index

    def search(self, query: str, locale: str, k: int = 5, alternatives: list[str] | None = None,
               ranker: str = "hybrid", embeddings: np.ndarray | None = None) -> SearchResponse:
        """Entries answering ``query`` in ``locale``, best first, de-duplicated by entry.

        ``alternatives`` are the recogniser's other transcripts; every transcript is scored and
        each entry keeps its best. A hit found through the other language's entry is answered
        with the entry in ``locale`` for the same topic (when the corpus has one).
        ``embeddings``: the vectors of ``query_transcripts(query, alternatives)`` when the caller
        already has them (``embed_queries`` with this searcher's normaliser and encoder).
        """
        if locale not in LOCALES:
            raise ValueError(f"unsupported locale {locale!r} (expected one of {', '.join(LOCALES)})")
        if ranker not in RANKERS:
            raise ValueError(f"unknown ranker {ranker!r}")
        if k < 1:
            raise ValueError("k must be at least 1")
        transcripts = query_transcripts(query, alternatives)
        if not transcripts:
            return SearchResponse(results=[], confident=False)
        self._follow_disk()
        index = self._index  # one snapshot for the whole call, even if reload swaps meanwhile
        evidence = entry_evidence(index.lexical, index.dense, index.entry_starts, self._normalizer,
                                  self._encoder, transcripts, ranker=ranker, embeddings=embeddings)
        calibrator = index.calibrators[ranker]
        # Each entry keeps its best transcript; the corpus-vocabulary share too.
        scores = ranking_scores(ranker, evidence).max(axis=0)
        probability = calibrator.probability(confidence_features(ranker, scores, evidence.coverage.max()))
        hits = _localised_hits(index, scores, probability, locale, k)
        confident = bool(hits) and float(probability.max()) >= calibrator.threshold
        return SearchResponse(results=hits, confident=confident)

    def _follow_disk(self) -> None:
        """Pick up an index another process stored (a reload sent to one gunicorn worker reaches
        the others this way). Checked at most every DISK_CHECK_SECONDS; the load runs in the
        background so no search waits for it."""
        now = time.monotonic()
        if now < self._next_disk_check:
            return
        self._next_disk_check = now + DISK_CHECK_SECONDS
        on_disk = stored_key(index_directory(self._data_dir))
        if on_disk is None or on_disk == self._index.key or self._reload_lock.locked():
            return
        threading.Thread(target=self._reload_quietly, name="faq-index-follow", daemon=True).start()

    def _reload_quietly(self) -> None:
        """Load (never build) the stored index when it matches this process's corpus; a stored
        index built from other inputs is left alone, so two processes never take turns rebuilding."""
        if not self._reload_lock.acquire(blocking=False):
            return
        try:
            corpus = load_corpus(self._corpus_dir)
            key = index_key(corpus, self._encoder.identity, self._out_of_domain_path)
            directory = index_directory(self._data_dir)
            if key != self._index.key and stored_key(directory) == key:
                with index_lock(directory, exclusive=False):
                    index = load_index(directory, corpus, key)
                self._prepare_encoder(index)
                self._index = index
                log.info("picked up the FAQ index another process stored")
        except Exception:  # noqa: BLE001 - whatever is on disk must not take searches down
            log.exception("could not pick up the stored FAQ index; keeping the current one")
        finally:
            self._reload_lock.release()


def query_transcripts(query: str, alternatives: Sequence[str] | None = None) -> list[str]:
    """The texts a search scores for one turn: the transcript and the recogniser's alternatives, bounded,
    empty ones left out."""
    return [t[:MAX_QUERY_CHARS] for t in [query, *(alternatives or [])[:MAX_ALTERNATIVES]] if t and t.strip()]


def localised_order(entries: Sequence[FaqEntry], scores: np.ndarray, locale: str) -> Iterator[tuple[int, int]]:
    """(entry, the entry to answer with) best first: a hit in the other language answers with its topic's
    best entry in `locale`, and each answering entry comes once."""
    order = np.argsort(-scores, kind="stable")
    # Best entry in the requested locale for each topic, by its own score.
    best_in_locale: dict[str, int] = {}
    for i in order:
        entry = entries[i]
        if entry.locale == locale:
            best_in_locale.setdefault(entry.topic, int(i))
    seen: set[int] = set()
    for i in order:
        entry = entries[i]
        target = int(i) if entry.locale == locale else best_in_locale.get(entry.topic, int(i))
        if target not in seen:
            seen.add(target)
            yield int(i), target


def _localised_hits(index: FaqIndex, scores: np.ndarray, probability: np.ndarray, locale: str,
                    k: int) -> list[SearchHit]:
    entries = index.entries
    hits: list[SearchHit] = []
    for i, target in localised_order(entries, scores, locale):
        answer = entries[target]
        hits.append(SearchHit(id=answer.id, topic=answer.topic, question=answer.question,
                              answer_speech=answer.answer_speech, answer_text=answer.answer_text,
                              score=round(float(probability[i]), 4), locale=answer.locale))
        if len(hits) == k:
            break
    return hits


def _load_or_build_index(data_dir: Path, corpus_dir: Path, normalizer: TextNormalizer,
                         encoder: Encoder, out_of_domain_path: Path, progress: bool | None,
                         force: bool) -> FaqIndex:
    corpus = load_corpus(corpus_dir)
    key = index_key(corpus, encoder.identity, out_of_domain_path)
    directory = index_directory(data_dir)
    if not force and stored_key(directory) == key:
        with index_lock(directory, exclusive=False):
            try:
                return load_index(directory, corpus, key)
            except IndexCorrupt as exc:
                log.warning("stored FAQ index is corrupt, rebuilding: %s", exc)
    with index_lock(directory, exclusive=True):
        # Another process may have built it while this one waited for the lock.
        if not force and stored_key(directory) == key:
            try:
                return load_index(directory, corpus, key)
            except IndexCorrupt as exc:
                log.warning("stored FAQ index is corrupt, rebuilding: %s", exc)
        reason = "forced" if force else ("stale" if stored_key(directory) else "missing")
        log.info("building FAQ index (%s) from %d entries", reason, len(corpus.entries))
        index = build_index(corpus, normalizer, encoder, out_of_domain_path, progress=progress)
        save_index(index, directory)
        return index
