"""Building the FAQ index and persisting it under ``<data_dir>/index/faq``.

The directory holds ``manifest.json`` (the index key, file checksums, build facts),
``dense.faiss`` (FAISS flat inner-product index of every phrasing) and ``index.npz`` (the
BM25 matrix, the phrasing → entry map and the calibrators). The key hashes the corpus files,
the calibration data, the encoder and the code that decides what goes into the index, so a
change to any of them makes a stored index stale. A checksum mismatch or unreadable file
counts as corrupt and the index is rebuilt.

Builds take an exclusive ``fcntl`` lock and readers a shared one, so several worker
processes starting together build once and the rest load the result; a new index is written
into a temporary directory and renamed into place.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from retrieval.calibration import CalibrationQuery, Calibrator, fit_calibrators, recogniser_variants
from retrieval.corpus import Corpus, FaqEntry
from retrieval.dense import DenseIndex, Encoder
from retrieval.lexical import Bm25Index
from retrieval.normalize import NORMALIZER_VERSION, TextNormalizer
from retrieval.scoring import RANKERS, EntryEvidence, entry_evidence
from settings import PROJECT_DATA

log = logging.getLogger(__name__)

INDEX_FORMAT = "faq-index/1"
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_OUT_OF_DOMAIN = PROJECT_DATA / "retrieval" / "out_of_domain.yaml"
# The modules whose code decides the index content; editing one makes stored indexes stale.
_KEYED_MODULES = ("normalize.py", "lexical.py", "dense.py", "use_forward.py", "scoring.py", "calibration.py",
                  "index.py")
_FILES = ("dense.faiss", "index.npz")


class IndexCorrupt(RuntimeError):
    """A stored index exists but cannot be trusted (checksum mismatch, unreadable, inconsistent)."""


@dataclass(frozen=True)
class FaqIndex:
    entries: tuple[FaqEntry, ...]
    row_entry: np.ndarray       # (n_rows,) entry index of each phrasing; rows are grouped by entry
    entry_starts: np.ndarray    # (n_entries,) first row of each entry
    lexical: Bm25Index
    dense: DenseIndex
    calibrators: dict[str, Calibrator]
    key: str
    build_seconds: float = 0.0

    @property
    def entry_topics(self) -> np.ndarray:
        return np.asarray([e.topic for e in self.entries], dtype=object)


def index_key(corpus: Corpus, encoder_identity: str, out_of_domain_path: Path) -> str:
    digest = hashlib.sha256()
    for part in (INDEX_FORMAT, NORMALIZER_VERSION, encoder_identity, corpus.content_hash):
        digest.update(part.encode() + b"\0")
    digest.update(Path(out_of_domain_path).read_bytes())
    for name in _KEYED_MODULES:
        digest.update((PACKAGE_DIR / name).read_bytes())
    return digest.hexdigest()


def load_out_of_domain(path: Path) -> list[str]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return [str(text) for texts in data.values() for text in texts]


def phrasing_rows(entries: Sequence[FaqEntry]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every phrasing of every entry as one row: (texts, the entry of each row, each entry's first row)."""
    texts: list[str] = []
    row_entry: list[int] = []
    for entry_index, entry in enumerate(entries):
        for phrasing in entry.phrasings:
            texts.append(phrasing)
            row_entry.append(entry_index)
    rows = np.asarray(row_entry, dtype=np.int64)
    return texts, rows, np.searchsorted(rows, np.arange(len(entries))).astype(np.int64)


def build_index(
    corpus: Corpus,
    normalizer: TextNormalizer,
    encoder: Encoder,
    out_of_domain_path: Path = DEFAULT_OUT_OF_DOMAIN,
    progress: bool | None = None,
) -> FaqIndex:
    """Index every phrasing of every entry and fit the calibrators; ``progress=None`` shows
    bars only on a terminal."""
    started = time.perf_counter()
    bar = {"disable": None if progress is None else not progress, "leave": False}
    entries = corpus.entries
    texts, rows, entry_starts = phrasing_rows(entries)

    lexical = Bm25Index.build([normalizer.lexical_terms(t) for t in tqdm(texts, desc="lexical", **bar)])
    dense_texts = [normalizer.dense_text(t) for t in texts]
    vectors = np.vstack([encoder.encode(dense_texts[i:i + 64])
                         for i in tqdm(range(0, len(texts), 64), desc="dense", **bar)])
    dense = DenseIndex(vectors)

    # Calibration: each phrasing (and recogniser-like corruptions of it) searched with that
    # phrasing hidden, plus requests from outside the domain.
    rng = np.random.default_rng(20261126)
    queries = []
    for row, text in enumerate(texts):
        topic = entries[rows[row]].topic
        queries.append(CalibrationQuery(text, topic, row))
        queries.extend(CalibrationQuery(v, topic, row) for v in recogniser_variants(text, rng))
    out_of_domain_path = Path(out_of_domain_path)
    queries.extend(CalibrationQuery(t, None, -1) for t in load_out_of_domain(out_of_domain_path))
    parts = []
    for i in tqdm(range(0, len(queries), 128), desc="calibrate", **bar):
        batch = queries[i:i + 128]
        parts.append(entry_evidence(lexical, dense, entry_starts, normalizer, encoder,
                                    [q.text for q in batch], exclude_rows=[q.row for q in batch]))
    evidence = EntryEvidence(dense=np.vstack([p.dense for p in parts]),
                             lexical=np.vstack([p.lexical for p in parts]),
                             coverage=np.concatenate([p.coverage for p in parts]))
    topics = np.asarray([e.topic for e in entries], dtype=object)
    calibrators = fit_calibrators(evidence, queries, topics)
    elapsed = time.perf_counter() - started
    log.info("built FAQ index: %d entries, %d phrasings, %d calibration queries in %.1f s",
             len(entries), len(texts), len(queries), elapsed)
    return FaqIndex(entries=entries, row_entry=rows, entry_starts=entry_starts, lexical=lexical,
                    dense=dense, calibrators=calibrators,
                    key=index_key(corpus, encoder.identity, out_of_domain_path), build_seconds=elapsed)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def publish_artifact(directory: Path, files: Sequence[str], manifest: dict[str, Any],
                     write: Callable[[Path], None]) -> None:
    """Builds an artefact (FAQ index, router model) in a temporary sibling of ``directory`` with ``write``, seals it
    with a manifest of ``files``' digests, then puts it in place by renames, so that a reader (or a crash) sees the
    old artefact or the new one, never half of one."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        write(staging)
        sealed = {**manifest, "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "sha256": {name: file_sha256(staging / name) for name in files}}
        (staging / "manifest.json").write_text(json.dumps(sealed, indent=2))
        retired = None
        if directory.exists():
            retired = directory.with_name(f".{directory.name}.retired-{os.getpid()}-{time.monotonic_ns()}")
            directory.rename(retired)
        staging.rename(directory)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def save_index(index: FaqIndex, directory: Path) -> None:
    """Write ``index`` to ``directory`` atomically (see `publish_artifact`)."""
    import faiss

    def write(staging: Path) -> None:
        flat = faiss.IndexFlatIP(index.dense.vectors.shape[1])
        flat.add(index.dense.vectors)
        faiss.write_index(flat, str(staging / "dense.faiss"))
        arrays = index.lexical.to_arrays()
        arrays["row_entry"] = index.row_entry
        arrays["entry_ids"] = np.asarray([e.id for e in index.entries], dtype=str)
        for ranker in RANKERS:
            arrays[f"calibrator_{ranker}"] = index.calibrators[ranker].to_array()
        with (staging / "index.npz").open("wb") as f:
            np.savez(f, **arrays)

    publish_artifact(directory, _FILES, {"format": INDEX_FORMAT, "key": index.key, "entries": len(index.entries),
                                         "phrasings": int(len(index.row_entry)),
                                         "build_seconds": round(index.build_seconds, 2)}, write)


def stored_key(directory: Path) -> str | None:
    """The key of the artefact (FAQ index, router model) stored in ``directory``, or None when there is none."""
    try:
        return json.loads((Path(directory) / "manifest.json").read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return None


def verified_manifest(directory: Path, expected_key: str, files: tuple[str, ...], corrupt: type[Exception],
                      what: str) -> dict:
    """The manifest of a stored artefact directory (the FAQ index, a router model) once it is shown to be the one
    `expected_key` names and every file in `files` matches its recorded checksum; else `corrupt` is raised."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise corrupt(f"unreadable manifest in {directory}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("key") != expected_key:
        raise corrupt(f"{what} in {directory} was built from different inputs")
    for name in files:
        path = directory / name
        if not path.is_file() or file_sha256(path) != manifest.get("sha256", {}).get(name):
            raise corrupt(f"{path} is missing or does not match its checksum")
    return manifest


def load_index(directory: Path, corpus: Corpus, expected_key: str) -> FaqIndex:
    """Load the stored index; IndexCorrupt when its files do not match their checksums or the corpus."""
    import faiss

    directory = Path(directory)
    manifest = verified_manifest(directory, expected_key, _FILES, IndexCorrupt, "index")
    try:
        flat = faiss.read_index(str(directory / "dense.faiss"))
        vectors = flat.reconstruct_n(0, flat.ntotal)
        with np.load(directory / "index.npz", allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        lexical = Bm25Index.from_arrays(arrays)
        calibrators = {r: Calibrator.from_array(arrays[f"calibrator_{r}"]) for r in RANKERS}
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise IndexCorrupt(f"cannot read the index in {directory}: {exc}") from exc
    row_entry = arrays["row_entry"].astype(np.int64)
    ids = [str(i) for i in arrays["entry_ids"]]
    if ids != [e.id for e in corpus.entries] or not len(vectors) == len(row_entry) == lexical.n_docs:
        raise IndexCorrupt(f"index in {directory} does not match the corpus entries")
    entry_starts = np.searchsorted(row_entry, np.arange(len(ids))).astype(np.int64)
    return FaqIndex(entries=corpus.entries, row_entry=row_entry, entry_starts=entry_starts,
                    lexical=lexical, dense=DenseIndex(vectors), calibrators=calibrators,
                    key=expected_key, build_seconds=float(manifest.get("build_seconds", 0.0)))


@contextmanager
def index_lock(directory: Path, exclusive: bool):
    """Advisory lock beside the index directory, shared for readers and exclusive for builders."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with (directory.parent / f"{directory.name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
