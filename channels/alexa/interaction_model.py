"""The skill's en-US interaction model, generated from the service's intent examples and slot vocabularies.

Alexa has no Korean locale, so only ``data/intents/en-US/*.yaml`` feed it. The same catalog serves both
directions: it writes ``interaction_model.json`` for the Alexa developer console and maps the intents
Alexa resolves back to the service's intents, slot value ids and a text the dialog engine understands.

What Alexa gets, besides one custom intent per service intent:

* the built-in intents the certification rules require (Cancel, Stop, Help, NavigateHome, Fallback), with
  the service's own cancel/stop/help/repeat examples added to them;
* Yes/No, because confirmations are answered with a bare "yes" or "no";
* ``PinIntent`` (a four-digit number) for the PIN step-up;
* one ``…AnswerIntent`` per slot vocabulary, for a bare answer to "which document?";
* ``AskQuestionIntent``: a catch-all ``AMAZON.SearchQuery`` that hands free questions to the FAQ.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

LOCALE = "en-US"
DEFAULT_INVOCATION_NAME = "minwon helper"
MODEL_PATH = Path(__file__).resolve().parent / "interaction_model.json"

# Service intents that Alexa already has a built-in for: the built-in is used, extended by our examples.
BUILT_IN_FOR_SERVICE = {
    "cancel": "AMAZON.CancelIntent",
    "stop": "AMAZON.StopIntent",
    "help": "AMAZON.HelpIntent",
    "repeat": "AMAZON.RepeatIntent",
}
# Built-ins the skill declares although no service intent stands behind them.
EXTRA_BUILT_INS = (
    "AMAZON.NavigateHomeIntent",
    "AMAZON.FallbackIntent",
    "AMAZON.YesIntent",
    "AMAZON.NoIntent",
)
# Placeholders that are numbers, not vocabulary: the Alexa built-in slot type that hears them.
NUMBER_PLACEHOLDERS = {"code": "AMAZON.NUMBER", "pin": "AMAZON.FOUR_DIGIT_NUMBER"}
# Service intents whose meaning is the question itself: Alexa must hand over the words, so their
# examples feed the SearchQuery catch-all instead of an intent of their own.
FREE_TEXT_INTENTS = frozenset({"faq"})

FAQ_INTENT = "AskQuestionIntent"
FAQ_SLOT = "query"
PIN_INTENT = "PinIntent"
PIN_SLOT = "pin"

# A SearchQuery slot must be carried by at least one other word; these are the carrier phrases.
FAQ_CARRIERS = (
    "what is {query}",
    "what are {query}",
    "what's {query}",
    "how do i {query}",
    "how can i {query}",
    "how to {query}",
    "how long {query}",
    "how much {query}",
    "where can i {query}",
    "where do i {query}",
    "when {query}",
    "can i {query}",
    "do i need {query}",
    "who {query}",
    "why {query}",
    "which {query}",
    "tell me about {query}",
    "i want to know {query}",
    "i have a question about {query}",
    "question {query}",
    "explain {query}",
    "is it possible to {query}",
)
PIN_SAMPLES = ("{pin}", "my pin is {pin}", "pin {pin}", "the pin is {pin}", "it's {pin}", "my code is {pin}")

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_NOT_SPOKEN = re.compile(r"[^A-Za-z'{}_ ]+")


class InteractionModelError(ValueError):
    """The intent data cannot become a valid Alexa model (say which file and why)."""


def alexa_intent_name(service_intent: str) -> str:
    """``link_account`` → ``LinkAccountIntent`` (Alexa intent names are letters and underscores only)."""
    if service_intent in BUILT_IN_FOR_SERVICE:
        return BUILT_IN_FOR_SERVICE[service_intent]
    words = re.split(r"[^A-Za-z]+", service_intent)
    return "".join(w[:1].upper() + w[1:] for w in words if w) + "Intent"


def slot_type_name(vocabulary: str) -> str:
    """``data_item`` → ``DATA_ITEM_TYPE`` (custom slot type names are letters and underscores)."""
    return re.sub(r"[^A-Za-z]+", "_", vocabulary).strip("_").upper() + "_TYPE"


def answer_intent_name(vocabulary: str) -> str:
    return alexa_intent_name(vocabulary).removesuffix("Intent") + "AnswerIntent"


def spoken_sample(example: str, source: str) -> str:
    """An example as Alexa takes a sample: letters, apostrophes, spaces and {slots}; numbers spelled out."""
    if re.search(r"\d", _PLACEHOLDER.sub("", example)):
        raise InteractionModelError(f"{source}: sample {example!r} has digits; spell numbers out for Alexa")
    sample = _NOT_SPOKEN.sub(" ", example)
    return re.sub(r"\s+", " ", sample).strip()


@dataclass(frozen=True)
class SlotValue:
    id: str
    name: str  # the English name
    synonyms: tuple[str, ...]


@dataclass
class ServiceIntent:
    name: str
    examples: list[str]
    placeholders: list[str] = field(default_factory=list)


@dataclass
class AlexaCatalog:
    """Service intents and slot vocabularies as Alexa sees them, and the way back."""

    intents: dict[str, ServiceIntent]
    vocabularies: dict[str, dict[str, SlotValue]]
    invocation_name: str = DEFAULT_INVOCATION_NAME

    @classmethod
    def load(cls, data_dir: Path, invocation_name: str = DEFAULT_INVOCATION_NAME) -> AlexaCatalog:
        vocabularies: dict[str, dict[str, SlotValue]] = {}
        for path in sorted((data_dir / "slots").glob("*.yaml")):
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            values = {}
            for value_id, spec in raw.items():
                name = spec.get("en")
                if not name:
                    raise InteractionModelError(f"{path.name}: value {value_id!r} has no English name")
                synonyms = [a for a in spec.get("aliases", []) if a.isascii() and a.lower() != name.lower()]
                if name.lower().startswith("the "):
                    synonyms.insert(0, name[4:])  # people drop the article: "national tax service"
                # Alexa compares synonyms without case; keep the first spelling of each.
                unique = {s.lower(): s for s in reversed(synonyms)}
                ordered = tuple(dict.fromkeys(unique[s.lower()] for s in synonyms))
                values[value_id] = SlotValue(value_id, name, ordered)
            vocabularies[path.stem] = values
        intents: dict[str, ServiceIntent] = {}
        for path in sorted((data_dir / "intents" / LOCALE).glob("*.yaml")):
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            name, examples = raw["intent"], [str(e) for e in raw["examples"]]
            placeholders = list(dict.fromkeys(p for e in examples for p in _PLACEHOLDER.findall(e)))
            for placeholder in placeholders:
                if placeholder not in vocabularies and placeholder not in NUMBER_PLACEHOLDERS:
                    raise InteractionModelError(f"{path.name}: placeholder {{{placeholder}}} has no slot vocabulary")
            intents[name] = ServiceIntent(name, examples, placeholders)
        return cls(intents, vocabularies, invocation_name)

    # -- Alexa → service ------------------------------------------------------------------------------

    def service_intent(self, alexa_name: str) -> str | None:
        """The service intent behind an Alexa intent name, or None for intents this skill does not define."""
        for name in self.intents:
            if name not in FREE_TEXT_INTENTS and alexa_intent_name(name) == alexa_name:
                return name
        return None

    def answer_vocabulary(self, alexa_name: str) -> str | None:
        return next((v for v in self.vocabularies if answer_intent_name(v) == alexa_name), None)

    def value_name(self, vocabulary: str, value_id: str) -> str | None:
        value = self.vocabularies.get(vocabulary, {}).get(value_id)
        return value.name if value else None

    def utterance(self, service_intent: str, slots: dict[str, str]) -> str:
        """A plain sentence for an intent Alexa resolved, with the slot values spoken in.

        The engine and some skills read the words (a link code, a yes), so an intent from Alexa arrives
        as the first example whose placeholders are all filled.
        """
        intent = self.intents[service_intent]
        spoken = {}
        for placeholder, value in slots.items():
            spoken[placeholder] = self.value_name(placeholder, value) or value
        for example in intent.examples:
            needed = _PLACEHOLDER.findall(example)
            if all(p in spoken for p in needed):
                return _PLACEHOLDER.sub(lambda m: spoken[m.group(1)], example)
        return _PLACEHOLDER.sub(lambda m: spoken.get(m.group(1), ""), intent.examples[0]).strip()

    # -- service → Alexa ------------------------------------------------------------------------------

    def to_alexa_json(self) -> dict:
        intents: list[dict] = []
        seen: dict[str, str] = {}  # lower-cased sample → Alexa intent, to refuse one sample in two intents

        def samples_for(alexa_name: str, examples: list[str], source: str) -> list[str]:
            out = []
            for example in examples:
                sample = spoken_sample(example, source)
                key = sample.lower()
                if not sample or key in seen and seen[key] == alexa_name:
                    continue
                if key in seen:
                    raise InteractionModelError(
                        f"{source}: sample {sample!r} is already in {seen[key]} (one intent per sample)"
                    )
                seen[key] = alexa_name
                out.append(sample)
            return out

        for name, intent in self.intents.items():
            if name in FREE_TEXT_INTENTS:
                continue
            alexa_name = alexa_intent_name(name)
            entry: dict = {
                "name": alexa_name,
                "samples": samples_for(alexa_name, intent.examples, f"{name}.yaml"),
            }
            if intent.placeholders:
                entry["slots"] = [{"name": p, "type": self._slot_type(p)} for p in intent.placeholders]
            intents.append(entry)
        declared = {i["name"] for i in intents}
        intents += [{"name": b, "samples": []} for b in EXTRA_BUILT_INS if b not in declared]
        intents += [{"name": b, "samples": []} for b in BUILT_IN_FOR_SERVICE.values() if b not in declared]
        intents.append(
            {
                "name": PIN_INTENT,
                "slots": [{"name": PIN_SLOT, "type": NUMBER_PLACEHOLDERS["pin"]}],
                "samples": samples_for(PIN_INTENT, list(PIN_SAMPLES), "PIN samples"),
            }
        )
        for vocabulary in self.vocabularies:
            alexa_name = answer_intent_name(vocabulary)
            samples = [f"{{{vocabulary}}}", f"the {{{vocabulary}}}", f"my {{{vocabulary}}}"]
            intents.append(
                {
                    "name": alexa_name,
                    "slots": [{"name": vocabulary, "type": slot_type_name(vocabulary)}],
                    "samples": samples_for(alexa_name, samples, f"{vocabulary} answers"),
                }
            )
        faq_samples = list(FAQ_CARRIERS)
        intents.append(
            {
                "name": FAQ_INTENT,
                "slots": [{"name": FAQ_SLOT, "type": "AMAZON.SearchQuery"}],
                "samples": samples_for(FAQ_INTENT, faq_samples, "FAQ carrier phrases"),
            }
        )
        types = [
            {
                "name": slot_type_name(vocabulary),
                "values": [
                    {
                        "id": v.id,
                        "name": {"value": v.name, **({"synonyms": list(v.synonyms)} if v.synonyms else {})},
                    }
                    for v in values.values()
                ],
            }
            for vocabulary, values in self.vocabularies.items()
        ]
        model = {
            "interactionModel": {
                "languageModel": {
                    "invocationName": self.invocation_name,
                    "intents": intents,
                    "types": types,
                }
            }
        }
        validate_model(model)
        return model

    def _slot_type(self, placeholder: str) -> str:
        return NUMBER_PLACEHOLDERS.get(placeholder) or slot_type_name(placeholder)


_INVOCATION = re.compile(r"^[a-z][a-z' .]*[a-z]$")
_INVOCATION_FORBIDDEN = {
    "alexa",
    "amazon",
    "echo",
    "computer",
    "skill",
    "app",
    "launch",
    "ask",
    "tell",
    "open",
    "load",
    "begin",
    "enable",
}
_NAME = re.compile(r"^(AMAZON\.)?[A-Za-z_]+$")
_SLOT_NOT_A_WORD = re.compile(r"[^\s]\{|\}[^\s]")


def validate_model(model: dict) -> None:
    """The rules of Alexa's model builder that this generator can break; raises InteractionModelError."""
    language = model["interactionModel"]["languageModel"]
    invocation = language["invocationName"]
    words = invocation.split()
    if not _INVOCATION.match(invocation) or len(words) < 2 or _INVOCATION_FORBIDDEN & set(words):
        raise InteractionModelError(f"invocation name {invocation!r} breaks Alexa's rules")
    type_names = {t["name"] for t in language["types"]}
    for intent in language["intents"]:
        if not _NAME.match(intent["name"]):
            raise InteractionModelError(f"intent name {intent['name']!r} is not letters and underscores")
        slots = {s["name"]: s["type"] for s in intent.get("slots", [])}
        for slot_name, slot_type in slots.items():
            if not re.match(r"^[A-Za-z][A-Za-z_]*$", slot_name):
                raise InteractionModelError(f"{intent['name']}: slot name {slot_name!r} is not allowed")
            if not slot_type.startswith("AMAZON.") and slot_type not in type_names:
                raise InteractionModelError(f"{intent['name']}: slot type {slot_type} is not declared")
        if "AMAZON.SearchQuery" in slots.values() and len(slots) > 1:
            raise InteractionModelError(f"{intent['name']}: a SearchQuery slot must be the intent's only slot")
        for sample in intent["samples"]:
            used = _PLACEHOLDER.findall(sample)
            if any(u not in slots for u in used):
                raise InteractionModelError(f"{intent['name']}: sample {sample!r} uses an undeclared slot")
            if any(slots[u] == "AMAZON.SearchQuery" for u in used) and not _PLACEHOLDER.sub("", sample).strip():
                raise InteractionModelError(f"{intent['name']}: a SearchQuery sample needs a carrier phrase")
            if re.search(r"\d", sample):
                raise InteractionModelError(f"{intent['name']}: sample {sample!r} has digits")
            if _SLOT_NOT_A_WORD.search(sample):
                # Alexa's builder refuses "{recipient}'s": a slot is a whole word of its own.
                raise InteractionModelError(f"{intent['name']}: sample {sample!r} joins a slot to other letters")
        if not intent["name"].startswith("AMAZON.") and not intent["samples"]:
            raise InteractionModelError(f"{intent['name']}: a custom intent needs at least one sample")


def write_model(catalog: AlexaCatalog, path: Path = MODEL_PATH) -> Path:
    model = catalog.to_alexa_json()
    path.write_text(json.dumps(model, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path
