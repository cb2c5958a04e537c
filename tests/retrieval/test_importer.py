"""Importing an agency's CSV/JSON export as a corpus file."""

from __future__ import annotations

import json
import shutil

import pytest

from retrieval.corpus import CorpusError, load_corpus, speech_problem
from retrieval.importer import ExportFormatError, import_export, spoken_summary
from tests.retrieval.conftest import CORPUS_DIR

CSV = "\n".join([
    "\ufeff번호,질문,답변,등록일",
    "1,무인민원발급기는 어디에 있나요?,무인민원발급기는 주민센터와 지하철역 등에 있습니다. "
    "위치는 정부24(https://www.gov.kr)에서 확인할 수 있습니다. 운영 시간은 장소마다 다릅니다.,2024-01-01",
    '2,발급 수수료는 얼마인가요?,"**수수료**는 증명서마다 다릅니다. '
    '자세한 내용은 <b>민원 안내</b>를 확인하세요.",2024-01-02',
    "3,,질문이 빠진 줄,2024-01-03",
]) + "\n"


@pytest.fixture
def corpus_dir(tmp_path):
    target = tmp_path / "faq"
    target.mkdir()
    shutil.copy(CORPUS_DIR / "passport-issuance.yaml", target)
    return target


def test_csv_export_becomes_a_valid_corpus_file(tmp_path, corpus_dir):
    export = tmp_path / "export.csv"
    export.write_text(CSV, encoding="utf-8")
    written = import_export(export, "kiosk-locations", "ko-KR", corpus_dir, agency="행정안전부",
                            source_url="https://www.gov.kr", updated="2026-11-20")
    assert written == corpus_dir / "kiosk-locations-import.yaml"
    entries = [e for e in load_corpus(corpus_dir).entries if e.topic == "kiosk-locations"]
    assert [e.question for e in entries] == ["무인민원발급기는 어디에 있나요?", "발급 수수료는 얼마인가요?"]
    first, second = entries
    assert first.answer_speech == ("무인민원발급기는 주민센터와 지하철역 등에 있습니다. "
                                   "위치는 정부24에서 확인할 수 있습니다.")
    assert "https://www.gov.kr" in first.answer_text
    assert second.answer_speech == "수수료는 증명서마다 다릅니다. 자세한 내용은 민원 안내를 확인하세요."
    assert all(speech_problem(e.answer_speech, e.locale) is None for e in entries)
    assert {e.updated for e in entries} == {"2026-11-20"}


def test_json_export_with_a_data_wrapper(tmp_path, corpus_dir):
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"data": [
        {"title": "How do I find a kiosk?", "content": "Kiosks are in community centers and stations. "
                                                          "Find one on Government24. Hours vary."},
    ]}), encoding="utf-8")
    import_export(export, "kiosk-locations", "en-US", corpus_dir,
                  agency="Ministry of the Interior and Safety", source_url="https://www.gov.kr")
    [entry] = [e for e in load_corpus(corpus_dir).entries if e.topic == "kiosk-locations"]
    assert entry.id == "kiosk-locations.en.import-1"
    assert entry.answer_speech == "Kiosks are in community centers and stations. Find one on Government24."


def test_reimport_replaces_the_earlier_import(tmp_path, corpus_dir):
    export = tmp_path / "export.csv"
    export.write_text(CSV, encoding="utf-8")
    for _ in range(2):
        import_export(export, "kiosk-locations", "ko-KR", corpus_dir, agency="행정안전부",
                      source_url="https://www.gov.kr")
    ids = [e.id for e in load_corpus(corpus_dir).entries if e.topic == "kiosk-locations"]
    assert ids == ["kiosk-locations.ko.import-1", "kiosk-locations.ko.import-2"]


def test_export_without_question_column_is_refused_and_writes_nothing(tmp_path, corpus_dir):
    export = tmp_path / "export.csv"
    export.write_text("번호,내용\n1,답만 있음\n", encoding="utf-8")
    with pytest.raises(ExportFormatError, match="question"):
        import_export(export, "kiosk-locations", "ko-KR", corpus_dir, agency="행정안전부",
                      source_url="https://www.gov.kr")
    assert sorted(p.name for p in corpus_dir.iterdir()) == ["passport-issuance.yaml"]


def test_bad_source_url_fails_validation_and_leaves_no_file(tmp_path, corpus_dir):
    export = tmp_path / "export.csv"
    export.write_text(CSV, encoding="utf-8")
    with pytest.raises(CorpusError) as raised:
        import_export(export, "kiosk-locations", "ko-KR", corpus_dir, agency="행정안전부", source_url="gov24")
    assert {p.field for p in raised.value.problems} == {"source_url"}
    assert sorted(p.name for p in corpus_dir.iterdir()) == ["passport-issuance.yaml"]


def test_long_first_sentence_is_cut_at_a_word_boundary():
    answer = "이 답변은 " + "아주 긴 문장의 일부이고 " * 20 + "끝납니다."
    spoken = spoken_summary(answer, "ko-KR")
    assert len(spoken) <= 160 and not spoken.endswith(" ")
    assert answer.startswith(spoken)
