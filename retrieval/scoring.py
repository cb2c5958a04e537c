"""Per-entry evidence from both rankers, the fused ranking score and the confidence features.

A query is scored against every phrasing (row); an entry's evidence from a ranker is its best
phrasing. ``dense`` is a cosine similarity, ``lexical`` the IDF-weighted share of the query the
best phrasing covers (BM25 divided by the query's IDF mass). The hybrid ranks by
``dense + LEXICAL_WEIGHT * lexical``; its confidence also reads how much of the query's
vocabulary the corpus knows at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retrieval.dense import DenseIndex, Encoder
from retrieval.lexical import Bm25Index
from retrieval.normalize import TextNormalizer

RANKERS = ("hybrid", "lexical", "dense")
# Recall@1 on the dev set's "tune" split is flat for weights 0.75-1.5 (0.943; 0.25: 0.927,
# 0.5: 0.939, 3: 0.939); equal weight sits in the middle of that plateau.
LEXICAL_WEIGHT = 1.0


@dataclass(frozen=True)
class EntryEvidence:
    dense: np.ndarray     # (n_queries, n_entries) best cosine per entry
    lexical: np.ndarray   # (n_queries, n_entries) best normalised BM25 per entry
    coverage: np.ndarray  # (n_queries,) share of the query's words the corpus uses


def ranking_scores(ranker: str, evidence: EntryEvidence) -> np.ndarray:
    if ranker == "lexical":
        return evidence.lexical
    if ranker == "dense":
        return evidence.dense
    if ranker == "hybrid":
        return evidence.dense + LEXICAL_WEIGHT * evidence.lexical
    raise ValueError(f"unknown ranker {ranker!r} (expected one of {', '.join(RANKERS)})")


def confidence_features(ranker: str, scores: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Features of (query, entry) pairs for the calibrator; ``scores`` (…, n) and ``coverage``
    broadcastable to it. The single rankers read only their own score."""
    if ranker == "hybrid":
        return np.stack([scores, np.broadcast_to(coverage, scores.shape)], axis=-1)
    return scores[..., None]


def embed_queries(normalizer: TextNormalizer, encoder: Encoder, texts: list[str]) -> np.ndarray:
    """The dense ranker's query vectors: the encoder's embedding of each text's ``dense_text``. The intent
    router embeds a turn with this too and hands the vectors to the search, so a turn is embedded once."""
    return encoder.encode([normalizer.dense_text(t) for t in texts])


def entry_evidence(
    lexical_index: Bm25Index,
    dense_index: DenseIndex,
    entry_starts: np.ndarray,
    normalizer: TextNormalizer,
    encoder: Encoder,
    texts: list[str],
    exclude_rows: list[int] | None = None,
    ranker: str = "hybrid",
    embeddings: np.ndarray | None = None,
) -> EntryEvidence:
    """Score ``texts`` against every phrasing and reduce to entries.

    ``exclude_rows`` (one per text) hides that text's own phrasing: used when the corpus's
    phrasings are searched as calibration queries. A single ``ranker`` skips the other's work.
    ``embeddings`` (one row per text, from ``embed_queries``) saves encoding texts already embedded.
    """
    n_rows = lexical_index.n_docs
    excluded = exclude_rows if exclude_rows is not None else [-1] * len(texts)
    lex_rows = np.zeros((len(texts), n_rows), dtype=np.float32)
    dense_rows = np.full((len(texts), n_rows), -1.0, dtype=np.float32)  # the lexical ranker alone: no dense score
    coverage = np.zeros(len(texts), dtype=np.float32)
    if ranker != "dense":
        for i, text in enumerate(texts):
            terms = normalizer.lexical_terms(text)
            scores, mass = lexical_index.scores(terms)
            if mass > 0:
                lex_rows[i] = scores / mass
            coverage[i] = lexical_index.known_share(terms, excluded[i])
    if ranker != "lexical":
        if embeddings is not None and len(embeddings) != len(texts):
            raise ValueError("one embedding per text")
        vectors = embeddings if embeddings is not None else embed_queries(normalizer, encoder, texts)
        dense_rows = dense_index.all_scores(vectors)
    rows = np.asarray(excluded, dtype=np.int64)
    hidden = np.nonzero(rows >= 0)[0]
    lex_rows[hidden, rows[hidden]] = 0.0
    dense_rows[hidden, rows[hidden]] = -1.0
    return EntryEvidence(
        dense=np.maximum.reduceat(dense_rows, entry_starts, axis=1),
        lexical=np.maximum.reduceat(lex_rows, entry_starts, axis=1),
        coverage=coverage,
    )
