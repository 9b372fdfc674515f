"""A warning for loss terms too small to train anything: a weighted term below ``RATIO`` of the total
loss for ``PATIENCE`` consecutive steps (e.g. the release's camray weight 1e-5 on a small teacher's
rays) is reported once, naming the flag that scales it."""

from __future__ import annotations

import logging
from collections.abc import Mapping

log = logging.getLogger(__name__)

RATIO = 1e-4
PATIENCE = 100


class NegligibleTerms:
    """Feed it each step's unweighted terms (``{"loss": total, "sft": .., "ld": .., "depth": ..}``);
    ``weights`` maps a term to its weight in the total (terms of weight 0 are not watched)."""

    def __init__(self, weights: Mapping[str, float], *, ratio: float | None = None, patience: int | None = None):
        self.weights = {k: float(w) for k, w in weights.items() if w > 0}
        self.ratio = RATIO if ratio is None else ratio
        self.patience = PATIENCE if patience is None else patience
        self.streak: dict[str, int] = {}
        self.warned: set[str] = set()

    def update(self, terms: Mapping[str, float], step: int) -> list[str]:
        """The terms that reach ``patience`` small steps in a row at this step (each warned once)."""
        total = abs(float(terms.get("loss", 0.0)))
        newly = []
        for name, weight in self.weights.items():
            if name not in terms or total <= 0:
                continue
            share = weight * abs(float(terms[name])) / total
            self.streak[name] = self.streak.get(name, 0) + 1 if share < self.ratio else 0
            if self.streak[name] >= self.patience and name not in self.warned:
                self.warned.add(name)
                newly.append(name)
                flag = "the SFT data" if name == "sft" else f"--loss.{name}-weight"
                log.warning(
                    "loss term %r has been < %.0e of the total loss for %d steps (step %d: %.3g x %.3g = %.3g of %.3g); "
                    "it trains next to nothing: raise %s, or set it to 0 to drop it", name, self.ratio, self.patience,
                    step, weight, float(terms[name]), share * total, total, flag)
        return newly
