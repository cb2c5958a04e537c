"""The retrieval commands of `python app.py`, run as a citizen's administrator would run them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from retrieval.dense import packaged_minilm_dir
from tests.retrieval.conftest import CORPUS_DIR, ROOT
from understanding.service import INTENTS_DIR

DEVSET = """\
- {query: "여권 처음 만드는 곳", locale: ko-KR, topic: passport-issuance, kind: colloquial-ko}
- {query: "운전면허갱신기간", locale: ko-KR, topic: driver-license-renewal, kind: nospace}
- {query: "tell me a bedtime story", locale: en-US, topic: null, kind: ood}
"""


NLU_DEVSET = """\
- {text: "내 등본 어떻게 됐어", locale: ko-KR, intent: certificate_status, kind: colloquial-ko}
- {text: "여권 처음 만드는 곳", locale: ko-KR, intent: faq, topic: passport-issuance, kind: colloquial-ko}
- {text: "stop", locale: en-US, intent: stop, kind: english}
- {text: "tell me a bedtime story", locale: en-US, intent: out_of_domain, kind: ood}
"""


def few_intents(tmp_path) -> dict[str, str]:
    """The environment of a router trained on two intents' examples in both languages: seconds instead of minutes
    (minutes more with MiniLM), and these tests are about the commands; what the router learns from all the
    examples is tested in tests/understanding against the shared app's models."""
    intents = tmp_path / "intents"
    for locale in ("ko-KR", "en-US"):
        (intents / locale).mkdir(parents=True)
        for intent in ("certificate_status", "stop"):
            shutil.copy(INTENTS_DIR / locale / f"{intent}.yaml", intents / locale)
    return {"MINWON_INTENTS_DIR": str(intents)}


def run_app(*args: str, data_dir, timeout: int = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MINWON_DEMO": "1", "MINWON_DATA_DIR": str(data_dir), **(env or {})}
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_build_index_then_eval_retrieval(tmp_path):
    corpus = tmp_path / "faq"
    corpus.mkdir()
    for topic in ("passport-issuance", "driver-license-renewal", "move-in-report"):
        shutil.copy(CORPUS_DIR / f"{topic}.yaml", corpus)
    data = tmp_path / "data"
    intents = few_intents(tmp_path)
    built = run_app("build-index", "--corpus", str(corpus), data_dir=data, env=intents)
    assert built.returncode == 0, built.stderr
    summary = json.loads(built.stdout)
    written_entries = [line for p in corpus.glob("*.yaml")
                       for line in p.read_text(encoding="utf-8").splitlines() if line.startswith("- id:")]
    assert summary["entries"] == len(written_entries)
    manifest = data / "index" / "faq" / "manifest.json"
    built_at = json.loads(manifest.read_text())["built_at"]
    # The router's models are trained beside the index, from the same corpus and models.
    assert set(summary["router"]) == {"lexical", "dense"} and all(m["rows"] > 0 for m in summary["router"].values())
    # MINWON_INTENTS_DIR's two intents, the FAQ and "none": the configured examples, not the shipped ones.
    assert all(m["classes"] == 4 for m in summary["router"].values())
    router_manifests = {kind: data / "index" / "router" / kind / "manifest.json" for kind in summary["router"]}
    router_built = {kind: json.loads(path.read_text())["built_at"] for kind, path in router_manifests.items()}

    devset = tmp_path / "devset.yaml"
    devset.write_text(DEVSET, encoding="utf-8")
    out = tmp_path / "eval.json"
    evaluated = run_app("eval-retrieval", "--corpus", str(corpus), "--devset", str(devset), "--out", str(out),
                        data_dir=data, env=intents)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(manifest.read_text())["built_at"] == built_at  # the stored index was reused
    for column in ("lexical", "dense", "hybrid"):
        assert column in evaluated.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["queries"] == 3
    assert report["rankers"]["hybrid"]["recall_at_1"] == 1.0
    assert report["rankers"]["hybrid"]["ood_rejection"] == 1.0

    # eval-nlu on a small dev set of its own, with the same data directory: the stored router model is used.
    dev = tmp_path / "nlu"
    dev.mkdir()
    for split in ("tuning", "heldout"):
        (dev / f"{split}.yaml").write_text(NLU_DEVSET, encoding="utf-8")
    nlu_out = tmp_path / "nlu.json"
    evaluated = run_app("eval-nlu", "--dev", str(dev), "--out", str(nlu_out), data_dir=data,
                        env={"MINWON_FAQ_CORPUS_DIR": str(corpus), **intents})
    assert evaluated.returncode == 0, evaluated.stderr
    assert "targets:" in evaluated.stdout and "certificate_status" in evaluated.stdout
    nlu = json.loads(nlu_out.read_text(encoding="utf-8"))
    assert nlu["model"] == "dense" and nlu["splits"]["heldout"]["items"] == 4
    assert {kind: json.loads(path.read_text())["built_at"] for kind, path in router_manifests.items()} == router_built


def test_build_index_reports_a_broken_corpus(tmp_path):
    corpus = tmp_path / "faq"
    corpus.mkdir()
    (corpus / "bad.yaml").write_text("- id: bad\n  topic: bad\n", encoding="utf-8")
    result = run_app("build-index", "--corpus", str(corpus), data_dir=tmp_path / "data", timeout=120)
    assert result.returncode == 1
    assert "bad.yaml:1: locale: missing field" in result.stderr


def test_import_faq_command(tmp_path):
    corpus = tmp_path / "faq"
    corpus.mkdir()
    shutil.copy(CORPUS_DIR / "passport-issuance.yaml", corpus)
    export = tmp_path / "export.json"
    export.write_text(json.dumps([{"질문": "여권 사진 규격은?", "답변": "여권 사진은 가로 3.5센티미터, 세로 4.5센티미터예요. "
                                                                 "6개월 안에 찍은 사진이어야 해요."}],
                                 ensure_ascii=False), encoding="utf-8")
    result = run_app("import-faq", str(export), "--topic", "passport-issuance", "--locale", "ko-KR",
                     "--agency", "외교부", "--source-url", "https://www.passport.go.kr", "--corpus", str(corpus),
                     data_dir=tmp_path / "data", timeout=120)
    assert result.returncode == 0, result.stderr
    written = corpus / "passport-issuance-import.yaml"
    assert result.stdout.strip() == str(written)
    assert "여권 사진 규격은?" in written.read_text(encoding="utf-8")
    failed = run_app("import-faq", str(export), "--topic", "Bad Topic", "--locale", "ko-KR", "--agency", "x",
                     "--source-url", "https://x.go.kr", "--corpus", str(corpus), data_dir=tmp_path / "data",
                     timeout=120)
    assert failed.returncode == 1 and "bad topic id" in failed.stderr


def test_the_configured_encoder_builds_the_index_and_a_bad_one_is_named(tmp_path):
    corpus = tmp_path / "faq"
    corpus.mkdir()
    shutil.copy(CORPUS_DIR / "passport-issuance.yaml", corpus)
    minilm = f"sentence-transformers:{packaged_minilm_dir()}"
    built = run_app("build-index", "--corpus", str(corpus), data_dir=tmp_path / "data",
                    env={"MINWON_ENCODER": minilm, **few_intents(tmp_path)})
    assert built.returncode == 0, built.stderr
    summary = json.loads(built.stdout)
    assert summary["encoder"].startswith("sentence-transformers==") and summary["dimension"] == 384

    refused = run_app("eval-retrieval", "--corpus", str(corpus), "--encoder", "sentence-transformers:BAAI/bge-m3",
                      data_dir=tmp_path / "data", timeout=120)
    assert refused.returncode == 1
    assert refused.stderr.startswith("--encoder='sentence-transformers:BAAI/bge-m3': there is no directory")
    assert "Traceback" not in refused.stderr
    refused = run_app("build-index", "--corpus", str(corpus), data_dir=tmp_path / "data", timeout=120,
                      env={"MINWON_ENCODER": "minilm"})
    assert refused.returncode == 1 and refused.stderr.startswith("MINWON_ENCODER='minilm' is not an encoder")
