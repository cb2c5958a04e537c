"""Import an agency's FAQ export (CSV or JSON with question/answer columns) as a corpus file.

``python app.py import-faq EXPORT --topic TOPIC --locale ko-KR [--agency …] [--source-url …]``
writes ``data/faq/<topic>-import.yaml`` (or ``--out``). Column names are matched
case-insensitively against common English and Korean headers (question/질문/제목,
answer/답변/내용). The spoken answer is the answer's first one or two sentences, stripped of
URLs and markup, within the speech length limit; the full answer becomes ``answer_text``.
Ids are chosen clear of the rest of the corpus, and the file is validated with the corpus
loader before it replaces anything.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from datetime import date
from pathlib import Path

import yaml

from retrieval.corpus import (
    LOCALES,
    MAX_SPEECH_CHARS,
    MAX_SPEECH_SENTENCES,
    TOPIC_PATTERN,
    corpus_files,
    load_corpus,
    load_file,
    split_sentences,
)

QUESTION_COLUMNS = ("question", "questions", "q", "title", "subject", "질문", "제목", "문의", "질의")
ANSWER_COLUMNS = ("answer", "answers", "a", "content", "contents", "reply", "답변", "내용", "답")
ALTERNATE_COLUMNS = ("alternates", "keywords", "키워드", "유사질문")
_URL_IN_PARENS = re.compile(r"\(\s*(?:https?://|www\.)[\x21-\x28\x2a-\x7e]*\s*\)")
_URL = re.compile(r"(?:https?://|www\.)[\x21-\x7e]+")
_MARKUP = re.compile(r"<[^>]+>|[*_`#|\[\]]")


class ExportFormatError(ValueError):
    """The export cannot be turned into corpus entries (unreadable, no question/answer columns)."""


def read_export(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV (UTF-8, with or without BOM; CP949 as a fallback) or JSON export."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp949")  # older Korean agency exports
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if isinstance(data, dict):
            # data.go.kr style wrappers: {"data": [...]} or {"items": [...]} or {"response": {...}}
            for key in ("data", "items", "records", "faqs", "response", "body"):
                if key in data:
                    return _rows_from_json(data[key])
            raise ExportFormatError(f"{path}: JSON object without a data/items/records list")
        return _rows_from_json(data)
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
        return [dict(row) for row in csv.DictReader(text.splitlines(), dialect=dialect)]
    raise ExportFormatError(f"{path}: unsupported export format (expected .csv, .tsv or .json)")


def _rows_from_json(data: object) -> list[dict[str, str]]:
    if isinstance(data, dict):
        for value in data.values():
            if isinstance(value, list | dict):
                return _rows_from_json(value)
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise ExportFormatError("JSON export must hold a list of objects")
    return [{str(k): "" if v is None else str(v) for k, v in row.items()} for row in data]


def _column(header: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {h.strip().lower(): h for h in header if h}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def spoken_summary(answer: str, locale: str) -> str:
    """The first sentences of ``answer`` that fit a spoken answer, without URLs or markup."""
    plain = _MARKUP.sub("", _URL.sub(" ", _URL_IN_PARENS.sub("", answer)))
    plain = re.sub(r"\s+", " ", plain).strip()
    limit = MAX_SPEECH_CHARS[locale]
    spoken = ""
    for sentence in split_sentences(plain)[:MAX_SPEECH_SENTENCES]:
        candidate = f"{spoken} {sentence}".strip()
        if len(candidate) > limit:
            break
        spoken = candidate
    if not spoken:  # the first sentence alone is too long: cut at a word boundary
        spoken = plain[:limit].rsplit(" ", 1)[0].rstrip(",;:") if len(plain) > limit else plain
    return spoken


def import_export(export: Path, topic: str, locale: str, corpus_dir: Path, *, agency: str,
                  source_url: str, out: Path | None = None, updated: str | None = None) -> Path:
    """Convert ``export`` into a validated corpus file; returns the path written."""
    if not TOPIC_PATTERN.match(topic):
        raise ExportFormatError(f"bad topic id {topic!r}: lower-case words joined by '-'")
    if locale not in LOCALES:
        raise ExportFormatError(f"unknown locale {locale!r} (expected one of {', '.join(LOCALES)})")
    rows = read_export(export)
    if not rows:
        raise ExportFormatError(f"{export}: no rows")
    header = list(rows[0].keys())
    question_col = _column(header, QUESTION_COLUMNS)
    answer_col = _column(header, ANSWER_COLUMNS)
    if question_col is None or answer_col is None:
        raise ExportFormatError(f"{export}: need a question and an answer column; found {header}")
    alternates_col = _column(header, ALTERNATE_COLUMNS)
    corpus_dir = Path(corpus_dir)
    out = Path(out) if out else corpus_dir / f"{topic}-import.yaml"
    taken = {e.id for e in load_corpus(corpus_dir).entries} if corpus_files(corpus_dir) else set()
    if out.exists():
        taken -= {e.id for e in load_file(out)}  # re-importing replaces the earlier import
    short = locale.split("-")[0]
    entries = []
    number = 0
    for row in rows:
        question = (row.get(question_col) or "").strip()
        answer = (row.get(answer_col) or "").strip()
        if not question or not answer:
            continue
        number += 1
        while f"{topic}.{short}.import-{number}" in taken:
            number += 1
        alternates = []
        if alternates_col and row.get(alternates_col):
            alternates = [a.strip() for a in re.split(r"[;|\n]", row[alternates_col]) if a.strip()]
        entries.append({
            "id": f"{topic}.{short}.import-{number}",
            "topic": topic,
            "locale": locale,
            "question": question,
            "alternates": alternates,
            "answer_speech": spoken_summary(answer, locale),
            "answer_text": re.sub(r"\s+", " ", answer),
            "agency": agency,
            "source_url": source_url,
            "updated": updated or date.today().isoformat(),
        })
    if not entries:
        raise ExportFormatError(f"{export}: no row has both a question and an answer")
    text = yaml.safe_dump(entries, allow_unicode=True, sort_keys=False, width=100)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".yaml", dir=out.parent,
                                     prefix=".import-", delete=False) as staging:
        staging.write(f"# Imported from {Path(export).name} on {date.today().isoformat()}\n{text}")
    staged = Path(staging.name)
    try:
        load_file(staged)
        staged.replace(out)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return out
