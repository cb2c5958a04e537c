"""Index persistence: reuse when current, rebuild when stale or corrupt, swap on reload."""

from __future__ import annotations

import json
import logging
import shutil
import threading

import pytest

import retrieval.search as search_module
from retrieval.search import FaqSearcher, index_directory
from tests.retrieval.conftest import CORPUS_DIR

SMALL_TOPICS = ("passport-issuance", "driver-license-renewal", "move-in-report", "basic-pension")


@pytest.fixture
def small_corpus(tmp_path):
    corpus_dir = tmp_path / "faq"
    corpus_dir.mkdir()
    for topic in SMALL_TOPICS:
        shutil.copy(CORPUS_DIR / f"{topic}.yaml", corpus_dir)
    return corpus_dir


@pytest.fixture
def builds(monkeypatch):
    """Counts real index builds (the real build still runs)."""
    calls = []
    real_build = search_module.build_index

    def counting_build(*args, **kwargs):
        calls.append(1)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(search_module, "build_index", counting_build)
    return calls


def load(tmp_path, corpus_dir, normalizer, encoder):
    return FaqSearcher.load_or_build(tmp_path / "data", corpus_dir, normalizer=normalizer, encoder=encoder)


def test_persisted_index_is_reused_when_the_corpus_is_unchanged(tmp_path, small_corpus, builds,
                                                                 normalizer, encoder):
    first = load(tmp_path, small_corpus, normalizer, encoder)
    directory = index_directory(tmp_path / "data")
    manifest = json.loads((directory / "manifest.json").read_text())
    assert set(manifest["sha256"]) == {"dense.faiss", "index.npz"}
    second = load(tmp_path, small_corpus, normalizer, encoder)
    assert len(builds) == 1
    query = ("여권 처음 만들 때 필요한 것", "ko-KR")
    assert [h.id for h in second.search(*query).results] == [h.id for h in first.search(*query).results]
    stored, built = second.index.calibrators["hybrid"], first.index.calibrators["hybrid"]
    assert (stored.to_array() == built.to_array()).all()


def test_edited_corpus_makes_the_index_stale_and_rebuilds(tmp_path, small_corpus, builds,
                                                          normalizer, encoder):
    load(tmp_path, small_corpus, normalizer, encoder)
    key_before = json.loads((index_directory(tmp_path / "data") / "manifest.json").read_text())["key"]
    path = small_corpus / "basic-pension.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "alternates:\n", "alternates:\n    - 노령연금 말고 기초연금 따로 신청해야 돼\n", 1), encoding="utf-8")
    searcher = load(tmp_path, small_corpus, normalizer, encoder)
    key_after = json.loads((index_directory(tmp_path / "data") / "manifest.json").read_text())["key"]
    assert len(builds) == 2
    assert key_after != key_before
    phrasings = {p for e in searcher.index.entries for p in e.phrasings}
    assert "노령연금 말고 기초연금 따로 신청해야 돼" in phrasings


@pytest.mark.parametrize("damage", ["garbage-npz", "truncated-faiss", "bad-manifest", "missing-npz"])
def test_corrupt_index_is_rebuilt_with_a_warning(tmp_path, small_corpus, builds, normalizer, encoder,
                                                 caplog, damage):
    load(tmp_path, small_corpus, normalizer, encoder)
    directory = index_directory(tmp_path / "data")
    if damage == "garbage-npz":
        (directory / "index.npz").write_bytes(b"not an npz file at all")
    elif damage == "truncated-faiss":
        data = (directory / "dense.faiss").read_bytes()
        (directory / "dense.faiss").write_bytes(data[: len(data) // 2])
    elif damage == "bad-manifest":
        manifest = json.loads((directory / "manifest.json").read_text())
        manifest["sha256"]["index.npz"] = "0" * 64
        (directory / "manifest.json").write_text(json.dumps(manifest))
    else:
        (directory / "index.npz").unlink()
    with caplog.at_level(logging.WARNING, logger="retrieval.search"):
        searcher = load(tmp_path, small_corpus, normalizer, encoder)
    assert len(builds) == 2
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    assert searcher.search("운전면허 갱신하러 어디 가", "ko-KR").results[0].topic == "driver-license-renewal"
    # and the rebuilt index on disk is whole again
    load(tmp_path, small_corpus, normalizer, encoder)
    assert len(builds) == 2


def test_unreadable_manifest_json_rebuilds(tmp_path, small_corpus, builds, normalizer, encoder):
    load(tmp_path, small_corpus, normalizer, encoder)
    (index_directory(tmp_path / "data") / "manifest.json").write_text("{ half a json")
    load(tmp_path, small_corpus, normalizer, encoder)
    assert len(builds) == 2


def test_reload_swaps_in_a_new_index_while_searches_keep_running(tmp_path, small_corpus, normalizer, encoder):
    searcher = load(tmp_path, small_corpus, normalizer, encoder)
    old_index = searcher.index
    shutil.copy(CORPUS_DIR / "child-allowance.yaml", small_corpus)
    errors, answered = [], []
    stop = threading.Event()

    def keep_searching():
        while not stop.is_set():
            try:
                answered.append(searcher.search("여권 발급 어디서 해요", "ko-KR").results[0].topic)
            except Exception as exc:  # any failure during the swap is the bug under test
                errors.append(exc)

    worker = threading.Thread(target=keep_searching)
    worker.start()
    try:
        new_index = searcher.reload()
    finally:
        stop.set()
        worker.join()
    assert errors == []
    assert answered and set(answered) == {"passport-issuance"}
    assert searcher.index is new_index is not old_index
    assert searcher.search("아동수당 신청 방법", "ko-KR").results[0].topic == "child-allowance"


def test_reload_with_a_broken_corpus_keeps_the_current_index(tmp_path, small_corpus, normalizer, encoder):
    from retrieval.corpus import CorpusError

    searcher = load(tmp_path, small_corpus, normalizer, encoder)
    before = searcher.index
    (small_corpus / "broken.yaml").write_text("- id: x\n  topic: Not A Topic\n", encoding="utf-8")
    with pytest.raises(CorpusError):
        searcher.reload()
    assert searcher.index is before


def test_cross_locale_fallback_when_the_topic_has_no_entry_in_the_session_locale(
        tmp_path, small_corpus, normalizer, encoder):
    path = small_corpus / "basic-pension.yaml"
    text = path.read_text(encoding="utf-8")
    korean_only = text[: text.index("- id: basic-pension.en.")]
    path.write_text(korean_only, encoding="utf-8")
    searcher = load(tmp_path, small_corpus, normalizer, encoder)
    hit = searcher.search("who can get the basic pension", "en-US").results[0]
    assert hit.topic == "basic-pension"
    assert hit.locale == "ko-KR"  # the only answer there is; its locale says so


def test_a_second_process_picks_up_an_index_another_one_stored(tmp_path, small_corpus, normalizer, encoder,
                                                               monkeypatch):
    """Two searchers on one data directory stand for two gunicorn workers: a reload sent to one
    reaches the other through the stored index, without the other rebuilding."""
    monkeypatch.setattr(search_module, "DISK_CHECK_SECONDS", 0.0)
    worker_a = load(tmp_path, small_corpus, normalizer, encoder)
    worker_b = load(tmp_path, small_corpus, normalizer, encoder)
    shutil.copy(CORPUS_DIR / "child-allowance.yaml", small_corpus)
    new_index = worker_a.reload()
    worker_b.search("여권", "ko-KR")  # notices the stored index and loads it in the background
    for _ in range(200):
        if worker_b.index.key == new_index.key:
            break
        threading.Event().wait(0.05)
    assert worker_b.index.key == new_index.key
    assert worker_b.search("아동수당 신청 방법", "ko-KR").results[0].topic == "child-allowance"
