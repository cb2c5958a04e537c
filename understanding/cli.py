"""Command-line tools of the router, added to ``python app.py``: eval-nlu, and the router's part of build-index."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from settings import Settings


def build_router_models(settings: Settings, corpus_dir: Path, searcher: Any, force: bool) -> dict[str, Any]:
    """`build-index` trains (or finds current) both router models beside the FAQ index; a summary for its output."""
    from understanding.model import DENSE, LEXICAL, model_directory
    from understanding.service import intents_dir, router_model, training_inputs

    inputs = training_inputs(corpus_dir, intents_dir(settings))
    summary: dict[str, Any] = {}
    for kind in (LEXICAL, DENSE):
        model = router_model(settings.data_dir, inputs, kind, searcher if kind == DENSE else None, force=force)
        summary[kind] = {"directory": str(model_directory(settings.data_dir, kind)), "rows": model.rows,
                         "classes": len(model.classes), "train_seconds": round(model.train_seconds, 1),
                         "temperature": round(model.temperature, 3)}
    return summary


def _encoder(spec: str | None) -> Any:
    """The encoder `--encoder` names ('use' or 'sentence-transformers:/path'); None: the configured one."""
    if spec is None:
        return None
    from retrieval.dense import load_encoder

    return load_encoder(spec, setting="--encoder")


def _eval_nlu(args: argparse.Namespace) -> int:
    from retrieval.corpus import CorpusError
    from retrieval.search import FaqSearcher
    from retrieval.service_loader import corpus_dir, load_faq_searcher
    from understanding import evaluation
    from understanding.model import DENSE, LEXICAL
    from understanding.service import attach_dense_model, build_router

    splits = list(evaluation.SPLITS) if args.split == "both" else [args.split]
    try:
        items = {split: evaluation.load_split(args.dev, split) for split in splits}
    except (evaluation.DevSetMissing, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    settings = Settings.from_env(load_models=False).ensure_data_dir()
    corpus = corpus_dir(settings)
    try:
        encoder = _encoder(args.encoder)
        searcher = (FaqSearcher.load_or_build(settings.data_dir, corpus, encoder=encoder) if encoder is not None
                    else load_faq_searcher(settings))
    except (CorpusError, ValueError, ImportError) as exc:
        print(exc, file=sys.stderr)
        return 1
    router = build_router(settings)
    if args.model == DENSE:
        attach_dense_model(router, settings, searcher)
    else:
        router.lexical_model()
    report: dict[str, Any] = {"model": args.model if args.model == LEXICAL else DENSE,
                              "encoder": searcher.encoder.identity, "splits": {}}
    for split, split_items in items.items():
        scored = evaluation.score(router, searcher, split_items)
        result = evaluation.figures(scored)
        result["by_kind"] = evaluation.summary_by_kind(scored)
        if split == "heldout":
            result["targets"] = evaluation.TARGETS
            result["targets_met"] = evaluation.targets_met(result)
        report["splits"][split] = result
        print(evaluation.render(split, result))
        if args.show_mistakes:
            for mistake in result["mistakes"]:
                print(f"  ✗ [{mistake['locale']}] {mistake['text']!r}: {mistake['gold']} → {mistake['got']} "
                      f"{mistake['candidates']}")
        if args.sweep:
            if split != "tuning":
                print("--sweep runs on the tuning split only", file=sys.stderr)
                return 2
            for row in evaluation.sweep(scored):
                print(json.dumps(row))
    if args.out:
        evaluation.write_json(args.out, report)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from understanding.evaluation import DEV_DIR
    from understanding.model import DENSE, LEXICAL

    evaluate = sub.add_parser("eval-nlu", help="the router on the NLU dev set: per-intent precision/recall, "
                                               "FAQ confusion, clarification and out-of-domain figures")
    evaluate.add_argument("--split", choices=("tuning", "heldout", "both"), default="both")
    evaluate.add_argument("--encoder", default=None, metavar="SPEC",
                          help="'use' or 'sentence-transformers:/path/to/model' (default: the configured encoder)")
    evaluate.add_argument("--model", choices=(DENSE, LEXICAL), default=DENSE,
                          help="the dense router (default) or the lexical one used until the encoder is loaded")
    evaluate.add_argument("--dev", type=Path, default=DEV_DIR, help="directory with tuning.yaml and heldout.yaml")
    evaluate.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    evaluate.add_argument("--sweep", action="store_true", help="figures over a grid of thresholds (tuning only)")
    evaluate.add_argument("--show-mistakes", action="store_true", help="list every utterance routed wrongly")
    evaluate.set_defaults(func=_eval_nlu)
