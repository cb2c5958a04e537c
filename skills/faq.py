"""FAQ answers: whatever no other skill claims is searched in the government FAQ.

Confident → the top entry's spoken answer (its fuller text on the card). Not confident → say so,
name the closest topic and point to the 110 call centre; an unrelated answer is never read out.
The answer is always in the session's locale: the searcher maps a hit found through the other
language to the same topic's entry in this one. Until the search index has loaded (or when the
service runs without models), the plain not-understood fallback answers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from retrieval.search import query_transcripts
from skills.engine import DialogContext, Reply, Skill
from skills.spoken import with_particle
from understanding.model import FAQ, NONE

if TYPE_CHECKING:
    from retrieval.search import FaqSearcher

# Answers spoken per turn: the best entry only; two more are looked at to name a topic.
SEARCH_DEPTH = 3


def load_topic_names(path: Path) -> dict[str, dict[str, str]]:
    """Topic id → {"ko": …, "en": …}: how a topic is named aloud (data/retrieval/topic_names.yaml)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {str(topic): {"ko": str(names["ko"]), "en": str(names["en"])} for topic, names in data.items()}


class FaqSkill:
    """Handles what the router sends to the FAQ (`faq`) and what it found to be outside the domain (`none`: the
    honest "not sure", naming the closest topic as for an FAQ question the search is not sure of)."""

    name = "faq"
    intents = (FAQ, NONE)

    def __init__(self, topic_names: dict[str, dict[str, str]], unavailable: Skill,
                 searcher: Callable[[], FaqSearcher | None]) -> None:
        self.topic_names = topic_names
        self.unavailable = unavailable
        # The index loads in the background after start-up: asked for on every turn, None until then.
        self.searcher = searcher

    def can_handle(self, ctx: DialogContext) -> bool:
        return ctx.intent in self.intents

    def handle(self, ctx: DialogContext) -> Reply:
        searcher = self.searcher()
        if searcher is None:
            # Outside the domain needs no index to say so; a question for the FAQ does.
            return self._not_sure(ctx, None) if ctx.intent == NONE else self.unavailable.handle(ctx)
        response = searcher.search(ctx.turn.text, ctx.locale, k=SEARCH_DEPTH,
                                   alternatives=list(ctx.turn.alternatives), embeddings=routed_embeddings(ctx))
        top = response.results[0] if response.results else None
        if ctx.intent == NONE:
            # Outside the domain: never an answer, whatever the search found; its closest topic is still named.
            return self._not_sure(ctx, top.topic if top else None)
        ctx.intent = "faq"
        if top is None:
            return self._not_sure(ctx, None)
        if not response.confident:
            return self._not_sure(ctx, top.topic)
        if top.locale != ctx.locale:
            return self._only_other_language(ctx, top.topic, top.answer_text)
        return ctx.say(top.answer_speech, top.answer_speech, title=top.question, body=top.answer_text)

    def confident_topic(self, ctx: DialogContext) -> str | None:
        """The topic the FAQ would answer this turn with, when it is confident (to name it in a question)."""
        searcher = self.searcher()
        if searcher is None:
            return None
        response = searcher.search(ctx.turn.text, ctx.locale, k=1, alternatives=list(ctx.turn.alternatives),
                                   embeddings=routed_embeddings(ctx))
        return response.results[0].topic if response.confident and response.results else None

    def topic_name(self, topic: str, locale: str) -> str:
        names = self.topic_names.get(topic)
        if names:
            return names["ko" if locale.startswith("ko") else "en"]
        return topic.replace("-", " ")

    def _not_sure(self, ctx: DialogContext, topic: str | None) -> Reply:
        ctx.intent = "faq_not_sure"
        if topic is None:
            closest_ko, closest_en = "", ""
        else:
            name_ko, name_en = self.topic_name(topic, "ko-KR"), self.topic_name(topic, "en-US")
            closest_ko = f"가장 가까운 주제는 {with_particle(name_ko, '이에요')}. "
            closest_en = f"The closest topic I know is {name_en}. "
        return ctx.say(
            f"정확한 답을 찾지 못했어요. {closest_ko}자세한 안내는 정부민원안내콜센터 일일공번으로 문의해 주세요.",
            f"I'm not sure I have the right answer. {closest_en}"
            "For more help, call the government call centre on one one zero.",
            title=ctx.text("정확한 답을 찾지 못했어요", "Not sure"),
            body=ctx.text(f"{closest_ko}정부민원안내콜센터: 110", f"{closest_en}Government call centre: 110"),
        )

    def _only_other_language(self, ctx: DialogContext, topic: str, answer_text: str) -> Reply:
        ctx.intent = "faq"
        name_ko, name_en = self.topic_name(topic, "ko-KR"), self.topic_name(topic, "en-US")
        return ctx.say(
            f"{name_ko}에 대한 안내는 영어로만 있어요. 화면에 보여 드릴게요.",
            f"I have an answer about {name_en}, but only in Korean. It is on the screen.",
            title=ctx.text(name_ko, name_en), body=answer_text,
        )


def routed_embeddings(ctx: DialogContext) -> np.ndarray | None:
    """The embeddings the router made of this turn's transcripts, when they are the ones the search reads."""
    routing = ctx.routing
    if routing is None or routing.embeddings is None:
        return None
    if list(routing.transcripts) != query_transcripts(ctx.turn.text, ctx.turn.alternatives):
        return None
    return routing.embeddings
