"""TRI vlm-evaluation's candidate-probability protocol (Cobra's POPE and VSR numbers): no text is
generated; the model returns the next-token probabilities of two candidate answers, the larger one
is the prediction (ties go to the first, as np.argmax does), and the first one's probability,
normalised over the pair, feeds ROC-AUC and PR-AUC."""

from __future__ import annotations

from collections.abc import Sequence

from mmeval.errors import DataError
from mmeval.metrics.yesno import average_precision, roc_auc
from mmeval.types import GenerationConfig, Prediction


def candidate_generation(pair: tuple[str, str]) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=0, candidates=pair)


def candidate_choice(prediction: Prediction, pair: tuple[str, str], where: str) -> tuple[float, bool]:
    """P(first) normalised over the pair (0.5 when both are 0), and whether the first is chosen."""
    first, second = pair
    probs = prediction.candidate_probs
    if not probs or first not in probs or second not in probs:
        raise DataError(f"{where}: the prismatic protocol needs next-token probabilities of '{first}' and "
                        f"'{second}' (this prediction has none; rerun with --protocol prismatic)")
    p_first, p_second = float(probs[first]), float(probs[second])
    total = p_first + p_second
    return (p_first / total if total > 0 else 0.5), p_first >= p_second


def probability_aucs(labels: Sequence[int], p_first: Sequence[float]) -> dict[str, float]:
    """ROC-AUC and PR-AUC (average precision) of P(first) against 0/1 labels, as fractions."""
    return {"aucroc": roc_auc(labels, p_first), "aucpr": average_precision(labels, p_first)}
