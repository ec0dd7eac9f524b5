"""What the classifier says about an image: its top classes and how sure it is (NumPy only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .attention import entropy, softmax


def top_k(logits: np.ndarray, class_names: Sequence[str], k: int = 5) -> list[tuple[int, str, float]]:
    """``(C,)`` logits → ``[(class index, name, probability)]``, most likely first."""
    p = softmax(logits)
    order = np.argsort(-p, kind="stable")[: min(k, p.size)]
    return [(int(i), class_names[i] if i < len(class_names) else f"class {i}", float(p[i])) for i in order]


@dataclass(frozen=True)
class Confidence:
    """How sure a prediction is: the top-1 probability, the entropy of the distribution (nats) and the number
    of classes (``ln classes`` = no idea at all)."""

    top_prob: float
    entropy_nats: float
    num_classes: int

    @property
    def max_entropy(self) -> float:
        """``ln classes``: the entropy of a uniform guess (nats)."""
        return float(np.log(self.num_classes))


def confidence(logits: np.ndarray) -> Confidence:
    """``(C,)`` logits → :class:`Confidence` of their softmax."""
    p = softmax(logits)
    return Confidence(float(p.max()), float(entropy(p)), int(p.size))
