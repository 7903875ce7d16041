"""Tests for harness.reports.contact_sheet: a real PNG of real digits, read back with Pillow; the tiles
are the registered shifts' outputs; bad input is one clear error and writes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.cli import main
from harness.data import digits
from harness.errors import ConfigError, UnknownNameError
from harness.registry import shifts
from harness.reports.contact_sheet import GAP, HEADER_HEIGHT, LABEL_WIDTH, contact_sheet, sheet_array
from harness.seeding import torch_generator


def test_sheet_array_holds_the_clean_image_and_each_severity() -> None:
    x = digits().x[3]
    grid = sheet_array(x, ["contrast", "fog"], seed=0)
    assert grid.shape == (2, 6, 1, 8, 8)
    assert np.array_equal(grid[0, 0], x) and np.array_equal(grid[1, 0], x)
    # exactly what the shift function gives, with the sheet's generator
    fog3 = shifts.get("fog")(torch.from_numpy(x)[None], 3, torch_generator(0, "contact-sheet", "fog", 3))[0]
    assert np.array_equal(grid[1, 3], fog3.numpy())
    assert all(not np.array_equal(grid[0, s], x) for s in range(1, 6))


def test_png_has_a_row_per_shift_and_a_column_per_severity(tmp_path: Path) -> None:
    out = contact_sheet("digits", tmp_path / "sheet.png", ["gaussian-noise", "contrast", "pixelate"], index=7,
                        tile=32)
    with Image.open(out) as png:
        img = np.asarray(png.convert("L"))
    tile = 32  # 8x8 digits enlarged 4 times
    assert img.shape == (HEADER_HEIGHT + 3 * (tile + GAP), LABEL_WIDTH + 5 * (tile + GAP) + tile)
    clean = img[HEADER_HEIGHT:HEADER_HEIGHT + tile, LABEL_WIDTH:LABEL_WIDTH + tile]
    expected = np.round(digits().x[7, 0] * 255).astype(np.uint8).repeat(4, 0).repeat(4, 1)
    assert np.array_equal(clean, expected)
    left = LABEL_WIDTH + 5 * (tile + GAP)  # gaussian noise at severity 5 differs from the clean tile
    assert not np.array_equal(img[HEADER_HEIGHT:HEADER_HEIGHT + tile, left:left + tile], clean)


@pytest.mark.parametrize(("kwargs", "error", "fragment"), [
    ({"shifts": ["fogg"]}, UnknownNameError, "did you mean 'fog'"),
    ({"index": 5000}, ConfigError, "--image from 0 to 1796"),
    ({"tile": 4}, ConfigError, "at least 8 pixels"),
])
def test_bad_input_writes_nothing(kwargs, error, fragment: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as info:
        contact_sheet("digits", tmp_path / "x.png", **kwargs)
    assert fragment in str(info.value)
    assert not (tmp_path / "x.png").exists()


def test_cli_writes_the_sheet_and_prints_its_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "digits.png"
    assert main(["data", "contact-sheet", "digits", "--shifts", "fog,snow", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    with Image.open(out) as png:
        assert png.size[1] == HEADER_HEIGHT + 2 * (64 + GAP)


def test_cli_unknown_dataset(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["data", "contact-sheet", "digitz", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "Error: unknown dataset 'digitz'" in err and "did you mean 'digits'" in err
