"""Command-line tools of the FAQ search, added to ``python app.py``: build-index, eval-retrieval, import-faq."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retrieval.dense import Encoder

# Called by build-index after the FAQ index, with (settings, corpus dir, searcher, force): what else the build
# makes from the same models (the intent router's models); its summary joins the command's output.
AfterBuild = Callable[[Any, Path, Any, bool], dict[str, Any]]


def _settings() -> Any:
    from settings import Settings

    return Settings.from_env(load_models=False).ensure_data_dir()


def _encoder(args: argparse.Namespace, settings: Any) -> Encoder:
    """The encoder ``--encoder`` names, else the configured one (MINWON_ENCODER); raises EncoderConfigError
    naming whichever of the two was wrong."""
    from retrieval.dense import load_encoder
    from retrieval.service_loader import load_configured_encoder

    if args.encoder is not None:
        return load_encoder(args.encoder, setting="--encoder")
    return load_configured_encoder(settings)


def _build_index(args: argparse.Namespace, after_build: AfterBuild | None = None) -> int:
    from retrieval.corpus import CorpusError
    from retrieval.dense import EncoderConfigError
    from retrieval.search import FaqSearcher, index_directory
    from retrieval.service_loader import corpus_dir

    settings = _settings()
    corpus = args.corpus or corpus_dir(settings)
    try:
        encoder = _encoder(args, settings)
        searcher = FaqSearcher.load_or_build(settings.data_dir, corpus, progress=True, encoder=encoder)
        index = searcher.reload(force=True) if args.force else searcher.index
        extra = {"router": after_build(settings, corpus, searcher, args.force)} if after_build else {}
    except (CorpusError, EncoderConfigError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps({"index": str(index_directory(settings.data_dir)), "encoder": encoder.identity,
                      "dimension": encoder.dimension, "entries": len(index.entries),
                      "phrasings": int(len(index.row_entry)), "build_seconds": round(index.build_seconds, 1),
                      "thresholds": {r: round(c.threshold, 4) for r, c in index.calibrators.items()}, **extra},
                     ensure_ascii=False, indent=2))
    return 0


def _eval_retrieval(args: argparse.Namespace) -> int:
    from retrieval import eval as evaluation
    from retrieval.dense import EncoderConfigError
    from retrieval.service_loader import corpus_dir

    settings = _settings()
    args.data_dir = settings.data_dir
    args.corpus = args.corpus or corpus_dir(settings)
    try:
        encoder = _encoder(args, settings)
    except EncoderConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return evaluation.run_from_args(args, encoder=encoder)


def _import_faq(args: argparse.Namespace) -> int:
    from retrieval.corpus import CorpusError
    from retrieval.importer import ExportFormatError, import_export
    from retrieval.service_loader import corpus_dir

    corpus = args.corpus or corpus_dir(_settings())
    try:
        written = import_export(args.file, args.topic, args.locale, corpus, agency=args.agency,
                                source_url=args.source_url, out=args.out, updated=args.updated)
    except (ExportFormatError, CorpusError, OSError, ValueError) as exc:
        print(f"import failed: {exc}", file=sys.stderr)
        return 1
    print(written)
    return 0


def add_commands(sub: argparse._SubParsersAction, after_build: AfterBuild | None = None) -> None:
    from retrieval.eval import add_arguments as add_eval_arguments

    build = sub.add_parser("build-index", help="build the FAQ search index under the data dir (progress bar)")
    build.add_argument("--corpus", type=Path, default=None, help="corpus directory (default data/faq)")
    build.add_argument("--force", action="store_true", help="rebuild even when the stored index is current")
    build.add_argument("--encoder", default=None, metavar="SPEC",
                       help="'use' or 'sentence-transformers:/path/to/model' (default: MINWON_ENCODER, else use)")
    build.set_defaults(func=lambda args: _build_index(args, after_build))

    evaluate = sub.add_parser("eval-retrieval",
                              help="lexical vs dense vs hybrid on the dev set: table + JSON")
    add_eval_arguments(evaluate, with_paths=False)
    evaluate.set_defaults(func=_eval_retrieval)

    imported = sub.add_parser("import-faq", help="import an agency FAQ export (CSV or JSON) as a corpus file")
    imported.add_argument("file", type=Path, help="the export: .csv, .tsv or .json with question/answer columns")
    imported.add_argument("--topic", required=True, help="topic id, e.g. passport-issuance")
    imported.add_argument("--locale", required=True, choices=("ko-KR", "en-US"))
    imported.add_argument("--agency", required=True, help="the agency that answers, e.g. 외교부")
    imported.add_argument("--source-url", required=True, help="the agency's public page (https://…)")
    imported.add_argument("--out", type=Path, default=None, help="default <corpus>/<topic>-import.yaml")
    imported.add_argument("--updated", default=None, help="ISO date of the export (default today)")
    imported.add_argument("--corpus", type=Path, default=None, help="corpus directory (default data/faq)")
    imported.set_defaults(func=_import_faq)
