"""Where the CPU of one anonymous FAQ text turn goes, in-process: the app as `serve` builds it (all models loaded),
driven through Flask's test client, with the thread CPU time of each step of the turn summed over many turns.

    python -m bench.turn_profile [--turns 300] [--distinct]

Models load from (or build into) the data directory of MINWON_DATA_DIR, as `serve` does. By default every turn
asks the load benchmark's FAQ question ("등본 떼려면 어떻게 해?"); `--distinct` asks each question of the FAQ dev
set (data/eval/faq_devset.yaml) once instead, so that no cache keyed by a question's text is ever hit.

Each step is a method wrapped with a timer (thread CPU, inclusive: a step's figure contains the steps listed
under it). A step that a version of the code does not have is left out, so the same script profiles an older
checkout for a before/after table. The figures include the timers' own cost (about a microsecond a step).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from settings import PROJECT_DATA, Settings  # noqa: E402

QUESTION = "등본 떼려면 어떻게 해?"
# (label, depth, "module:Class.method"): the turn's steps, in the order a turn takes them.
STEPS: tuple[tuple[str, int, str], ...] = (
    ("rate limits (3 charges)", 1, "domain.attempts:RequestLimits.retry_after"),
    ("dialog turn", 1, "skills.engine:DialogEngine._answer"),
    ("session load", 2, "skills.sessions:SessionStore.load"),
    ("router", 2, "understanding.router:IntentRouter.route"),
    ("Kiwi analysis (spacing, morphemes)", 3, "retrieval.normalize:TextNormalizer._analyse_uncached"),
    ("sentence encoder", 3, "retrieval.dense:SentenceEncoder.encode"),
    ("slot readings", 3, "understanding.slots:SlotVocabulary.readings"),
    ("classifier (features + weights)", 3, "understanding.model:RouterModel.classify"),
    ("FAQ search", 2, "retrieval.search:FaqSearcher.search"),
    ("lexical terms", 3, "retrieval.normalize:TextNormalizer.lexical_terms"),
    ("BM25 scores", 3, "retrieval.lexical:Bm25Index.scores"),
    ("vocabulary share", 3, "retrieval.lexical:Bm25Index.known_share"),
    ("dense scores (FAISS top-k)", 3, "retrieval.dense:DenseIndex.scores"),
    ("dense scores (one product)", 3, "retrieval.dense:DenseIndex.all_scores"),
    ("session save", 2, "skills.sessions:SessionStore.save"),
)
WHOLE = "whole request (test client)"
UNLIMITED = {"MINWON_RATE_LIMIT_PER_MINUTE": "100000000", "MINWON_IP_RATE_LIMIT_PER_MINUTE": "100000000"}


def resolve(path: str) -> tuple[Any, str] | None:
    module_name, _, qualified = path.partition(":")
    owner_name, _, method = qualified.rpartition(".")
    try:
        owner = getattr(importlib.import_module(module_name), owner_name)
    except (ImportError, AttributeError):
        return None
    return (owner, method) if method in owner.__dict__ else None


class StepTimers:
    """Thread-CPU accumulators around methods; only the outermost call of a re-entered step is counted."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._active: set[str] = set()
        self._originals: list[tuple[Any, str, Any]] = []

    def wrap(self, label: str, owner: Any, method: str) -> None:
        original = owner.__dict__[method]
        timers = self

        @wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if label in timers._active:
                return original(*args, **kwargs)
            timers._active.add(label)
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                timers.seconds[label] = timers.seconds.get(label, 0.0) + time.thread_time() - started
                timers.calls[label] = timers.calls.get(label, 0) + 1
                timers._active.discard(label)

        self._originals.append((owner, method, original))
        setattr(owner, method, timed)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def questions(distinct: bool, turns: int) -> list[tuple[str, str]]:
    if not distinct:
        return [(QUESTION, "ko-KR")] * turns
    rows = yaml.safe_load((PROJECT_DATA / "eval" / "faq_devset.yaml").read_text(encoding="utf-8"))
    return [(row["query"], row["locale"]) for row in rows if row.get("topic")]


def run(turns: int, distinct: bool) -> dict[str, Any]:
    # Wrapped before the app starts: the normaliser binds its (cached) Kiwi analysis when it is made.
    timers = StepTimers()
    present = []
    for label, depth, path in STEPS:
        found = resolve(path)
        if found is not None:
            timers.wrap(label, *found)
            present.append((label, depth))
    settings = Settings.from_env({**os.environ, "MINWON_DEMO": "1", "MINWON_LOG_LEVEL": "WARNING", **UNLIMITED})
    app = create_app(settings)
    state = app.extensions["minwon"]
    if not state.wait_ready(900):
        raise SystemExit(f"the app did not become ready: {state.load_error}")
    client = app.test_client()

    def turn(text: str, locale: str) -> None:
        response = client.post("/v1/converse", json={"text": text, "locale": locale})
        if response.status_code != 200:
            raise RuntimeError(f"status {response.status_code}: {response.get_data(as_text=True)[:200]}")

    warm = questions(False, 30)
    for text, locale in warm:  # connections, caches, lazy imports
        turn(text, locale)
    timers.reset()
    asked = questions(distinct, turns)
    whole = 0.0
    for text, locale in asked:
        started = time.thread_time()
        turn(text, locale)
        whole += time.thread_time() - started
    health_started = time.thread_time()
    for _ in range(len(asked)):
        client.get("/health")
    health = (time.thread_time() - health_started) / len(asked)
    n = len(asked)
    rows = [(WHOLE, 0, whole / n, n)] + [(label, depth, timers.seconds.get(label, 0.0) / n, timers.calls.get(label, 0))
                                         for label, depth in present]
    print(f"{n} anonymous FAQ turns ({'each FAQ dev-set question once' if distinct else repr(QUESTION)}), "
          f"thread CPU per turn; /health {health * 1000:.3f} ms")
    for label, depth, seconds, calls in rows:
        print(f"{'  ' * depth}{label:<{44 - 2 * depth}}{seconds * 1000:8.3f} ms   ({calls / n:.2f} calls a turn)")
    return {"turns": n, "distinct": distinct, "health_ms": round(health * 1000, 3),
            "steps": {label: round(seconds * 1000, 3) for label, _, seconds, _ in rows}}


def main(argv: list[str] | None = None, stop: Callable[[int], None] = os._exit) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--distinct", action="store_true")
    args = parser.parse_args(argv)
    run(args.turns, args.distinct)
    sys.stdout.flush()
    stop(0)  # the app's background workers are daemons of a process that is done


if __name__ == "__main__":
    main()
