"""The FAQ corpus: loading and validating ``data/faq/*.yaml``.

Each file is a YAML list of entries. A bad entry fails the whole load with the file, the line
and the field, so a reviewer can fix the text without reading code. Line numbers come from
the YAML node marks (``yaml.compose``), not from re-parsing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

LOCALES = ("ko-KR", "en-US")
FIELDS = ("id", "topic", "locale", "question", "alternates", "answer_speech", "answer_text",
          "agency", "source_url", "updated")
TOPIC_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
ID_PATTERN = re.compile(r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$")
# A speaker reads answer_speech aloud: at most two short sentences. Korean packs more meaning
# per character, hence the lower limit (160 syllables is about 20 s of speech).
MAX_SPEECH_CHARS = {"ko-KR": 160, "en-US": 220}
MAX_SPEECH_SENTENCES = 2

# A scheme, "www." or a bare domain ("gov.kr에서": Hangul may follow the domain directly).
_URL = re.compile(r"https?://|www\.|(?<![a-z0-9.-])[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:kr|com|net|org)(?![a-z0-9])",
                  re.IGNORECASE)
_MARKDOWN = re.compile(r"[*_`#|<>\[\]]|^\s*[-+]\s|\(\s*https?:", re.MULTILINE)
# A sentence ends at . ! ? (or their full-width forms) followed by a space or the end, so the
# point in "1.5" does not end one.
_SENTENCE_END = re.compile(r"[.!?。！？]+(?=\s|$)")


@dataclass(frozen=True)
class FaqEntry:
    id: str
    topic: str
    locale: str
    question: str
    alternates: tuple[str, ...]
    answer_speech: str
    answer_text: str
    agency: str
    source_url: str
    updated: str
    path: Path | None = field(default=None, compare=False)
    line: int = field(default=0, compare=False)

    @property
    def phrasings(self) -> tuple[str, ...]:
        """Every way the corpus phrases this question (the question first)."""
        return (self.question, *self.alternates)


@dataclass(frozen=True)
class CorpusProblem:
    path: Path
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"


class CorpusError(ValueError):
    """One or more corpus entries are invalid; ``problems`` lists each with file, line and field."""

    def __init__(self, problems: list[CorpusProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"invalid FAQ corpus ({len(problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class Corpus:
    entries: tuple[FaqEntry, ...]
    content_hash: str

    def by_id(self) -> dict[str, FaqEntry]:
        return {e.id: e for e in self.entries}

    def topics(self) -> list[str]:
        return sorted({e.topic for e in self.entries})


def split_sentences(text: str) -> list[str]:
    sentences, start = [], 0
    text = text.strip()
    for end in _SENTENCE_END.finditer(text):
        sentences.append(text[start:end.end()].strip())
        start = end.end()
    if text[start:].strip():
        sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def count_sentences(text: str) -> int:
    return len(split_sentences(text))


def speech_problem(text: str, locale: str) -> str | None:
    """Why ``text`` cannot be read aloud as a short answer, or None when it can."""
    if _URL.search(text):
        return "answer_speech must not contain a URL or web address (put it in answer_text)"
    if _MARKDOWN.search(text):
        return "answer_speech must be plain text without markdown or markup"
    sentences = count_sentences(text)
    if sentences > MAX_SPEECH_SENTENCES:
        return f"answer_speech has {sentences} sentences; a spoken answer has at most {MAX_SPEECH_SENTENCES}"
    limit = MAX_SPEECH_CHARS.get(locale, max(MAX_SPEECH_CHARS.values()))
    if len(text) > limit:
        return f"answer_speech is {len(text)} characters; the limit for {locale} is {limit}"
    return None


def corpus_files(corpus_dir: Path) -> list[Path]:
    # Dot-files are editors' and the importer's temporaries, not corpus.
    return sorted(p for p in Path(corpus_dir).glob("*.yaml") if p.is_file() and not p.name.startswith("."))


def corpus_hash(files: Iterable[Path]) -> str:
    """SHA-256 over file names and bytes: any edit, addition or removal changes it."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def load_corpus(corpus_dir: Path) -> Corpus:
    """Load and validate every ``*.yaml`` in ``corpus_dir``; raise CorpusError listing every problem."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"FAQ corpus directory not found: {corpus_dir}")
    files = corpus_files(corpus_dir)
    if not files:
        raise CorpusError([CorpusProblem(corpus_dir, 0, "-", "no *.yaml files in the corpus directory")])
    problems: list[CorpusProblem] = []
    entries: list[FaqEntry] = []
    for path in files:
        entries.extend(_load_file(path, problems))
    seen: dict[str, FaqEntry] = {}
    for entry in entries:
        first = seen.setdefault(entry.id, entry)
        if first is not entry:
            problems.append(CorpusProblem(
                entry.path, entry.line, "id",
                f"duplicate id {entry.id!r} (first defined at {first.path}:{first.line})"))
    if problems:
        raise CorpusError(problems)
    return Corpus(entries=tuple(entries), content_hash=corpus_hash(files))


def load_file(path: Path) -> list[FaqEntry]:
    """Load and validate one corpus file on its own (used by the importer to check its output)."""
    problems: list[CorpusProblem] = []
    entries = _load_file(Path(path), problems)
    if problems:
        raise CorpusError(problems)
    return entries


def _load_file(path: Path, problems: list[CorpusProblem]) -> list[FaqEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(CorpusProblem(path, 0, "-", f"not UTF-8 text ({exc.reason})"))
        return []
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        problems.append(CorpusProblem(path, line, "-", f"not valid YAML: {getattr(exc, 'problem', exc)}"))
        return []
    if root is None:
        problems.append(CorpusProblem(path, 1, "-", "empty file (expected a list of entries)"))
        return []
    if not isinstance(root, yaml.SequenceNode):
        problems.append(CorpusProblem(path, _line(root), "-", "expected a YAML list of entries"))
        return []
    entries = []
    for node in root.value:
        entry = _entry_from_node(path, node, problems)
        if entry is not None:
            entries.append(entry)
    return entries


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _entry_from_node(path: Path, node: yaml.Node, problems: list[CorpusProblem]) -> FaqEntry | None:
    if not isinstance(node, yaml.MappingNode):
        problems.append(CorpusProblem(path, _line(node), "-", "an entry must be a mapping of fields"))
        return None
    before = len(problems)
    values: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
        if key not in FIELDS:
            problems.append(CorpusProblem(path, _line(key_node), key,
                                          f"unknown field (expected {', '.join(FIELDS)})"))
        elif key in values:
            problems.append(CorpusProblem(path, _line(key_node), key, "field given twice"))
        else:
            values[key] = value_node
    for name in FIELDS:
        if name not in values:
            problems.append(CorpusProblem(path, _line(node), name, "missing field"))

    def text(name: str) -> str:
        value = values.get(name)
        if value is None:
            return ""
        if not isinstance(value, yaml.ScalarNode) or value.tag == "tag:yaml.org,2002:null":
            problems.append(CorpusProblem(path, _line(value), name, "must be a text value"))
            return ""
        stripped = str(value.value).strip()
        if not stripped:
            problems.append(CorpusProblem(path, _line(value), name, "must not be empty"))
        return stripped

    def report(name: str, message: str) -> None:
        where = values.get(name, node)
        problems.append(CorpusProblem(path, _line(where), name, message))

    entry_id = text("id")
    if entry_id and not ID_PATTERN.match(entry_id):
        report("id", f"bad id {entry_id!r}: lower-case letters, digits, '-' and '.' only")
    topic = text("topic")
    if topic and not TOPIC_PATTERN.match(topic):
        report("topic", f"bad topic id {topic!r}: lower-case words joined by '-' (e.g. passport-issuance)")
    locale = text("locale")
    if locale and locale not in LOCALES:
        report("locale", f"unknown locale {locale!r} (expected one of {', '.join(LOCALES)})")
    question = text("question")
    alternates = _alternates(path, values.get("alternates"), problems)
    speech = text("answer_speech")
    if speech and locale in LOCALES:
        why = speech_problem(speech, locale)
        if why:
            report("answer_speech", why)
    answer_text = text("answer_text")
    agency = text("agency")
    source_url = text("source_url")
    if source_url and not re.match(r"^https?://[^\s/]+\.[^\s]+$", source_url):
        report("source_url", f"not an http(s) URL: {source_url!r}")
    updated = text("updated")
    if updated:
        try:
            date.fromisoformat(updated)
        except ValueError:
            report("updated", f"not an ISO date (YYYY-MM-DD): {updated!r}")
    if len(problems) > before:
        return None
    return FaqEntry(id=entry_id, topic=topic, locale=locale, question=question, alternates=alternates,
                    answer_speech=speech, answer_text=answer_text, agency=agency, source_url=source_url,
                    updated=updated, path=path, line=_line(node))


def _alternates(path: Path, node: yaml.Node | None, problems: list[CorpusProblem]) -> tuple[str, ...]:
    if node is None:
        return ()
    if not isinstance(node, yaml.SequenceNode):
        problems.append(CorpusProblem(path, _line(node), "alternates", "must be a list of phrasings"))
        return ()
    out = []
    for item in node.value:
        if not isinstance(item, yaml.ScalarNode) or not str(item.value).strip():
            problems.append(CorpusProblem(path, _line(item), "alternates",
                                          "each alternate must be non-empty text"))
            continue
        out.append(str(item.value).strip())
    return tuple(out)
