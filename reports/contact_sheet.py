"""Contact sheets: what every corruption does to an image, at every severity, as one PNG.

Rows are corruptions, columns the clean image and severities 1-5; each tile is the image
enlarged by nearest neighbour so an 8x8 digit is as readable as a 32x32 photo. The shifted
images are made exactly as an evaluation makes them (the registered shift functions, a seeded
generator), so the sheet shows what a model is scored on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.errors import ConfigError
from harness.specs import SEVERITIES

LABEL_WIDTH = 130
HEADER_HEIGHT = 18
GAP = 2


def sheet_array(x: np.ndarray, shifts: Sequence[str], seed: int = 0) -> np.ndarray:
    """The corrupted versions of one image, (rows, 1 + 5, C, H, W) in [0, 1]: per corruption the
    image itself, then severities 1-5. ``x`` is (C, H, W) float in [0, 1]."""
    import torch

    from harness.registry import shifts as registry
    from harness.seeding import torch_generator

    img = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    rows = []
    for name in shifts:
        fn = registry.get(name)
        rows.append([img[0].numpy()] + [fn(img, s, torch_generator(seed, "contact-sheet", name, s))[0].numpy()
                                        for s in SEVERITIES])
    return np.asarray(rows)


def contact_sheet(dataset: str, out: Path | str, shifts: Sequence[str] | None = None, index: int = 0,
                  seed: int = 0, tile: int = 64) -> Path:
    """Write a PNG contact sheet of ``dataset``'s image number ``index`` under every corruption
    in ``shifts`` (default: every registered shift) at severities 1-5; returns the path."""
    from PIL import Image, ImageDraw

    from harness.registry import shifts as registry
    from harness.sources import load

    names = list(shifts) if shifts else registry.names()
    for name in names:
        registry.entry(name)  # an unknown name fails here, with "did you mean"
    data = load(dataset)
    if not 0 <= index < len(data.x):
        raise ConfigError(f"image {index} is outside {dataset}'s {len(data.x)} images",
                          hint=f"use --image from 0 to {len(data.x) - 1}")
    if tile < 8:
        raise ConfigError(f"tile size {tile} is too small", hint="use a tile of at least 8 pixels")
    grid = sheet_array(data.x[index], names, seed)
    c, h, w = grid.shape[2:]
    zoom = max(1, tile // max(h, w))
    th, tw = h * zoom, w * zoom
    size = (LABEL_WIDTH + len(SEVERITIES) * (tw + GAP) + tw, HEADER_HEIGHT + len(names) * (th + GAP))
    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(["clean", *(f"severity {s}" for s in SEVERITIES)]):
        draw.text((LABEL_WIDTH + j * (tw + GAP) + 2, 3), title, fill="black")
    for i, name in enumerate(names):
        top = HEADER_HEIGHT + i * (th + GAP)
        draw.text((4, top + th // 2 - 6), name, fill="black")
        for j in range(grid.shape[1]):
            pixels = (np.clip(grid[i, j], 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)
            pixels = pixels.repeat(zoom, 0).repeat(zoom, 1)
            tile_img = Image.fromarray(pixels[..., 0] if c == 1 else pixels, "L" if c == 1 else "RGB")
            canvas.paste(tile_img.convert("RGB"), (LABEL_WIDTH + j * (tw + GAP), top))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, format="PNG")
    return out
