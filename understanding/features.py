"""What the router reads in an utterance, as one feature vector:

* lexical terms of the text with slot values replaced by their type ("국세청에 정보 넘기는 거 막아 줘" →
  "slotrecipient에 정보 넘기는 거 막아 줘"): with the normaliser loaded, its Kiwi morphemes, folded jamo n-grams
  and English stems (retrieval's TextNormalizer); without it (start-up, runs without models), the jamo
  n-grams and English stems alone. TF-IDF weighted, L2-normalised;
* slot evidence: which slot types were found, which cue words were said (status, off, on, wallet, …) and
  each pair of the two ("a document and a status word"): soft features the classifier weighs, never rules;
* the sentence embedding from the retrieval encoder, when loaded (the same vector the FAQ search uses).
"""

from __future__ import annotations

import re

import numpy as np
from scipy import sparse

from retrieval.normalize import TextNormalizer, clean_text, english_terms, has_hangul, jamo_ngrams
from understanding.slots import CODE, CODE_RUN, PLACEHOLDER, SPOKEN_CODE, SlotReading, squash

# Bump when a rule below changes what a text's features are: stored router models become stale.
FEATURES_VERSION = "4"
# Block weights: the lexical block and the embedding are unit vectors; slot evidence is a handful of ones.
EVIDENCE_WEIGHT = 0.5
DENSE_WEIGHT = 1.0

# Cue words: Korean stems looked for in the spaceless text, English words or phrases as whole words. They group
# words the examples may not all use ("막아", "철회", "끊어" all turn something off) into one soft feature.
CUES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "status": (("상태", "어떻게됐", "어떻게됬", "됬", "어떻게되었", "어떻게돼", "됐어", "됐나", "됐는", "되었", "나왔", "끝났", "처리",
                "유효", "아직", "진행"),
               ("status", "come through", "came through", "ready", "valid", "processed", "been issued",
                "gone through", "went through", "happened to", "still", "yet")),
    "howto": (("떼", "뗄", "뽑", "발급받", "방법", "어디서", "어디에서", "수수료", "얼마", "하려면", "할수있", "사용법",
               "쓰는법", "어떻게써", "어떻게사용", "어떻게쓰"),
              ("how do i", "how can i", "how to", "where can", "where do", "how much", "what do i need", "fee",
               "apply", "get one", "get a", "how does", "how do you use")),
    "off": (("꺼", "끄", "끈", "막", "철회", "중지", "중단", "그만", "끊", "빼", "거부", "싫", "말아", "지마", "안돼",
             "않", "안줬", "안줄", "안갔", "안가게", "안보냈", "안보내게", "안넘", "차단", "멈",
             # "못 보게 해 줘": made unable to, i.e. stopped; "거둬", "없애": taken back; "오프": off said in English
             "못보", "못가져", "못받", "못쓰", "못넘", "못가게", "못하게", "거둬", "없애", "없던걸로", "오프"),
            ("stop", "revoke", "withdraw", "don't", "dont", "no longer", "anymore", "turn off", "block", "remove",
             "opt out", "not", "can't", "cannot", "shouldn't", "won't", "never", "away from")),
    "on": (("켜", "허용", "동의할", "동의해", "해도", "돼도", "보내도", "넘겨도", "줘도", "공유할게", "공유해줘", "승인",
            "괜찮", "상관없"),
           ("allow", "turn on", "let", "start sharing", "resume", "consent", "okay to", "can get", "can have",
            "again", "enable")),
    "share": (("공유", "제공", "넘기", "넘겨", "넘어", "가는", "보내"),
              ("share", "sharing", "shared", "data", "access", "information", "info")),
    "where": (("어디", "누구", "누가", "어떤기관", "기관", "목록", "현황", "뭐뭐", "내역"),
              ("which", "who", "list", "where", "whom")),
    # Something undone being done again ("꺼 뒀던 공유 다시 켜 줘", "중단했던 제공 재개"): with an off-word in the past,
    # the request is still to turn it on.
    "again": (("다시", "재개", "풀어", "도로", "했던", "뒀던", "놨던", "놓았던"),
              ("again", "back on", "resume", "undo", "unblock", "used to", "before")),
    "wallet": (("지갑",), ("wallet", "phone")),
    "mine": (("내증명서", "내정보", "제정보", "제증명서", "나의", "저의", "제가", "내가"), ("my", "mine", "i")),
    "what": (("뭐야", "뭔가요", "무엇", "뭐예요", "뭔데", "뭐지", "뜻"), ("what is", "what's", "what are", "meaning",
                                                               "mean")),
    # A question about what follows from something ("동의하면 뭐가 좋아", "what happens if I stop sharing"): the
    # FAQ's kind of question, said in the words of a command.
    "ifthen": (("하면", "되면", "끄면", "켜면", "끊으면", "뭐가좋", "어떤점", "무슨일", "불이익", "지장"),
               ("what happens", "what if", "if i", "benefit", "benefits", "downside", "is it safe", "what changes")),
    # How long something lasts or takes in general, not the state of one's own document.
    "duration": (("얼마동안", "며칠", "몇달", "유효기간은", "얼마나걸", "언제나와"),
                 ("how long", "how many days", "for how long", "how soon")),
    "expire": (("만료", "기한", "끝나"), ("expire", "expiring", "expired", "renew", "renewing", "overdue")),
    # Asking whether something is so ("건보공단에 소득 정보 가고 있나요", "is my income shared with the tax office"),
    # not asking for it to be done: with a recipient and a data item, the consent list rather than a consent.
    # The English words are the auxiliaries a yes-or-no question starts with ("can you …" is a request: left out).
    "asks": (("있나", "있니", "있냐", "있는지", "나요", "는지", "습니까", "고있어", "고있지", "돼있", "되어있", "중이야", "중인가",
              "중이에", "중인지"),
             ("is my", "are my", "am i", "do i", "does", "did i", "has my", "have i", "is anyone", "is anybody",
              "is there", "is it", "are you", "are they", "do they", "have they")),
}
# Word-like terms, for the share of an utterance's words that the domain's training texts use at all.
_WORD_KINDS = ("m:", "w:", "b:")
_HANGUL_RUN = re.compile(r"[\uac00-\ud7a3]+")
UNKNOWN = "unknown-words"
UNKNOWN_WEIGHT = 2.0
# Words written for the placeholders, so that the lexical terms keep the place of a value without its words.
_PLACEHOLDER_WORDS = {"document": "slotdocument", "recipient": "slotrecipient", "data_item": "slotdataitem",
                      CODE: "slotcode"}


def placeholder_text(reading: SlotReading) -> str:
    """The reading's spoken template with each {type} as one made-up word and each code (a run of digits,
    written or spoken) as `slotcode`."""
    text = SPOKEN_CODE.sub(" {code} ", CODE_RUN.sub(" {code} ", reading.template))
    return PLACEHOLDER.sub(lambda m: " " + _PLACEHOLDER_WORDS.get(m.group(1), "slot" + m.group(1)) + " ", text)


def slot_types(reading: SlotReading) -> list[str]:
    types = sorted(reading.found)
    if CODE_RUN.search(reading.template) or SPOKEN_CODE.search(reading.template):
        types.append(CODE)
    return types


def evidence_terms(reading: SlotReading) -> list[str]:
    """Slot types found, cue groups said, and each (slot type, cue) pair."""
    spaceless = PLACEHOLDER.sub(" ", reading.squashed)
    words = " " + " ".join(re.findall(r"[a-z']+", PLACEHOLDER.sub(" ", reading.template))) + " "
    cues = [name for name, (korean, english) in CUES.items()
            if any(stem in spaceless for stem in korean) or any(f" {phrase} " in words for phrase in english)]
    types = slot_types(reading)
    terms = [f"slot:{t}" for t in types] + [f"cue:{c}" for c in cues]
    terms += [f"pair:{t}+{c}" for t in types for c in cues]
    if not types:
        terms += [f"pair:none+{c}" for c in cues]
    terms.append(f"slots:{len(types)}")
    return terms


def plain_terms(text: str) -> list[str]:
    """The terms the normaliser would give without Kiwi: folded jamo n-grams and English stems, and Hangul
    syllable pairs (the lexical model's stand-in for words)."""
    text = clean_text(text)
    terms = [f"w:{w}" for w in english_terms(text)]
    if has_hangul(text):
        terms += [f"j:{g}" for g in jamo_ngrams(text)]
        for run in _HANGUL_RUN.findall(text.replace(" ", "")):
            terms += [f"b:{run[i:i + 2]}" for i in range(len(run) - 1)] or [f"b:{run}"]
    return terms


def word_terms(terms: list[str]) -> set[str]:
    """The terms that stand for words (morphemes, English stems, syllable pairs), not sound fragments."""
    return {t for t in terms if t[:2] in _WORD_KINDS}


class Featurizer:
    """Turns slot readings (and embeddings) into the classifier's rows. `normalizer` None: the lexical-only
    features (no Kiwi). The term vocabularies and IDF weights come from the training texts (`fit`); a term
    never seen in training has no weight to give and is left out."""

    def __init__(self, normalizer: TextNormalizer | None, lexical_vocabulary: dict[str, int] | None = None,
                 idf: np.ndarray | None = None, evidence_vocabulary: dict[str, int] | None = None,
                 known_words: frozenset[str] = frozenset()) -> None:
        self.normalizer = normalizer
        self.lexical_vocabulary = lexical_vocabulary or {}
        self.idf = idf if idf is not None else np.zeros(0, dtype=np.float32)
        self.evidence_vocabulary = evidence_vocabulary or {UNKNOWN: 0}
        # Words of the in-domain training texts (intent examples and FAQ phrasings, not the out-of-domain set):
        # a request made of words the domain never uses is probably not for this service.
        self.known_words = known_words

    @staticmethod
    def dense_block(embeddings: np.ndarray) -> np.ndarray:
        """The columns after the lexical and evidence blocks: the sentence embedding × DENSE_WEIGHT."""
        return np.asarray(embeddings, dtype=np.float32) * DENSE_WEIGHT

    def lexical_terms(self, reading: SlotReading) -> list[str]:
        text = placeholder_text(reading)
        terms = self.normalizer.lexical_terms(text) if self.normalizer is not None else plain_terms(text)
        # The whole spaceless utterance as one term: short commands ("그만", "취소") are their own best witness.
        terms.append("u:" + squash(PLACEHOLDER.sub("", reading.squashed)))
        return terms

    def fit(self, readings: list[SlotReading], groups: list[int], in_domain: list[bool]
            ) -> tuple[list[list[str]], list[float]]:
        """Vocabularies, IDF and the domain's words from the training readings. Returns their lexical terms and
        each one's unknown-word share, counted as if the reading's own example (its group) were not there: a
        paraphrase is as new to the model as a citizen's words will be."""
        term_lists = [self.lexical_terms(r) for r in readings]
        vocabulary: dict[str, int] = {}
        for terms in term_lists:
            for term in terms:
                vocabulary.setdefault(term, len(vocabulary))
        df = np.zeros(len(vocabulary), dtype=np.float64)
        for terms in term_lists:
            df[[vocabulary[t] for t in set(terms)]] += 1
        n = max(len(term_lists), 1)
        self.lexical_vocabulary = vocabulary
        self.idf = (np.log((1 + n) / (1 + df)) + 1.0).astype(np.float32)
        evidence: dict[str, int] = {UNKNOWN: 0}
        for reading in readings:
            for term in evidence_terms(reading):
                evidence.setdefault(term, len(evidence))
        self.evidence_vocabulary = evidence
        # How many in-domain groups use each word, and which words each group uses.
        group_words: dict[int, set[str]] = {}
        for terms, group, inside in zip(term_lists, groups, in_domain, strict=True):
            if inside:
                group_words.setdefault(group, set()).update(word_terms(terms))
        uses: dict[str, int] = {}
        for words in group_words.values():
            for word in words:
                uses[word] = uses.get(word, 0) + 1
        self.known_words = frozenset(uses)
        shares = []
        for terms, group in zip(term_lists, groups, strict=True):
            own = group_words.get(group, set())
            words = word_terms(terms)
            known = sum(1 for w in words if uses.get(w, 0) - (w in own) > 0)
            shares.append(1.0 - known / len(words) if words else 0.0)
        return term_lists, shares

    def unknown_share(self, terms: list[str]) -> float:
        words = word_terms(terms)
        return 1.0 - sum(1 for w in words if w in self.known_words) / len(words) if words else 0.0

    @property
    def width(self) -> int:
        """Columns before the embedding."""
        return len(self.lexical_vocabulary) + len(self.evidence_vocabulary)

    def row(self, reading: SlotReading, terms: list[str] | None = None,
            unknown: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The non-zero (columns, values) of one reading's lexical and evidence blocks: sublinear TF × IDF,
        L2-normalised, then the evidence terms at EVIDENCE_WEIGHT and the unknown-word share."""
        terms = terms if terms is not None else self.lexical_terms(reading)
        unknown = unknown if unknown is not None else self.unknown_share(terms)
        counts: dict[int, int] = {}
        for term in terms:
            column = self.lexical_vocabulary.get(term)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        lexical_columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
        values = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts))))
        values = values * self.idf[lexical_columns]
        norm = float(np.sqrt(values @ values))
        if norm > 0:
            values = values / norm
        offset = len(self.lexical_vocabulary)
        evidence = sorted({offset + self.evidence_vocabulary[t] for t in evidence_terms(reading)
                           if t in self.evidence_vocabulary})
        columns = np.concatenate([lexical_columns, [offset + self.evidence_vocabulary[UNKNOWN]],
                                  np.asarray(evidence, dtype=np.int64)]).astype(np.int64)
        return columns, np.concatenate([values.astype(np.float32), [unknown * UNKNOWN_WEIGHT],
                                        np.full(len(evidence), EVIDENCE_WEIGHT, dtype=np.float32)]).astype(np.float32)

    def matrix(self, readings: list[SlotReading], embeddings: np.ndarray | None,
               term_lists: list[list[str]] | None = None, unknown: list[float] | None = None) -> sparse.csr_matrix:
        """One row per reading: [lexical | evidence | dense block] (no embedding: the lexical model)."""
        rows = [self.row(r, term_lists[i] if term_lists is not None else None,
                         unknown[i] if unknown is not None else None) for i, r in enumerate(readings)]
        indptr = np.cumsum([0] + [len(c) for c, _ in rows])
        columns = np.concatenate([c for c, _ in rows]) if rows else np.zeros(0, dtype=np.int64)
        values = np.concatenate([v for _, v in rows]) if rows else np.zeros(0, dtype=np.float32)
        head = sparse.csr_matrix((values, columns, indptr), shape=(len(readings), self.width), dtype=np.float32)
        if embeddings is None:
            return head
        dense = sparse.csr_matrix(self.dense_block(embeddings))
        return sparse.hstack([head, dense], format="csr", dtype=np.float32)
