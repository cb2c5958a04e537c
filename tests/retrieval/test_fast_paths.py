"""The per-turn fast paths compute what the reference computations compute: the encoder's forward pass against the
package's own, the BM25 column gather against scipy's column slice, the dense scores against a FAISS search, and,
end to end, the router's probabilities and the FAQ ranking with the package's embeddings against the fast ones, on
the NLU tuning split and every FAQ question."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from retrieval.dense import SentenceEncoder
from retrieval.scoring import embed_queries
from retrieval.search import FaqSearcher
from retrieval.use_forward import UseForward
from understanding.router import IntentRouter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tuning_texts() -> list[str]:
    rows = yaml.safe_load((ROOT / "tests" / "fixtures" / "nlu" / "tuning.yaml").read_text(encoding="utf-8"))
    return [row["text"] for row in rows]


@pytest.fixture(scope="module")
def faq_questions(searcher) -> list[str]:
    return [entry.question for entry in searcher.index.entries]


class PackageEncoder:
    """The app's encoder with the package's own forward pass: the reference the fast path is held to."""

    def __init__(self, encoder: SentenceEncoder) -> None:
        self._encoder = encoder
        self.identity, self.dimension = encoder.identity, encoder.dimension

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._encoder.reference_encode(texts)

    def prepare(self, texts: list[str]) -> None:
        pass


def test_the_forward_pass_gives_the_packages_embeddings(encoder, normalizer, tuning_texts, faq_questions):
    assert isinstance(encoder, SentenceEncoder)
    texts = tuning_texts + faq_questions
    dense_texts = [normalizer.dense_text(t) for t in texts]
    for batch in (texts, dense_texts):
        fast, reference = encoder.encode(batch), encoder.reference_encode(batch)
        assert fast.shape == reference.shape == (len(batch), 512) and fast.dtype == np.float32
        assert np.abs(fast - reference).max() < 1e-5
        assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    # One text at a time (a turn) as well as in batches (the index build).
    for text in dense_texts[:60]:
        assert np.abs(encoder.encode([text]) - encoder.reference_encode([text])).max() < 1e-5


def test_the_encoder_runs_blas_on_one_thread_even_after_someone_set_more(encoder):
    from threadpoolctl import ThreadpoolController, threadpool_limits

    # numpy's own BLAS: the one its matrix products (the encoder's) run on.
    numpy_blas = [library for library in ThreadpoolController().select(user_api="blas").lib_controllers
                  if "numpy" in library.filepath]
    assert numpy_blas
    threadpool_limits(limits=2, user_api="blas")  # what a `threadpool_limits(1)` block entered earlier restores
    assert all(library.get_num_threads() == 2 for library in numpy_blas)
    encoder.encode(["등본 떼려면 어떻게 해"])
    assert all(library.get_num_threads() == 1 for library in numpy_blas)


def test_prepared_tokens_change_no_embedding(encoder, normalizer, tuning_texts, faq_questions):
    """A sentence whose tokens were computed ahead embeds as one whose tokens are computed on the spot, including
    a text with no prepared token at all and one of a single token."""
    backend = encoder._model._model
    cold, warm = UseForward(backend), UseForward(backend)
    assert warm.prepare(faq_questions) > 300 and warm.prepare(faq_questions) == 0
    texts = tuning_texts[:80] + ["", "x", "ㅋㅋㅋ 𝄞 ¿qué tal?", "등본"]
    for text in texts:
        assert np.abs(warm.encode([text]) - cold.encode([text])).max() < 1e-6
        assert np.array_equal(warm.encode([text]), warm.encode([text]))  # deterministic
    assert np.abs(warm.encode(texts) - encoder.reference_encode(texts)).max() < 1e-5


def test_bm25_scores_equal_a_scipy_column_slice(searcher, normalizer, tuning_texts, faq_questions):
    index = searcher.index.lexical
    for text in tuning_texts + faq_questions + ["인간증명서 발급받는 곳", "quux zzyzx"]:
        terms = normalizer.lexical_terms(text)
        columns, weights, mass = index.query_columns(terms)
        expected = (np.asarray(index.weights[:, np.asarray(columns, dtype=np.int64)]
                               @ np.asarray(weights, dtype=np.float32), dtype=np.float32).ravel()
                    if columns else np.zeros(index.n_docs, dtype=np.float32))
        scores, got_mass = index.scores(terms)
        assert scores.dtype == np.float32 and np.array_equal(scores, expected), text
        assert got_mass == mass


def test_dense_scores_equal_a_faiss_search(searcher, normalizer, encoder, tuning_texts):
    dense = searcher.index.dense
    vectors = embed_queries(normalizer, encoder, tuning_texts)
    similarities, ids = dense.scores(vectors, k=dense.n_docs)
    expected = np.zeros((len(tuning_texts), dense.n_docs), dtype=np.float32)
    np.put_along_axis(expected, ids, similarities, axis=1)
    assert np.abs(dense.all_scores(vectors) - expected).max() < 1e-5


def test_router_probabilities_and_faq_ranking_are_the_packages(services, searcher, tuning_texts, faq_questions):
    """The whole turn's understanding and search with the package's forward pass and with the fast one."""
    fast_router: IntentRouter = services.router
    model, normalizer, encoder = fast_router._dense
    reference_encoder = PackageEncoder(encoder)
    reference_router = IntentRouter(fast_router.examples, fast_router.vocabulary, fast_router.lexical_model)
    reference_router.attach(model, normalizer, reference_encoder)
    reference_searcher = FaqSearcher(searcher.index, normalizer, reference_encoder, Path("/nonexistent"),
                                     Path("/nonexistent"))
    reference_searcher._follow_disk = lambda: None  # the reference reads the app's index, never a disk
    same_top = 0
    for text in tuning_texts + faq_questions:
        fast, reference = fast_router.route(text), reference_router.route(text)
        assert fast.decision == reference.decision and fast.slots == reference.slots, text
        assert [label for label, _ in fast.candidates] == [label for label, _ in reference.candidates], text
        assert np.allclose([p for _, p in fast.candidates], [p for _, p in reference.candidates], atol=2e-4), text
        for locale in ("ko-KR", "en-US"):
            got = searcher.search(text, locale, k=5, embeddings=fast.embeddings)
            expected = reference_searcher.search(text, locale, k=5, embeddings=reference.embeddings)
            assert [h.id for h in got.results] == [h.id for h in expected.results], text
            assert np.allclose([h.score for h in got.results], [h.score for h in expected.results], atol=2e-4)
            assert got.confident == expected.confident, text
            same_top += 1
    assert same_top == 2 * (len(tuning_texts) + len(faq_questions))
