"""The evaluation: metrics computed from real searches, table and target checks."""

from __future__ import annotations

import pytest

from retrieval.eval import check_targets, format_table, load_devset, run_evaluation

DEVSET = """\
- {query: "여권 새로 만들 때 필요한 서류", locale: ko-KR, topic: passport-issuance, kind: colloquial-ko}
- {query: "운전면허갱신하는곳", locale: ko-KR, topic: driver-license-renewal, kind: nospace}
- {query: "how do I register a birth", locale: en-US, topic: birth-registration, kind: english}
- {query: "실업급여 신청 방법", locale: ko-KR, topic: unemployment-benefit, kind: formal-ko}
- {query: "오늘 저녁 메뉴 추천해 줘", locale: ko-KR, topic: null, kind: ood}
- {query: "play some relaxing music", locale: en-US, topic: null, kind: ood}
"""


@pytest.fixture(scope="module")
def report(searcher, tmp_path_factory):
    path = tmp_path_factory.mktemp("devset") / "devset.yaml"
    path.write_text(DEVSET, encoding="utf-8")
    return run_evaluation(searcher, path)


def test_figures_come_from_the_searches(report):
    hybrid = report["rankers"]["hybrid"]
    assert report["queries"] == 6
    assert (hybrid["in_domain"], hybrid["out_of_domain"]) == (4, 2)
    assert hybrid["recall_at_1"] == 1.0 and hybrid["mrr"] == 1.0
    assert hybrid["ood_rejection"] == 1.0
    assert hybrid["false_rejection"] == 0.0
    assert 0 < hybrid["p50_ms"] <= hybrid["p95_ms"]
    assert set(report["rankers"]) == {"lexical", "dense", "hybrid"}
    assert hybrid["recall_at_1_by_kind"]["nospace"] == 1.0


def test_table_lists_every_ranker_and_metric(report):
    table = format_table(report)
    for needle in ("lexical", "dense", "hybrid", "Recall@1", "Recall@5", "MRR", "OOD rejection",
                   "false rejection", "p50", "p95"):
        assert needle in table


def test_targets_are_judged_against_the_issue_bars(report):
    fake = {"build_seconds": 10.0, "rankers": {
        "lexical": {"recall_at_1": 0.80},
        "dense": {"recall_at_1": 0.85},
        "hybrid": {"recall_at_1": 0.95, "mrr": 0.96, "ood_rejection": 0.92, "false_rejection": 0.04,
                   "p95_ms": 20.0}}}
    assert all(check_targets(fake).values())
    fake["rankers"]["dense"]["recall_at_1"] = 0.90
    fake["rankers"]["hybrid"]["false_rejection"] = 0.06
    verdict = check_targets(fake)
    assert verdict["margin_over_best_single"] is False and verdict["false_rejection"] is False
    assert verdict["recall_at_1"] is True


def test_devset_split_is_deterministic_and_disjoint(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text(DEVSET * 2, encoding="utf-8")
    tune, holdout = load_devset(path, "tune"), load_devset(path, "holdout")
    assert len(tune) == 9 and len(holdout) == 3
    assert {i.position for i in tune}.isdisjoint({i.position for i in holdout})
