"""Can the PyPI library ``bm25s`` replace our hand-written BM25 (``retrieval.lexical.Bm25Index``)?

    .venv/bin/python -m bench.bm25_libraries [--repeats 7] [--out bench/out/bm25_libraries.json]

Both indexes are built from the very term lists the lexical ranker indexes (``TextNormalizer.lexical_terms``
of every phrasing, in ``retrieval.index.build_index``'s row order) with the same k1 and b, so the only
difference is the BM25 implementation. bm25s is configured to compute the same per-term weight as ours
(ATIRE term-frequency saturation with the Lucene IDF), so any ranking difference comes from how each
library treats a query, not from a different formula.

Measured on the dev set's in-domain queries (the same items ``retrieval.eval`` scores):
  * lexical-only Recall@1, Recall@5 and MRR@10 for each, hits mapped to topics exactly as the searcher
    does (an entry scores its best phrasing; hits are localised to the query's locale, de-duplicated);
  * how often the two top-10 topic lists agree (identical, same top-1, mean overlap);
  * index build time and per-query scoring latency (p50/p95 over warm, interleaved repeats), side by side
    with the ratio bm25s ÷ ours, because the machine is shared and only ratios taken in one run compare.

No sentence encoder is loaded: the dense ranker is not involved in this question.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from retrieval import lexical
from retrieval.corpus import FaqEntry, load_corpus
from retrieval.eval import DEFAULT_DEVSET, DEPTH, DevItem, load_devset
from retrieval.index import phrasing_rows
from retrieval.lexical import Bm25Index
from retrieval.normalize import TextNormalizer
from retrieval.search import localised_order
from settings import PROJECT_DATA

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "out" / "bm25_libraries.json"
IMPLEMENTATIONS = ("ours", "bm25s")

Scorer = Callable[[list[str]], np.ndarray]


def build_bm25s(documents: list[list[str]]) -> bm25s.BM25:
    # ATIRE saturation tf·(k1+1)/(tf+k1·(1-b+b·dl/avgdl)) with Lucene IDF log(1+(N-df+.5)/(df+.5)) is
    # exactly Bm25Index's weight; bm25s's default "lucene" differs only by the constant (k1+1), but
    # matching it lets the score vectors be compared number for number, not only by rank.
    index = bm25s.BM25(k1=lexical.K1, b=lexical.B, method="atire", idf_method="lucene")
    index.index(documents, show_progress=False)
    return index


def bm25s_scorer(index: bm25s.BM25) -> Scorer:
    num_docs = int(index.scores["num_docs"])

    def score(terms: list[str]) -> np.ndarray:
        # get_scores indexes terms[0] to tell strings from ids, so an empty query would raise.
        if not terms:
            return np.zeros(num_docs, dtype=np.float32)
        return index.get_scores(terms)

    return score


def ours_scorer(index: Bm25Index) -> Scorer:
    return lambda terms: index.scores(terms)[0]


def topic_ranking(row_scores: np.ndarray, entry_starts: np.ndarray, entries: Sequence[FaqEntry],
                  locale: str) -> list[str]:
    """Topics of the first DEPTH hits, reduced and localised as ``FaqSearcher.search`` does, so both
    libraries are judged by the ranking the service would actually return."""
    entry_scores = np.maximum.reduceat(row_scores, entry_starts)
    topics = (entries[target].topic for _, target in localised_order(entries, entry_scores, locale))
    return list(itertools.islice(topics, DEPTH))


def quality(rankings: list[list[str]], items: list[DevItem]) -> dict[str, float]:
    ranks = [r.index(i.topic) + 1 if i.topic in r else None for r, i in zip(rankings, items, strict=True)]
    return {
        "recall_at_1": round(float(np.mean([r == 1 for r in ranks])), 4),
        "recall_at_5": round(float(np.mean([r is not None and r <= 5 for r in ranks])), 4),
        "mrr": round(float(np.mean([1.0 / r if r else 0.0 for r in ranks])), 4),
        "queries": len(items),
    }


def time_builds(documents: list[list[str]], repeats: int) -> dict[str, list[float]]:
    builders: dict[str, Callable[[], object]] = {
        "ours": lambda: Bm25Index.build(documents),
        "bm25s": lambda: build_bm25s(documents),
    }
    seconds: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
    for name in IMPLEMENTATIONS:
        builders[name]()  # first-call imports and allocator warm-up are not build cost
    for _ in range(repeats):
        # Alternating inside each repeat spreads the shared machine's noise over both alike.
        for name in IMPLEMENTATIONS:
            started = time.perf_counter()
            builders[name]()
            seconds[name].append((time.perf_counter() - started) * 1000)
    return seconds


def time_queries(scorers: dict[str, Scorer], queries: list[list[str]], repeats: int) -> dict[str, list[float]]:
    for scorer in scorers.values():
        for terms in queries:
            scorer(terms)  # warm: ours builds its misheard-word table lazily on first use
    samples: dict[str, list[float]] = {name: [] for name in scorers}
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection landing inside one sample would be charged to whichever ran then
    try:
        for repeat in range(repeats):
            names = list(scorers) if repeat % 2 == 0 else list(reversed(scorers))
            for terms in queries:
                for name in names:
                    started = time.perf_counter()
                    scorers[name](terms)
                    samples[name].append((time.perf_counter() - started) * 1000)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def overlap(a: list[str], b: list[str]) -> float:
    """Share of distinct topics two top-10 lists have in common; a list can name a topic twice (two
    entries of one topic in the query's locale), so dividing by DEPTH would understate agreement."""
    union = set(a) | set(b)
    return len(set(a) & set(b)) / len(union) if union else 1.0


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 4)


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 2) if denominator > 0 else float("nan")


def run(repeats: int) -> dict[str, Any]:
    corpus = load_corpus(PROJECT_DATA / "faq")
    normalizer = TextNormalizer()
    entries = corpus.entries
    # Row order and entry_starts exactly as retrieval.index.build_index lays them out.
    texts, _, entry_starts = phrasing_rows(entries)
    documents = [normalizer.lexical_terms(t) for t in texts]

    ours = Bm25Index.build(documents)
    theirs = build_bm25s(documents)
    theirs_score = bm25s_scorer(theirs)
    scorers: dict[str, Scorer] = {"ours": ours_scorer(ours), "bm25s": theirs_score}

    items = [i for i in load_devset(DEFAULT_DEVSET) if i.topic is not None]
    holdout_positions = {i.position for i in load_devset(DEFAULT_DEVSET, "holdout")}
    queries = [normalizer.lexical_terms(i.query) for i in items]

    row_scores = {name: [scorer(q) for q in queries] for name, scorer in scorers.items()}
    rankings = {name: [topic_ranking(s, entry_starts, entries, i.locale) for s, i in zip(rs, items, strict=True)]
                for name, rs in row_scores.items()}

    splits = {"all": [True] * len(items),
              "tune": [i.position not in holdout_positions for i in items],
              "holdout": [i.position in holdout_positions for i in items]}
    quality_by_split = {
        split: {name: quality([r for r, keep in zip(rankings[name], mask, strict=True) if keep],
                              [i for i, keep in zip(items, mask, strict=True) if keep])
                for name in IMPLEMENTATIONS}
        for split, mask in splits.items()
    }

    pairs = list(zip(rankings["ours"], rankings["bm25s"], strict=True))
    identical = [a == b for a, b in pairs]
    # Diagnostic, not a candidate: bm25s fed each query term once isolates the formula from query handling.
    deduped = [topic_ranking(theirs_score(list(dict.fromkeys(q))), entry_starts, entries, i.locale)
               for q, i in zip(queries, items, strict=True)]
    # Where the rankings part, say why: bm25s sums a repeated query term once per occurrence (ours once),
    # and it drops unknown terms where ours lets a misheard word stand in for its near corpus words.
    vocabulary = ours.vocabulary
    repeated = [len(set(q)) < len(q) for q in queries]
    unknown_words = [any(t not in vocabulary and t[:2] in ("m:", "w:") for t in q) for q in queries]
    score_gap = [float(np.max(np.abs(a - b))) if len(a) else 0.0
                 for a, b in zip(row_scores["ours"], row_scores["bm25s"], strict=True)]
    agreement = {
        "top10_identical": round(float(np.mean(identical)), 4),
        "top1_same": round(float(np.mean([a[:1] == b[:1] for a, b in pairs])), 4),
        "mean_top10_overlap": round(float(np.mean([overlap(a, b) for a, b in pairs])), 4),
        "queries_differing": int(len(identical) - sum(identical)),
        "queries_with_repeated_terms": int(sum(repeated)),
        "queries_with_unknown_words": int(sum(unknown_words)),
        "differing_with_repeated_terms": int(sum(r and not s for r, s in zip(repeated, identical, strict=True))),
        "differing_with_unknown_words": int(sum(u and not s for u, s in zip(unknown_words, identical, strict=True))),
        "queries_identical_scores": int(sum(g < 1e-4 for g in score_gap)),
        "max_row_score_gap": round(max(score_gap), 4),
        "top10_identical_bm25s_deduped_query": round(float(np.mean(
            [a == b for a, b in zip(rankings["ours"], deduped, strict=True)])), 4),
        "quality_bm25s_deduped_query": quality(deduped, items),
    }

    build_ms = time_builds(documents, repeats)
    latency_ms = time_queries(scorers, queries, repeats)
    speed: dict[str, dict[str, float]] = {
        name: {"build_ms_median": round(float(np.median(build_ms[name])), 3),
               "query_p50_ms": percentile(latency_ms[name], 50),
               "query_p95_ms": percentile(latency_ms[name], 95)}
        for name in IMPLEMENTATIONS
    }
    speed["ratio_bm25s_over_ours"] = {key: ratio(speed["bm25s"][key], speed["ours"][key]) for key in speed["ours"]}

    better_or_equal = all(quality_by_split["all"]["bm25s"][m] >= quality_by_split["all"]["ours"][m]
                          for m in ("recall_at_1", "recall_at_5", "mrr"))
    faster = all(speed["ratio_bm25s_over_ours"][k] < 1.0 for k in ("query_p50_ms", "query_p95_ms"))
    return {
        "bm25s_version": bm25s.__version__,
        "k1": lexical.K1, "b": lexical.B,
        "corpus": {"entries": len(entries), "phrasings": len(texts), "terms": len(vocabulary)},
        "in_domain_queries": len(items),
        "repeats": repeats,
        "quality": quality_by_split,
        "agreement": agreement,
        "speed": speed,
        "verdict": {"bm25s_quality_at_least_ours": better_or_equal, "bm25s_faster_per_query": faster,
                    "replace": better_or_equal and faster},
    }


def format_table(report: dict[str, Any]) -> str:
    q, s, a = report["quality"], report["speed"], report["agreement"]
    r = s["ratio_bm25s_over_ours"]
    lines = [f"BM25: ours vs bm25s {report['bm25s_version']} (k1={report['k1']}, b={report['b']}) — "
             f"{report['in_domain_queries']} in-domain dev queries, {report['corpus']['phrasings']} phrasings, "
             f"{report['corpus']['terms']} terms, {report['repeats']} repeats",
             f"{'metric':<26}{'ours':>10}{'bm25s':>10}{'bm25s/ours':>12}"]
    for split in ("all", "tune", "holdout"):
        for label, key in (("Recall@1", "recall_at_1"), ("Recall@5", "recall_at_5"), ("MRR", "mrr")):
            lines.append(f"{label + ' (' + split + ')':<26}{q[split]['ours'][key]:>10.4f}{q[split]['bm25s'][key]:>10.4f}")
    for label, key in (("build (ms, median)", "build_ms_median"), ("query p50 (ms)", "query_p50_ms"),
                       ("query p95 (ms)", "query_p95_ms")):
        lines.append(f"{label:<26}{s['ours'][key]:>10.3f}{s['bm25s'][key]:>10.3f}{r[key]:>12.2f}")
    lines.append(f"top-10 identical {a['top10_identical']:.3f}, top-1 same {a['top1_same']:.3f}, "
                 f"mean top-10 overlap {a['mean_top10_overlap']:.3f}; {a['queries_differing']} queries differ "
                 f"({a['differing_with_repeated_terms']} have repeated terms, "
                 f"{a['differing_with_unknown_words']} have unknown words); "
                 f"bm25s fed each query term once: top-10 identical {a['top10_identical_bm25s_deduped_query']:.3f}")
    v = report["verdict"]
    lines.append(f"verdict: quality ≥ ours {v['bm25s_quality_at_least_ours']}, faster {v['bm25s_faster_per_query']} "
                 f"→ {'replace with bm25s' if v['replace'] else 'keep ours'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    report = run(max(1, args.repeats))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    print(format_table(report))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
