"""Confidence calibration: the top hit's features → probability that it is the right topic.

Fitted at index-build time on data the corpus itself provides (each phrasing searched with
itself hidden, plus recogniser-like corruptions of it) and on the out-of-domain requests in
``data/retrieval/out_of_domain.yaml``; the threshold is chosen on the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hangul import FINAL_COUNT, MEDIAL_COUNT, ONSET_COUNT, compose, decompose, is_syllable
from retrieval.scoring import RANKERS, EntryEvidence, confidence_features, ranking_scores

# Share of right answers in the calibration data allowed below the threshold. Calibration
# queries (phrasings searched with themselves hidden, half of them corrupted as a recogniser
# would) are much harder than real ones, so real false rejection comes out far lower. Chosen on
# the dev set's "tune" split: budget 0.05 → out-of-domain rejection 0.86 / false rejection
# 0.016; 0.10 → 0.89 / 0.020; 0.12 → 0.92 / 0.024; 0.14 → 0.95 / 0.061.
MAX_FALSE_REJECTION = 0.12


@dataclass(frozen=True)
class Calibrator:
    weights: np.ndarray   # (n_features,)
    bias: float
    threshold: float

    def probability(self, features: np.ndarray) -> np.ndarray:
        z = features @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def to_array(self) -> np.ndarray:
        return np.concatenate([self.weights, [self.bias, self.threshold]]).astype(np.float64)

    @classmethod
    def from_array(cls, values: np.ndarray) -> Calibrator:
        values = np.asarray(values, dtype=np.float64)
        return cls(weights=values[:-2], bias=float(values[-2]), threshold=float(values[-1]))


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1e-3,
                 iterations: int = 50) -> tuple[np.ndarray, float]:
    """Newton's method on the L2-regularised mean log loss."""
    x = np.hstack([features, np.ones((len(features), 1))]).astype(np.float64)
    y = labels.astype(np.float64)
    sample_weight = np.full(len(y), 1.0 / max(len(y), 1))
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        gradient = x.T @ (sample_weight * (p - y)) + penalty * w
        hessian = (x * (sample_weight * p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w[:-1], float(w[-1])


def choose_threshold(in_domain_top: np.ndarray, out_of_domain_top: np.ndarray,
                     max_false_rejection: float) -> float:
    """The highest threshold that still accepts all but ``max_false_rejection`` of in-domain tops.

    In-domain here means the top hit was the right one; rejecting those is the costly error
    (the citizen gets "I'm not sure" for a question the corpus answers). Among thresholds that
    keep false rejection within budget, the highest rejects the most out-of-domain requests.
    """
    if len(in_domain_top) == 0:
        return 0.5
    highest = float(np.quantile(in_domain_top, max_false_rejection, method="lower"))
    worst_outside = float(np.max(out_of_domain_top, initial=-np.inf))
    if worst_outside < highest:
        # Every out-of-domain top is already rejected: put the boundary midway, leaving
        # margin on both sides for queries less tidy than the calibration data.
        return (worst_outside + highest) / 2 if np.isfinite(worst_outside) else highest
    return highest


@dataclass(frozen=True)
class CalibrationQuery:
    text: str
    topic: str | None   # None: out of domain
    row: int            # the phrasing it came from, hidden while it is searched; -1 for none


def recogniser_variants(text: str, rng: np.random.Generator) -> list[str]:
    """Corruptions a speech recogniser typically makes: spaces dropped, one syllable misheard
    (one jamo changed) for Korean; one word lost for English."""
    syllables = [i for i, ch in enumerate(text) if is_syllable(ch)]
    if syllables:
        variants = [text.replace(" ", "")]
        i = int(rng.choice(syllables))
        onset, medial, final = decompose(text[i])
        slot = int(rng.integers(3))
        if slot == 0:
            onset = int(rng.integers(ONSET_COUNT))
        elif slot == 1:
            medial = int(rng.integers(MEDIAL_COUNT))
        else:
            final = int(rng.integers(FINAL_COUNT))
        misheard = compose(onset, medial, final)
        variants.append(text[:i] + misheard + text[i + 1:])
        return variants
    words = text.split()
    if len(words) < 3:
        return []
    drop = int(rng.integers(len(words)))
    return [" ".join(words[:drop] + words[drop + 1:])]


def fit_calibrators(
    evidence: EntryEvidence,
    queries: list[CalibrationQuery],
    entry_topics: np.ndarray,
    max_false_rejection: float = MAX_FALSE_REJECTION,
) -> dict[str, Calibrator]:
    """One calibrator per ranker: P(the top hit is the right topic) from the top hit's features.

    Positives are calibration queries whose top hit is right; negatives are the out-of-domain
    requests and in-domain queries whose top hit is wrong (better unsure than wrong).
    """
    topics = np.asarray([q.topic or "" for q in queries], dtype=object)
    in_domain = np.asarray([q.topic is not None for q in queries])
    rows = np.arange(len(queries))
    calibrators = {}
    for ranker in RANKERS:
        scores = ranking_scores(ranker, evidence)
        top = scores.argmax(axis=1)
        x = confidence_features(ranker, scores[rows, top], evidence.coverage)
        right = in_domain & (entry_topics[top] == topics)
        weights, bias = fit_logistic(x, right)
        probability = Calibrator(weights, bias, 0.5).probability(x)
        threshold = choose_threshold(probability[right], probability[~in_domain], max_false_rejection)
        calibrators[ranker] = Calibrator(weights, bias, threshold)
    return calibrators
