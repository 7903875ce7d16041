"""Named random streams derived from one integer seed.

Each consumer (weight init, data order, a shift, an attack's random start) draws from its own
stream, so adding a consumer never moves another one, and two variants trained with the same
seed see the same init stream and data order.
"""

from __future__ import annotations

import hashlib
from typing import Any


def derive_seed(seed: int, *labels: Any) -> int:
    """A 63-bit seed that depends on ``seed`` and the labels (order matters)."""
    text = "/".join([str(int(seed)), *map(str, labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def torch_generator(seed: int, *labels: Any, device: str = "cpu") -> Any:
    """A ``torch.Generator`` on ``device`` seeded with ``derive_seed(seed, *labels)``."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *labels))
    return g
