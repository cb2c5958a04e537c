"""The router's training, storage and decisions: deterministic training, a stored model reused while its inputs
are unchanged and retrained when one changes, the recogniser's alternatives routed together, and the clarifying
question from the question to the chosen request, end to end."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import understanding.model as model_module
from settings import PROJECT_DATA
from skills.engine import Turn
from tests.conftest import citizen_factory
from understanding.examples import IntentExamples
from understanding.model import DENSE, FAQ, LEXICAL, NONE, TrainingInputs, load_or_train, model_directory
from understanding.router import CLARIFY, IntentRouter, Routing, decide
from understanding.service import INTENTS_DIR, training_inputs

SAMPLES = ["내 증명서 상태 알려줘", "국세청에 건강보험 정보 공유 꺼 줘", "등본 지갑으로 보내 줘", "stop sharing my income with nts",
           "등본 떼려면 어떻게 해", "내일 비 와?", "연결 코드 일이삼사오육칠팔", "what can you do"]


@pytest.fixture(scope="module")
def inputs() -> TrainingInputs:
    return training_inputs(PROJECT_DATA / "faq")


@pytest.fixture(scope="module")
def few_intents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three intents' examples in both languages."""
    intents = tmp_path_factory.mktemp("intents")
    for locale in ("ko-KR", "en-US"):
        (intents / locale).mkdir()
        for intent in ("certificate_status", "consent_off", "help"):
            shutil.copy(INTENTS_DIR / locale / f"{intent}.yaml", intents / locale)
    return intents


@pytest.fixture(scope="module")
def small_inputs(few_intents: Path) -> TrainingInputs:
    """Training inputs a model learns in seconds, for the tests of training and storage themselves (determinism,
    reuse, retraining), which train several times: three intents, two FAQ topics, the out-of-domain set. What the
    router learns from everything is tested on the shared app's models."""
    corpus = few_intents.parent / f"{few_intents.name}-faq"
    corpus.mkdir()
    for topic in ("passport-issuance", "move-in-report"):
        shutil.copy(PROJECT_DATA / "faq" / f"{topic}.yaml", corpus)
    return training_inputs(corpus, few_intents)


@contextmanager
def counting_trainings():
    """Counts the models trained while the block runs (the real training still runs)."""
    real = model_module.train
    calls: list[str] = []

    def train(inputs, kind, *args, **kwargs):
        calls.append(kind)
        return real(inputs, kind, *args, **kwargs)

    model_module.train = train
    try:
        yield calls
    finally:
        model_module.train = real


def test_two_trainings_give_the_same_model_and_the_same_answers(small_inputs):
    inputs = small_inputs
    first = model_module.train(inputs, LEXICAL)
    second = model_module.train(inputs, LEXICAL)
    assert first.classes == second.classes and first.temperature == second.temperature
    assert np.array_equal(first.weights, second.weights) and np.array_equal(first.bias, second.bias)
    readings = [inputs.vocabulary.read(text) for text in SAMPLES]
    assert np.array_equal(first.classify(readings, None), second.classify(readings, None))


def test_a_stored_model_is_reused_until_an_input_changes(small_inputs, few_intents, tmp_path):
    inputs = small_inputs
    data = tmp_path / "data"
    with counting_trainings() as trained:
        built = load_or_train(data, inputs, LEXICAL)
        assert trained == [LEXICAL] and (model_directory(data, LEXICAL) / "manifest.json").is_file()
        again = load_or_train(data, inputs, LEXICAL)
        assert trained == [LEXICAL]  # loaded, not trained
        readings = [inputs.vocabulary.read(text) for text in SAMPLES]
        assert np.allclose(built.classify(readings, None), again.classify(readings, None), atol=1e-6)
        # One more intent example: another key, so the stored model is stale and a new one is trained.
        intents = tmp_path / "intents"
        shutil.copytree(few_intents, intents)
        with (intents / "ko-KR" / "help.yaml").open("a", encoding="utf-8") as f:
            f.write('  - "뭐 하는 스피커야"\n')
        changed = replace(inputs, examples=IntentExamples.load(intents))
        assert changed.key(LEXICAL, None) != inputs.key(LEXICAL, None)
        load_or_train(data, changed, LEXICAL)
        assert trained == [LEXICAL, LEXICAL]
        load_or_train(data, changed, LEXICAL)
        assert trained == [LEXICAL, LEXICAL]


def test_a_corrupt_stored_model_is_retrained(small_inputs, tmp_path):
    inputs = small_inputs
    data = tmp_path / "data"
    load_or_train(data, inputs, LEXICAL)
    stored = model_directory(data, LEXICAL) / "model.npz"
    stored.write_bytes(stored.read_bytes()[:-10])
    with counting_trainings() as trained:
        load_or_train(data, inputs, LEXICAL)
    assert trained == [LEXICAL]


def test_the_encoder_is_part_of_the_key(inputs):
    assert inputs.key(DENSE, "encoder-a") != inputs.key(DENSE, "encoder-b") != inputs.key(LEXICAL, None)


# -- decisions -------------------------------------------------------------------------------------------

def test_below_the_threshold_two_plausible_requests_are_asked_about_and_anything_else_goes_to_the_faq():
    assert decide((("certificate_status", 0.9), (FAQ, 0.05))) == "certificate_status"
    assert decide(((NONE, 0.8), (FAQ, 0.1))) == NONE
    assert decide((("certificate_status", 0.4), (FAQ, 0.38))) == CLARIFY
    assert decide((("consent_off", 0.4), ("consent_on", 0.35))) == CLARIFY
    # One of the two is not a request worth asking about, or the second is not plausible: the FAQ decides.
    assert decide((("certificate_status", 0.4), (NONE, 0.38))) == FAQ
    assert decide((("repeat", 0.4), ("help", 0.38))) == FAQ
    assert decide((("certificate_status", 0.4), (FAQ, 0.1))) == FAQ


def test_the_lexical_model_routes_until_the_dense_one_is_attached(services, inputs):
    router = IntentRouter(services.router.examples, services.router.vocabulary,
                          lambda: services.router.lexical_model())
    assert router.model_kind == LEXICAL
    routing = router.route("내 증명서 상태 알려줘")
    assert routing.model == LEXICAL and routing.embeddings is None
    assert routing.decision == "certificate_status"
    # The app's router has the dense model (attached by the FAQ loader) and hands on the embedding it made.
    routing = services.router.route("내 증명서 상태 알려줘")
    assert routing.model == DENSE and routing.embeddings.shape[0] == 1
    assert routing.decision == "certificate_status"


# -- the recogniser's alternatives ------------------------------------------------------------------------

def test_alternatives_are_routed_together(services):
    router = services.router
    garbled = "어 그러니까 저기 그거"
    alone = router.route(garbled)
    assert alone.intent is None
    together = router.route(garbled, ["어 그 내 증명서 상태 알려줘", "그 내 증명서 상태를 알려 줘"])
    assert together.decision == "certificate_status"
    assert together.transcripts[0] == garbled and together.embeddings.shape[0] == 3
    # The best-supported transcript's slots come with the decision.
    routing = router.route("등봉 지갑에 넣어 져", ["등본 지갑에 넣어 줘"])
    assert routing.decision == "send_to_wallet" and routing.slots == {"document": "resident-registration-copy"}


def test_a_turn_with_alternatives_reaches_the_skill(services, new_citizen):
    _, user = new_citizen()
    reply = services.dialog.converse(Turn(user_id=user, text="어 그러니까 저기 그거", locale="ko-KR",
                                          alternatives=["어 내 증명서 상태 알려 줘"]))
    assert reply.intent == "certificate_status" and reply.expects == "pin"


# -- clarifying questions ---------------------------------------------------------------------------------

@contextmanager
def unsure_between(router: IntentRouter, text: str, first: str, second: str):
    """The router, for exactly `text`, unsure between two candidates (as a real model is on some turns); the
    rest of the dialog (the question, the pending answer, the routing of the answer) is the real one."""
    real = router.route

    def route(said: str, alternatives=(), **options) -> Routing:
        if said == text:
            routing = real(said, alternatives, **options)
            return Routing(decision=CLARIFY, probability=0.41, candidates=((first, 0.41), (second, 0.38), (NONE, 0.1)),
                           slots=routing.slots, ambiguous=routing.ambiguous, transcripts=routing.transcripts,
                           embeddings=routing.embeddings, model=routing.model)
        return real(said, alternatives, **options)

    router.route = route  # type: ignore[method-assign]
    try:
        yield
    finally:
        del router.route


ASKED = "가족관계증명서 어떻게 하지"


def test_a_clarifying_question_names_both_and_the_answer_runs_the_original_request(conversation, services):
    _, user = citizen_factory(services)()
    talk = conversation(user)
    with unsure_between(services.router, ASKED, "certificate_status", FAQ):
        question = talk.say(ASKED)
        assert question["intent"] == "clarify" and question["expects"] == "clarify"
        assert question["speech"].startswith("증명서 상태를 알려 드릴까요, ")
        assert question["speech"].endswith("안내해 드릴까요?") or question["speech"].endswith("찾아 드릴까요?")
        # "상태": the first offer's word. The status request runs on the original words: the PIN first, then
        # the family relation certificate (named back then, not now).
        assert talk.say("상태")["expects"] == "pin"
        answer = talk.say("4321")
        assert answer["intent"] == "certificate_status" and "가족관계증명서" in answer["speech"]


@pytest.mark.parametrize(("answer", "intent"), [("두 번째", ("faq", "faq_not_sure")), ("응", ("certificate_status",)),
                                                ("발급 방법", ("faq", "faq_not_sure")),
                                                ("첫 번째요", ("certificate_status",))])
def test_ordinals_yes_and_the_offers_words_choose(conversation, services, answer, intent):
    _, user = citizen_factory(services)()
    talk = conversation(user)
    with unsure_between(services.router, ASKED, "certificate_status", FAQ):
        talk.say(ASKED)
        assert talk.say(answer)["intent"] in intent


def test_in_english_the_first_one(conversation, services):
    _, user = citizen_factory(services)(locale="en-US")
    talk = conversation(user, "en-US")
    asked = "my family certificate what about it"
    with unsure_between(services.router, asked, "certificate_status", FAQ):
        question = talk.say(asked)
        assert question["speech"].startswith("Do you want the status of your certificates, or ")
        assert talk.say("the first one")["expects"] == "pin"


def test_another_request_leaves_the_question_and_no_declines_it(conversation, services):
    _, user = citizen_factory(services)()
    talk = conversation(user)
    with unsure_between(services.router, ASKED, "certificate_status", FAQ):
        talk.say(ASKED)
        # Help, as with every open question, answers and keeps the question open.
        assert talk.say("도움말")["intent"] == "help"
        assert talk.say("첫 번째")["expects"] == "pin"
        talk.say(ASKED)
        assert talk.say("내 정보 어디에 공유돼?")["intent"] == "consent_list"
        assert talk.say("첫 번째")["intent"] not in ("certificate_status", "clarify")  # the question is gone
        talk.say(ASKED)
        declined = talk.say("아니")
        assert declined["intent"] == "clarify" and declined["speech"].startswith("알겠어요.")
        # Words that answer nothing: asked once more, then dropped.
        talk.say(ASKED)
        assert talk.say("음 글쎄")["speech"] == "첫 번째인지 두 번째인지 말씀해 주세요."
        assert talk.say("음 글쎄")["speech"].startswith("알겠어요.")


@pytest.mark.parametrize("text", ["음", "음...", "흠", "um", "uh, hmm"])
def test_thinking_sounds_alone_are_no_request(services, text):
    """A classifier asked about one syllable guesses (a filler once scored "stop" at 0.49): said alone, a filler
    goes nowhere, so an open question is asked again and a fresh turn gets the FAQ's "not sure"."""
    routing = services.router.route(text)
    assert routing.intent is None and routing.probability == 0.0


def test_a_filler_before_a_request_does_not_hide_it(services):
    assert services.router.route("음 등본 어떻게 됐어").intent == "certificate_status"
