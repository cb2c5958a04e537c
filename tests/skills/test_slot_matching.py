"""Slot matching rules that the personal skills rely on (skills/nlu.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from settings import PROJECT_DATA
from skills.nlu import IntentMatcher
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def matcher() -> IntentMatcher:
    return IntentMatcher.load(PROJECT_DATA)


def test_exact_word_beats_a_near_miss_of_a_longer_alias(matcher):
    # Per alias, 건강보험공단 would be a near miss of "건강보험공유"; exact aliases are taken first.
    parse = matcher.parse("건강보험 공유 꺼줘", "ko-KR")
    assert parse.slots == {"data_item": "health-insurance"} and "recipient" not in parse.slots
    # A near miss still counts where nothing exact is said.
    _, found = matcher.vocabulary.find("가족관게증명서 어떻게 됐어", only="document")
    assert found == {"document": ["family-relation-certificate"]}


def test_short_latin_aliases_count_only_as_whole_words(matcher):
    _, found = matcher.vocabulary.find("don't share my income with the health insurance service")
    assert found["recipient"] == ["nhis"]  # not NTS from "do-nt s-hare"
    _, found = matcher.vocabulary.find("stop sharing this with NTS", only="recipient")
    assert found == {"recipient": ["nts"]}  # "this" is no near miss of "nhis"
    _, found = matcher.vocabulary.find("HF 공유 꺼줘", only="recipient")
    assert found == {"recipient": ["hf"]}


def test_several_types_at_once(matcher):
    _, found = matcher.vocabulary.find("국민건강보험공단에 건강보험 정보 공유 꺼줘", only=("recipient", "data_item"))
    assert found == {"recipient": ["nhis"], "data_item": ["health-insurance"]}


def test_same_alias_in_two_types_parses_the_same_way_in_every_process():
    # 건강보험 is a data item and a document alias, 건보 a recipient and a document alias: ties are broken by a
    # fixed order, not by the (per-process, randomised) order of a set of strings.
    script = ("from settings import PROJECT_DATA; from skills.nlu import IntentMatcher; m = IntentMatcher.load(PROJECT_DATA); "
              "print(sorted(m.vocabulary.find('건강보험')[1]), sorted(m.vocabulary.find('건보')[1]))")
    outputs = {
        subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
        for seed in (1, 2, 3, 4, 5)
    }
    assert outputs == {"['data_item'] ['document']\n"}


def test_a_placeholder_weighs_one_character(matcher):
    # "{document}" is one word: an FAQ question naming a document is not a status request.
    assert matcher.parse("등본 떼려면 어떻게 해?", "ko-KR").intent is None
    assert matcher.parse("등본 아직 유효해?", "ko-KR").intent == "certificate_status"
