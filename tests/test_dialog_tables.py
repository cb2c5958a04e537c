"""Utterance → intent + slots tables (tests/dialog/<locale>/*.yaml), in the manner of home-assistant/intents.

Each row: {text, intent, slots?}. Every skill adds its own file; this runner needs no change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services import DATA
from skills.nlu import IntentMatcher

TABLES = Path(__file__).parent / "dialog"


def rows():
    for path in sorted(TABLES.glob("*/*.yaml")):
        for row in yaml.safe_load(path.read_text(encoding="utf-8")):
            yield pytest.param(path.parent.name, row, id=f"{path.parent.name}/{path.stem}: {row['text']}")


@pytest.fixture(scope="module")
def matcher() -> IntentMatcher:
    return IntentMatcher.load(DATA)


@pytest.mark.parametrize(("locale", "row"), list(rows()))
def test_utterance(matcher, locale, row):
    parse = matcher.parse(row["text"], locale)
    assert parse.intent == row["intent"], f"score {parse.score:.0f}"
    if "slots" in row:
        assert parse.slots == row["slots"]
    if "ambiguous" in row:
        assert parse.ambiguous == row["ambiguous"]
