"""Slot matching rules that the router and the personal skills rely on (understanding/slots.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from settings import PROJECT_DATA
from tests.conftest import ROOT
from understanding.slots import SlotVocabulary


@pytest.fixture(scope="module")
def vocabulary() -> SlotVocabulary:
    return SlotVocabulary.load(PROJECT_DATA / "slots")


def test_exact_word_beats_a_near_miss_of_a_longer_alias(vocabulary, services):
    # Per alias, 건강보험공단 would be a near miss of "건강보험공유"; exact aliases are taken first.
    routing = services.router.route("건강보험 공유 꺼줘")
    assert routing.decision == "consent_off"
    assert routing.slots == {"data_item": "health-insurance"} and "recipient" not in routing.slots
    # A near miss still counts where nothing exact is said.
    _, found = vocabulary.find("가족관게증명서 어떻게 됐어", only="document")
    assert found == {"document": ["family-relation-certificate"]}


def test_short_latin_aliases_count_only_as_whole_words(vocabulary):
    _, found = vocabulary.find("don't share my income with the health insurance service")
    assert found["recipient"] == ["nhis"]  # not NTS from "do-nt s-hare"
    _, found = vocabulary.find("stop sharing this with NTS", only="recipient")
    assert found == {"recipient": ["nts"]}  # "this" is no near miss of "nhis"
    _, found = vocabulary.find("HF 공유 꺼줘", only="recipient")
    assert found == {"recipient": ["hf"]}


def test_several_types_at_once(vocabulary):
    _, found = vocabulary.find("국민건강보험공단에 건강보험 정보 공유 꺼줘", only=("recipient", "data_item"))
    assert found == {"recipient": ["nhis"], "data_item": ["health-insurance"]}


def test_same_alias_in_two_types_parses_the_same_way_in_every_process():
    # 건강보험 is a data item and a document alias, 건보 a recipient and a document alias: ties are broken by a
    # fixed order, not by the (per-process, randomised) order of a set of strings.
    script = ("from settings import PROJECT_DATA; from understanding.slots import SlotVocabulary; "
              "v = SlotVocabulary.load(PROJECT_DATA / 'slots'); "
              "print(sorted(v.find('건강보험')[1]), sorted(v.find('건보')[1]))")
    outputs = {
        subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
        for seed in (1, 2, 3, 4, 5)
    }
    assert outputs == {"['data_item'] ['document']\n"}


def test_a_document_named_in_an_faq_question_is_no_status_request(services):
    # "{document}" plus a how-to verb is a question for the FAQ; plus a status word, a status request.
    assert services.router.route("등본 떼려면 어떻게 해?").decision == "faq"
    assert services.router.route("등본 아직 유효해?").decision == "certificate_status"


def test_the_spoken_template_keeps_spaces_and_marks_each_value(vocabulary):
    reading = vocabulary.read("국세청에 정보 넘기는 거 막아 줘")
    assert reading.template == "{recipient}에 정보 넘기는 거 막아 줘"
    assert reading.squashed == "{recipient}에정보넘기는거막아줘"
    reading = vocabulary.read("Stop sharing my income with NTS, please")
    assert reading.template == "stop sharing my {data_item} with {recipient}, please"
    assert reading.found == {"recipient": ["nts"], "data_item": ["income"]}
    # A near miss is marked where it was said, with its spaces around it.
    assert vocabulary.read("가족관게증명서 어떻게 됐어").template == "{document} 어떻게 됐어"


def test_an_alias_two_types_share_is_read_both_ways(vocabulary):
    readings = vocabulary.readings("건강보험 상태 알려줘")
    assert [r.found for r in readings] == [{"data_item": ["health-insurance"]},
                                           {"document": ["health-insurance-eligibility"]}]
    assert len(vocabulary.readings("등본 상태 알려줘")) == 1
