"""The spotted command list (data/voice/spoken_commands.yaml): short, and each phrase means its intent to the
dialog, so a command heard by the grammar pass does what the citizen said."""

from __future__ import annotations

import pytest

from voice.commands import command_phrases, spoken_commands

ROWS = [(locale, intent, phrase) for locale, intents in spoken_commands().items()
        for intent, phrases in intents.items() for phrase in phrases]


def test_both_locales_list_only_commands_that_change_nothing():
    assert set(spoken_commands()) == {"ko-KR", "en-US"}
    for intents in spoken_commands().values():
        assert set(intents) == {"help", "cancel", "stop", "repeat"}
    # Every phrase is also a way for other speech to be taken for a command: the list stays short.
    assert all(len(command_phrases(locale)) <= 40 for locale in spoken_commands())
    assert command_phrases("ja-JP") == []


@pytest.mark.parametrize(("locale", "intent", "phrase"), ROWS, ids=[f"{r[0]}:{r[2]}" for r in ROWS])
def test_each_spotted_phrase_means_its_intent_to_the_dialog(conversation, locale, intent, phrase):
    reply = conversation(None, locale).say(phrase)
    assert reply["intent"] == intent
