"""Slot evidence the router reads (understanding/features.py): soft features, checked here on what they say."""

from __future__ import annotations

import pytest

from understanding.features import evidence_terms
from understanding.service import SLOTS_DIR
from understanding.slots import SlotVocabulary


@pytest.fixture(scope="module")
def vocabulary() -> SlotVocabulary:
    return SlotVocabulary.load(SLOTS_DIR)


@pytest.mark.parametrize("text", [
    "is my income data shared with the tax office",
    "does the housing finance corporation get my health insurance data",
    "are you sending my income data to the tax office",
    "국세청에 소득 정보 가고 있나요",
    "건보공단한테 내 주민등록 정보 넘어가 있는지 알려 줘",
])
def test_a_yes_or_no_question_about_a_recipient_and_an_item_is_marked_as_asking(vocabulary, text):
    terms = evidence_terms(vocabulary.read(text))
    assert "cue:asks" in terms
    assert "pair:recipient+asks" in terms and "pair:data_item+asks" in terms


@pytest.mark.parametrize("text", [
    "can you share my income data with the tax office",
    "share my health insurance data with the housing finance corporation",
    "국세청에 소득 정보 보내 줘",
    "건보공단에 주민등록 정보 공유해 줄래",
])
def test_a_request_to_share_is_not_marked_as_asking(vocabulary, text):
    assert "cue:asks" not in evidence_terms(vocabulary.read(text))
