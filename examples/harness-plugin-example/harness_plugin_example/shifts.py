"""Occlusion as a shift plugin.

A shift plugin is ``shift(x, severity, generator) -> x'``: ``x`` a float tensor (N, C, H, W) in
[0, 1], ``severity`` an int from 1 to 5 (anything else is a ``harness.errors.ConfigError``), and
``generator`` a ``torch.Generator`` on x's device for every random draw. The output has x's shape,
lies in [0, 1], is detached and the same for the same generator state; ``x`` is never modified;
the whole batch is processed at once; and on real images the change grows with severity.
"""

from __future__ import annotations

import torch

from harness.errors import ConfigError

SIDE = (0.1, 0.2, 0.3, 0.4, 0.5)  # the square's side as a fraction of the image height, by severity
GRAY = 0.5


def occlusion(x: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A gray (0.5) square over each image, its side 10 / 20 / 30 / 40 / 50% of the image height
    (at least one pixel), centred on a random pixel and cut off at the border.

    The centre is drawn the same way at every severity, so with the same generator state the
    square of a higher severity contains that of a lower one: the change grows with severity.
    """
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= len(SIDE):
        raise ConfigError(f"severity {severity!r} is outside 1-{len(SIDE)}", hint="use an integer from 1 to 5")
    n, _, h, w = x.shape
    side = max(1, round(SIDE[severity - 1] * h))
    cy = torch.randint(0, h, (n, 1, 1, 1), generator=generator, device=x.device)
    cx = torch.randint(0, w, (n, 1, 1, 1), generator=generator, device=x.device)
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    top, left = cy - side // 2, cx - side // 2  # side // 2 before the centre, the rest from it on
    inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    return torch.where(inside, torch.full_like(x, GRAY), x).detach()
