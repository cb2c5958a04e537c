"""The short commands listened for during open speech (data/voice/spoken_commands.yaml), by locale and intent."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from settings import PROJECT_DATA

SPOKEN_COMMANDS_FILE = PROJECT_DATA / "voice" / "spoken_commands.yaml"


@cache
def spoken_commands(path: Path = SPOKEN_COMMANDS_FILE) -> dict[str, dict[str, tuple[str, ...]]]:
    """locale → intent → phrases."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {str(locale): {str(intent): tuple(str(p) for p in phrases) for intent, phrases in intents.items()}
            for locale, intents in raw.items()}


def command_phrases(locale: str) -> list[str]:
    """Every spotted phrase of a locale (none for a locale without a list)."""
    return [phrase for phrases in spoken_commands().get(locale, {}).values() for phrase in phrases]
