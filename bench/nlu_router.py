"""The router beside the matcher it replaced, in one run: routing latency, and the CPU of a whole FAQ text turn.

    .venv/bin/python bench/nlu_router.py [--repeats 3] [--out bench/out/nlu_router.json]

* routing, in-process: the router's `route` (slot reading, Kiwi analysis, the sentence embedding, the classifier)
  against the old edit-distance matcher's `parse`, on every utterance of the NLU dev set and the FAQ dev set (each
  text is new to the normaliser's cache on the first pass, as a citizen's words are);
* a whole FAQ text turn (understanding + the FAQ search), CPU time of the thread: before, the matcher and then the
  search (which embeds the question); after, the router and then the search with the router's embedding;
* the lexical router (the fallback until the encoder has loaded) as a third line;
* the warm routing passes again in thread CPU time, the figure that other jobs on the same cores change least.

The old matcher is not kept in the code base: this script checks it out from git at run time (`skills/nlu.py` as
it was in the commit before the one that deleted it), with the intent examples and slots of that same commit, so
"before" is exactly what ran before. Models load from (or build into) the data directory of MINWON_DATA_DIR.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
import types
from io import BytesIO
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retrieval.search import FaqSearcher  # noqa: E402
from retrieval.service_loader import corpus_dir  # noqa: E402
from settings import PROJECT_DATA, Settings  # noqa: E402
from understanding.model import LEXICAL  # noqa: E402
from understanding.service import attach_dense_model, build_router, configured_training_inputs, router_model  # noqa: E402

TARGET_P95_MS = 5.0


def old_matcher() -> tuple[object, str]:
    """The edit-distance IntentMatcher and its data, from the commit before `skills/nlu.py` was deleted."""
    deleted = subprocess.run(["git", "log", "--no-renames", "--diff-filter=D", "-1", "--format=%H", "--",
                              "skills/nlu.py"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    if not deleted:
        raise SystemExit("skills/nlu.py was never deleted in this history: nothing to compare with")
    revision = f"{deleted}^"
    source = subprocess.run(["git", "show", f"{revision}:skills/nlu.py"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode("utf-8")
    module = types.ModuleType("old_nlu")
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, "old skills/nlu.py", "exec"), module.__dict__)  # our own file, from our own history
    archive = subprocess.run(["git", "archive", revision, "data/intents", "data/slots"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    directory = Path(tempfile.mkdtemp(prefix="old-nlu-"))
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return module.IntentMatcher.load(directory / "data"), subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def utterances() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(text, locale) of every NLU dev-set utterance, and of every FAQ dev-set question (the FAQ turns)."""
    nlu = []
    for split in ("tuning", "heldout"):
        path = ROOT / "tests" / "fixtures" / "nlu" / f"{split}.yaml"
        nlu += [(row["text"], row["locale"]) for row in yaml.safe_load(path.read_text(encoding="utf-8"))]
    faq_dev = yaml.safe_load((PROJECT_DATA / "eval" / "faq_devset.yaml").read_text(encoding="utf-8"))
    faq = [(row["query"], row["locale"]) for row in faq_dev if row.get("topic")]
    return nlu, faq


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3),
            "mean_ms": round(float(ms.mean()), 3), "n": len(ms)}


def timed(fn, items: list[tuple[str, str]], clock=time.perf_counter) -> list[float]:
    samples = []
    for text, locale in items:
        started = clock()
        fn(text, locale)
        samples.append(clock() - started)
    return samples


def run(repeats: int, out: Path) -> dict:
    settings = Settings.from_env(load_models=False).ensure_data_dir()
    corpus = corpus_dir(settings)
    searcher = FaqSearcher.load_or_build(settings.data_dir, corpus)
    router = build_router(settings)
    attach_dense_model(router, settings, searcher)
    lexical = build_router(settings)
    router_model(settings.data_dir, configured_training_inputs(settings), LEXICAL)
    lexical.lexical_model()
    matcher, revision = old_matcher()
    nlu, faq = utterances()
    results: dict = {"utterances": len(nlu), "faq_turns": len(faq), "old_matcher_from": revision,
                     "encoder": searcher.encoder.identity, "passes": repeats}

    # Routing latency. The first pass meets every text for the first time (Kiwi's cache cold for it).
    first = {"router (dense)": timed(lambda t, loc: router.route(t), nlu),
             "router (lexical fallback)": timed(lambda t, loc: lexical.route(t), nlu),
             "old matcher": timed(lambda t, loc: matcher.parse(t, loc), nlu)}
    results["routing_first_pass"] = {name: percentiles(s) for name, s in first.items()}
    warm: dict[str, list[float]] = {name: [] for name in first}
    for _ in range(repeats):
        warm["router (dense)"] += timed(lambda t, loc: router.route(t), nlu)
        warm["router (lexical fallback)"] += timed(lambda t, loc: lexical.route(t), nlu)
        warm["old matcher"] += timed(lambda t, loc: matcher.parse(t, loc), nlu)
    results["routing_warm"] = {name: percentiles(s) for name, s in warm.items()}
    # The same warm passes in thread CPU time: on a machine shared with other jobs, wall times stretch with their
    # load (a request waits for a core), CPU times much less.
    cpu: dict[str, list[float]] = {name: [] for name in first}
    for _ in range(repeats):
        cpu["router (dense)"] += timed(lambda t, loc: router.route(t), nlu, time.thread_time)
        cpu["router (lexical fallback)"] += timed(lambda t, loc: lexical.route(t), nlu, time.thread_time)
        cpu["old matcher"] += timed(lambda t, loc: matcher.parse(t, loc), nlu, time.thread_time)
    results["routing_warm_cpu"] = {name: percentiles(s) for name, s in cpu.items()}

    # A whole FAQ text turn, CPU of this thread: understanding + the search that answers it. Each variant runs on
    # texts its own earlier passes have seen, so the comparison is warm against warm.
    def before(text: str, locale: str) -> None:
        matcher.parse(text, locale)
        searcher.search(text, locale, k=3)

    def after(text: str, locale: str) -> None:
        routing = router.route(text)
        searcher.search(text, locale, k=3, embeddings=routing.embeddings)

    for fn in (before, after):  # warm both on every text once
        timed(fn, faq)
    turn = {"before (matcher + search)": [], "after (router + search, one embedding)": []}
    for _ in range(repeats):
        turn["before (matcher + search)"] += timed(before, faq, time.thread_time)
        turn["after (router + search, one embedding)"] += timed(after, faq, time.thread_time)
    results["faq_turn_cpu"] = {name: percentiles(s) for name, s in turn.items()}
    dense = results["routing_first_pass"]["router (dense)"]
    results["target"] = {"routing_p95_ms": TARGET_P95_MS, "met_first_pass": dense["p95_ms"] <= TARGET_P95_MS,
                         "met_warm": results["routing_warm"]["router (dense)"]["p95_ms"] <= TARGET_P95_MS}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    print(render(results))
    return results


def render(results: dict) -> str:
    lines = [f"{results['utterances']} utterances, {results['faq_turns']} FAQ turns; old matcher from "
             f"{results['old_matcher_from']}; encoder {results['encoder']}",
             f"{'routing':<44}{'first p50':>10}{'first p95':>10}{'warm p50':>10}{'warm p95':>10}  (ms)"]
    for name in results["routing_first_pass"]:
        a, b = results["routing_first_pass"][name], results["routing_warm"][name]
        lines.append(f"{name:<44}{a['p50_ms']:>10.2f}{a['p95_ms']:>10.2f}{b['p50_ms']:>10.2f}{b['p95_ms']:>10.2f}")
    lines.append(f"{'routing, thread CPU (warm)':<44}{'p50':>10}{'p95':>10}{'mean':>10}  (ms)")
    for name, figures in results.get("routing_warm_cpu", {}).items():
        lines.append(f"{name:<44}{figures['p50_ms']:>10.2f}{figures['p95_ms']:>10.2f}{figures['mean_ms']:>10.2f}")
    lines.append(f"{'FAQ text turn, thread CPU':<44}{'p50':>10}{'p95':>10}{'mean':>10}  (ms)")
    for name, figures in results["faq_turn_cpu"].items():
        lines.append(f"{name:<44}{figures['p50_ms']:>10.2f}{figures['p95_ms']:>10.2f}{figures['mean_ms']:>10.2f}")
    lines.append(f"routing p95 target {results['target']['routing_p95_ms']} ms: first pass "
                 f"{'met' if results['target']['met_first_pass'] else 'MISSED'}, warm "
                 f"{'met' if results['target']['met_warm'] else 'MISSED'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "nlu_router.json")
    args = parser.parse_args()
    run(args.repeats, args.out)


if __name__ == "__main__":
    main()
