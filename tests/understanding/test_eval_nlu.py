"""`eval-nlu` on the real development set, held-out split, with the router and the FAQ search the session's app
loaded (the same models `python app.py eval-nlu` builds from the same inputs).

The issue's targets are `evaluation.TARGETS`, and `eval-nlu` reports each as met or MISSED. On the held-out split
(README, "Understanding what citizens say"; nlu5, 2026-12-01): accuracy en-US 0.966 (met), ko-KR 0.972 (met); the
recall of every personal intent 0.917 (consent_list, 22 of 24) or more, against 0.90 (met); FAQ → FAQ 0.987 (met);
out-of-domain rejection 0.974 (met); clarifying questions 0.3 % (met). These tests hold the level reached, so that a
change that makes the router worse fails: each floor is the figure measured when the router landed less 0.02
(room for floating-point differences between machines), and clarifying questions are held to the target. A floor
is raised when a figure rises, never lowered to let a change through."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from understanding import evaluation

TARGETS = evaluation.TARGETS
FLOORS = {
    "accuracy_per_locale": {"ko-KR": 0.951, "en-US": 0.946},
    "personal_recall": 0.896,
    "faq_to_faq": 0.967,
    "ood_rejection": 0.954,
}


@pytest.fixture(scope="module")
def heldout(services) -> dict:
    items = evaluation.load_split(evaluation.DEV_DIR, "heldout")
    assert len(items) >= 300
    return evaluation.figures(evaluation.score(services.router, services.components["faq"], items))


def test_heldout_accuracy_in_each_locale_holds(heldout):
    floors = FLOORS["accuracy_per_locale"]
    assert all(heldout["accuracy_by_locale"][locale] >= floor for locale, floor in floors.items()), \
        heldout["accuracy_by_locale"]


def test_heldout_recall_of_every_personal_intent_holds(heldout):
    assert all(value >= FLOORS["personal_recall"] for value in heldout["personal_recall"].values()), \
        heldout["personal_recall"]


def test_heldout_faq_questions_go_to_the_faq(heldout):
    assert heldout["faq_to_faq"] >= FLOORS["faq_to_faq"]


def test_heldout_out_of_domain_requests_are_rejected(heldout):
    assert heldout["ood_rejection"] >= FLOORS["ood_rejection"]


def test_heldout_clarifying_questions_are_rare(heldout):
    assert heldout["clarify_rate_in_domain"] <= TARGETS["clarify_max"]


def test_the_figures_hold_together(heldout):
    """What the report adds up: every utterance has one outcome, and the slots a personal request names are read
    (the skills re-read them anyway, but the router hands them on)."""
    assert sum(heldout["outcomes"].values()) == heldout["items"]
    assert heldout["slots_exact"] >= 0.95
    assert set(heldout["per_intent"]) == {"ko-KR", "en-US", "all"}


def test_eval_nlu_without_the_dev_set_exits_non_zero(tmp_path):
    (tmp_path / "tuning.yaml").write_text("- {text: 안녕, locale: ko-KR, intent: greeting, kind: colloquial-ko}\n",
                                          encoding="utf-8")
    result = subprocess.run([sys.executable, "app.py", "eval-nlu", "--dev", str(tmp_path), "--split", "heldout"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "MINWON_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 2
    assert "heldout.yaml" in result.stderr and "Traceback" not in result.stderr
