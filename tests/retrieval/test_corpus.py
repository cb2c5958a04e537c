"""The corpus loader: every kind of bad entry fails with its file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.corpus import CorpusError, count_sentences, load_corpus
from tests.retrieval.conftest import CORPUS_DIR, entry, write_entry

GOOD = """\
- id: passport-issuance.ko.1
  topic: passport-issuance
  locale: ko-KR
  question: 여권은 어디서 만드나요?
  alternates:
    - 여권 발급 어디서 해
  answer_speech: 여권은 시청이나 구청의 여권 민원실에서 신청해요. 본인이 직접 가야 합니다.
  answer_text: 여권은 전국 여권 사무 대행 기관에서 신청합니다.
  agency: 외교부
  source_url: https://www.passport.go.kr
  updated: "2026-11-26"
"""


def problems_of(corpus_dir: Path) -> list:
    with pytest.raises(CorpusError) as raised:
        load_corpus(corpus_dir)
    return raised.value.problems


def test_good_file_loads_with_its_line(tmp_path):
    (tmp_path / "passport-issuance.yaml").write_text(GOOD, encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert [e.id for e in corpus.entries] == ["passport-issuance.ko.1"]
    assert corpus.entries[0].line == 1
    assert corpus.entries[0].phrasings == ("여권은 어디서 만드나요?", "여권 발급 어디서 해")


def test_missing_field_names_file_line_and_field(tmp_path):
    text = GOOD + GOOD.replace("ko.1", "ko.2").replace("  agency: 외교부\n", "")
    path = tmp_path / "passport-issuance.yaml"
    path.write_text(text, encoding="utf-8")
    [problem] = problems_of(tmp_path)
    assert (problem.path, problem.line, problem.field) == (path, 12, "agency")
    assert "missing" in problem.message
    assert f"{path}:12: agency: missing field" in str(CorpusError([problem]))


@pytest.mark.parametrize("topic", ["Passport_Issuance", "passport issuance", "passport--issuance",
                                   "-passport"])
def test_bad_topic_format(tmp_path, topic):
    path = tmp_path / "x.yaml"
    path.write_text(GOOD.replace("topic: passport-issuance", f"topic: '{topic}'"), encoding="utf-8")
    [problem] = problems_of(tmp_path)
    assert (problem.path, problem.line, problem.field) == (path, 2, "topic")


def test_unknown_locale(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(GOOD.replace("locale: ko-KR", "locale: ja-JP"), encoding="utf-8")
    [problem] = problems_of(tmp_path)
    assert (problem.line, problem.field) == (3, "locale")
    assert "ja-JP" in problem.message


def test_duplicate_id_across_files_points_at_both(tmp_path):
    first = tmp_path / "a.yaml"
    second = tmp_path / "b.yaml"
    first.write_text(GOOD, encoding="utf-8")
    second.write_text(GOOD, encoding="utf-8")
    [problem] = problems_of(tmp_path)
    assert (problem.path, problem.line, problem.field) == (second, 1, "id")
    assert f"{first}:1" in problem.message


def test_speech_over_the_length_limit(tmp_path):
    long_speech = "여권은 시청이나 구청에서 신청할 수 있고 " * 8 + "본인이 가야 합니다."
    path = write_entry(tmp_path / "x.yaml", [entry(answer_speech=long_speech)])
    [problem] = problems_of(tmp_path)
    assert (problem.path, problem.field) == (path, "answer_speech")
    assert problem.line == 8  # id, topic, locale, question, alternates + 2 items, then answer_speech
    assert "characters" in problem.message


def test_speech_with_three_sentences(tmp_path):
    speech = "여권은 구청에서 만들어요. 사진이 필요해요. 본인이 가야 해요."
    write_entry(tmp_path / "x.yaml", [entry(answer_speech=speech)])
    [problem] = problems_of(tmp_path)
    assert problem.field == "answer_speech" and "3 sentences" in problem.message


@pytest.mark.parametrize("speech", [
    "정부24 https://www.gov.kr 에서 신청하세요.",
    "gov.kr에서 신청하세요.",
    "**정부24**에서 신청하세요.",
    "[정부24](https://www.gov.kr)에서 신청하세요.",
])
def test_speech_with_url_or_markdown(tmp_path, speech):
    write_entry(tmp_path / "x.yaml", [entry(answer_speech=speech)])
    [problem] = problems_of(tmp_path)
    assert problem.field == "answer_speech"
    assert "URL" in problem.message or "markdown" in problem.message


def test_unknown_field_and_bad_date_are_both_reported(tmp_path):
    text = GOOD.replace('updated: "2026-11-26"', 'updated: "26.11.2026"') + "  alternate: oops\n"
    (tmp_path / "x.yaml").write_text(text, encoding="utf-8")
    problems = problems_of(tmp_path)
    assert {(p.line, p.field) for p in problems} == {(11, "updated"), (12, "alternate")}


def test_broken_yaml_reports_its_line(tmp_path):
    (tmp_path / "x.yaml").write_text(GOOD + "- id: [unclosed\n  topic: x\n", encoding="utf-8")
    [problem] = problems_of(tmp_path)
    assert problem.line >= 12 and "YAML" in problem.message


def test_sentence_counting_ignores_decimals():
    assert count_sentences("수수료는 1.5배예요. 창구에서 내요.") == 2
    assert count_sentences("Call 110. It is free") == 2


REQUIRED_TOPICS = [
    "resident-registration-copy", "resident-registration-abstract", "move-in-report",
    "family-relation-certificate", "basic-certificate", "birth-registration", "death-registration",
    "marriage-registration", "seal-certificate", "passport-issuance", "passport-reissue-online",
    "driver-license-renewal", "vehicle-registration", "traffic-fine-payment",
    "health-insurance-eligibility", "health-insurance-premium", "national-pension-record",
    "income-amount-certificate", "year-end-tax-settlement", "local-tax-payment",
    "tax-payment-certificate", "business-registration", "unemployment-benefit", "basic-pension",
    "child-allowance", "parental-leave-benefit", "housing-benefit", "disability-registration",
    "vaccination-certificate", "mobile-id", "digital-wallet", "mydata-consent", "gov24-login",
    "certificate-authenticity", "foreigner-registration", "foreigner-address-change",
    "building-land-register", "civil-complaint", "call-center-110", "voice-service-help",
]


def test_real_corpus_loads_and_covers_every_required_topic_in_both_languages():
    corpus = load_corpus(CORPUS_DIR)
    locales_by_topic: dict[str, set[str]] = {}
    for e in corpus.entries:
        locales_by_topic.setdefault(e.topic, set()).add(e.locale)
    missing = [t for t in REQUIRED_TOPICS if locales_by_topic.get(t) != {"ko-KR", "en-US"}]
    assert missing == []
