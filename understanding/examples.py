"""The intent examples of data/intents/<locale>/<intent>.yaml: what the router learns each intent from (after
the variant generator multiplies them), and what the speech recogniser listens for as commands."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

LOCALES = ("ko-KR", "en-US")


@dataclass(frozen=True)
class IntentExample:
    intent: str
    locale: str
    template: str  # as written, with {placeholders} for slot values ("{document} 상태 알려줘")


class IntentExamples:
    def __init__(self, examples: list[IntentExample]) -> None:
        self.examples = list(examples)

    @classmethod
    def load(cls, intents_dir: Path) -> IntentExamples:
        examples: list[IntentExample] = []
        for path in sorted(Path(intents_dir).glob("*/*.yaml")):
            locale = path.parent.name
            if locale not in LOCALES:
                raise ValueError(f"{path}: unknown locale directory {locale!r}")
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            intent = raw.get("intent")
            if not intent or not isinstance(raw.get("examples"), list):
                raise ValueError(f"{path}: needs an intent name and a list of examples")
            examples.extend(IntentExample(str(intent), locale, str(text)) for text in raw["examples"])
        return cls(examples)

    @property
    def intents(self) -> list[str]:
        return sorted({e.intent for e in self.examples})

    def templates(self, intent: str, locale: str) -> list[str]:
        return [e.template for e in self.examples if e.intent == intent and e.locale == locale]

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for e in self.examples:
            digest.update(f"{e.intent}\0{e.locale}\0{e.template}\n".encode())
        return digest.hexdigest()
