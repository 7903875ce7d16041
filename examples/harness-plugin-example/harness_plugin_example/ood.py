"""Negative predictive entropy as an OOD-score plugin.

An OOD score takes logits (N, K) and returns scores (N,) where higher means more
in-distribution (the harness's convention for every score; its docstring must say so).
"""

from __future__ import annotations

import torch


def neg_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Negative entropy of the softmax, sum_k p_k log p_k; higher = more in-distribution.

    0 for a one-hot prediction, -log K for a uniform one. Computed from log-softmax, so large
    logits neither overflow nor give 0 * log 0.
    """
    log_p = logits.log_softmax(dim=1)
    return (log_p.exp() * log_p).sum(dim=1)
