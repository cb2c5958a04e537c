"""The generated Alexa interaction model: valid by Alexa's rules, complete, and in step with data/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channels.alexa.interaction_model import (
    FAQ_INTENT,
    MODEL_PATH,
    PIN_INTENT,
    AlexaCatalog,
    InteractionModelError,
    alexa_intent_name,
    validate_model,
)
from settings import PROJECT_DATA

ROOT = Path(__file__).resolve().parents[2]


def write_data(root: Path, intents: dict[str, list[str]], slots: dict[str, str] | None = None) -> Path:
    (root / "intents" / "en-US").mkdir(parents=True)
    (root / "slots").mkdir()
    for name, examples in intents.items():
        lines = "\n".join(f'  - "{e}"' for e in examples)
        (root / "intents" / "en-US" / f"{name}.yaml").write_text(f"intent: {name}\nexamples:\n{lines}\n")
    for name, text in (slots or {}).items():
        (root / "slots" / f"{name}.yaml").write_text(text)
    return root


DOCUMENTS = """\
family-relation-certificate:
  ko: 가족관계증명서
  en: family relation certificate
  aliases: [가족관계, family certificate, family relations certificate]
resident-registration-copy:
  ko: 주민등록표 등본
  en: resident registration copy
  aliases: [등본, registration copy]
"""


@pytest.fixture
def catalog(tmp_path) -> AlexaCatalog:
    data = write_data(
        tmp_path,
        {
            "certificate_status": ["what's the status of my {document}?", "is my {document} ready"],
            "link_account": ["link code {code}", "my link code is {code}"],
            "stop": ["stop", "that's all", "goodbye!"],
            "faq": ["how do I get a resident registration copy"],
        },
        {"document": DOCUMENTS},
    )
    return AlexaCatalog.load(data)


def language(model: dict) -> dict:
    return model["interactionModel"]["languageModel"]


def intent(model: dict, name: str) -> dict:
    return next(i for i in language(model)["intents"] if i["name"] == name)


def test_service_intents_become_custom_intents_with_typed_slots(catalog):
    model = catalog.to_alexa_json()
    status = intent(model, "CertificateStatusIntent")
    assert status["slots"] == [{"name": "document", "type": "DOCUMENT_TYPE"}]
    assert status["samples"] == ["what's the status of my {document}", "is my {document} ready"]
    link = intent(model, "LinkAccountIntent")
    assert link["slots"] == [{"name": "code", "type": "AMAZON.NUMBER"}]


def test_service_stop_extends_the_built_in_and_required_built_ins_are_declared(catalog):
    model = catalog.to_alexa_json()
    assert intent(model, "AMAZON.StopIntent")["samples"] == ["stop", "that's all", "goodbye"]
    names = {i["name"] for i in language(model)["intents"]}
    required = {
        "AMAZON.CancelIntent",
        "AMAZON.HelpIntent",
        "AMAZON.StopIntent",
        "AMAZON.NavigateHomeIntent",
        "AMAZON.FallbackIntent",
        "AMAZON.YesIntent",
        "AMAZON.NoIntent",
        "AMAZON.RepeatIntent",
    }
    assert required <= names


def test_free_questions_go_to_a_search_query_catch_all(catalog):
    model = catalog.to_alexa_json()
    faq = intent(model, FAQ_INTENT)
    assert faq["slots"] == [{"name": "query", "type": "AMAZON.SearchQuery"}]
    assert all(s.replace("{query}", "").strip() for s in faq["samples"])  # every sample has a carrier phrase
    assert "FaqIntent" not in {i["name"] for i in language(model)["intents"]}


def test_pin_and_slot_answer_intents_exist(catalog):
    model = catalog.to_alexa_json()
    assert intent(model, PIN_INTENT)["slots"] == [{"name": "pin", "type": "AMAZON.FOUR_DIGIT_NUMBER"}]
    assert "{document}" in intent(model, "DocumentAnswerIntent")["samples"]


def test_slot_type_values_carry_ids_and_english_synonyms_only(catalog):
    types = {t["name"]: t for t in language(catalog.to_alexa_json())["types"]}
    values = {v["id"]: v["name"] for v in types["DOCUMENT_TYPE"]["values"]}
    assert values["family-relation-certificate"] == {
        "value": "family relation certificate",
        "synonyms": ["family certificate", "family relations certificate"],
    }
    assert values["resident-registration-copy"]["synonyms"] == ["registration copy"]  # no Hangul for en-US


def test_mapping_back_from_alexa_names(catalog):
    assert catalog.service_intent("CertificateStatusIntent") == "certificate_status"
    assert catalog.service_intent("MyNameIsIntent") is None
    assert catalog.service_intent("FaqIntent") is None
    assert catalog.answer_vocabulary("DocumentAnswerIntent") == "document"
    assert alexa_intent_name("cancel") == "AMAZON.CancelIntent"


def test_utterance_rebuilds_a_sentence_with_spoken_values(catalog):
    text = catalog.utterance("certificate_status", {"document": "family-relation-certificate"})
    assert text == "what's the status of my family relation certificate?"
    assert catalog.utterance("link_account", {"code": "012345"}) == "link code 012345"


@pytest.mark.parametrize(
    ("intents", "message"),
    [
        ({"a": ["call 110 now"]}, "digits"),
        ({"a": ["open my {wallet}"]}, "no slot vocabulary"),
        ({"a": ["check status"], "b": ["Check status"]}, "one intent per sample"),
    ],
)
def test_data_that_alexa_would_refuse_is_refused_here(tmp_path, intents, message):
    with pytest.raises(InteractionModelError, match=message):
        AlexaCatalog.load(write_data(tmp_path, intents)).to_alexa_json()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.update(invocationName="alexa helper"),
        lambda m: m.update(invocationName="minwon"),  # one word
        lambda m: m["intents"].append({"name": "Bad-Name", "samples": ["x"]}),
        lambda m: m["intents"].append(
            {"name": "Q", "slots": [{"name": "q", "type": "AMAZON.SearchQuery"}], "samples": ["{q}"]}
        ),
        lambda m: m["intents"].append(
            {
                "name": "Q",
                "slots": [
                    {"name": "q", "type": "AMAZON.SearchQuery"},
                    {"name": "n", "type": "AMAZON.NUMBER"},
                ],
                "samples": ["find {q}"],
            }
        ),
        lambda m: m["intents"].append({"name": "E", "samples": []}),
        lambda m: m["intents"].append({"name": "U", "slots": [{"name": "x", "type": "NOPE"}], "samples": ["a {x}"]}),
        lambda m: m["intents"].append(
            {"name": "P", "slots": [{"name": "document", "type": "DOCUMENT_TYPE"}], "samples": ["revoke {document}'s access"]}
        ),
    ],
)
def test_validator_refuses_models_alexa_refuses(catalog, mutate):
    model = catalog.to_alexa_json()
    mutate(language(model))
    with pytest.raises(InteractionModelError):
        validate_model(model)


def test_committed_model_matches_the_data_directory():
    """The JSON is generated: regenerate it with `python app.py alexa-model` whenever data/ changes."""
    catalog = AlexaCatalog.load(PROJECT_DATA)
    assert json.loads(MODEL_PATH.read_text(encoding="utf-8")) == catalog.to_alexa_json()


def test_cli_writes_the_model(tmp_path, capsys):
    from app import main

    out = tmp_path / "model.json"
    assert main(["alexa-model", "--output", str(out), "--invocation-name", "civil affairs helper"]) == 0
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["interactionModel"]["languageModel"]["invocationName"] == "civil affairs helper"
    assert capsys.readouterr().out.strip() == str(out)
    expected = AlexaCatalog.load(PROJECT_DATA, "civil affairs helper").to_alexa_json()
    assert written == expected
