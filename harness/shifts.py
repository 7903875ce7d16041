"""Corruptions as batched tensor functions: the 15 of CIFAR-10-C and its 4 held-out ones.

Contract of a shift plugin: ``shift(x, severity, generator) -> x'`` where ``x`` is a float
tensor (N, C, H, W) in [0, 1] (C = 1 grayscale or 3 RGB), ``severity`` an int in 1..5 (higher =
stronger), and ``generator`` a ``torch.Generator`` on x's device (used only by random shifts).
The output has x's shape, lies in [0, 1], is detached, and is the same for the same generator
state; ``x`` is never modified. Every function works on the whole batch at once (no loop over
images), on the CPU or a GPU.

Levels follow CIFAR-10-C (Hendrycks & Dietterich, 2019), whose parameters were set for 32x32
images. Spatial parameters (blur widths, displacements, fog and snow scales) are expressed
relative to a 32-pixel image and scaled to the image's height, so a corruption covers the same
fraction of an 8x8 digit as of a 32x32 photo; a few are pixel-level by nature and stay in pixels
(glass blur's pixel swaps, JPEG's 8x8 blocks). Some differ from CIFAR-10-C on purpose and say so
in their docstrings: ``gaussian-noise`` and ``gaussian-blur`` use ImageNet-C's stronger levels
(CIFAR-10-C's Gaussian blur is sub-pixel at 8x8, an identity), ``glass-blur`` ImageNet-C's
widths with a shuffle of its own, ``motion-blur`` Tiny-ImageNet-C's levels, ``defocus-blur``
levels of its own, ``frost`` overlays a procedural frost texture (the original overlays
photographs that are not redistributable) and ``spatter``'s water is a flat blend.
tests/test_shifts.py compares every corruption with the reference code (imagecorruptions) run
with these levels. Colour corruptions (``saturate``) leave grayscale images unchanged: they have
no saturation.

A shift whose output changes between releases carries a higher ``revision`` (set with
:func:`revised`; 1 when unset): it joins the key of the evaluation cells that use the shift, so a
resumed run recomputes them rather than mixing the old implementation's results with the new.

Severity orders strength as CIFAR-10-C orders it. For most corruptions the change to an image
grows at every step (tests/test_contracts.py checks it on real digits and photographs); for
those in ``NOT_MONOTONE`` CIFAR-10-C's levels vary two things at once, so the change need not
grow at every step on every image.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F

    Tensor = torch.Tensor
    Gen = torch.Generator | None
else:
    class _Deferred:
        """A module imported at its first use: planning reads a shift's ``revision`` to key its cells (a report
        does, to say what a run still lacks) without paying for torch's import (over a second)."""

        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attr: str) -> Any:
            return getattr(importlib.import_module(self._name), attr)

    torch, F = _Deferred("torch"), _Deferred("torch.nn.functional")


def revised(revision: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a shift function as changed: ``revision`` (an int above 1) goes into the key of every
    evaluation cell that applies it (``harness.planning.eval_spec``), so results stored under an
    earlier revision are not reused."""
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.revision = revision  # type: ignore[attr-defined]
        return fn
    return mark


# per-severity parameters (index severity - 1)
NOISE_SIGMA = (0.08, 0.12, 0.18, 0.26, 0.38)
SHOT_PHOTONS = (500, 250, 100, 75, 50)
IMPULSE_AMOUNT = (0.01, 0.02, 0.03, 0.05, 0.07)
SPECKLE_SIGMA = (0.06, 0.1, 0.12, 0.16, 0.2)
BLUR_SIGMA_AT_32PX = (1.0, 2.0, 3.0, 4.0, 6.0)
DEFOCUS_AT_32PX = ((1.0, 0.5), (1.5, 0.5), (2.0, 0.5), (3.0, 0.5), (4.0, 0.5))  # (disk radius, alias sigma)
GLASS = ((0.7, 1, 1), (0.9, 1, 2), (1.0, 1, 3), (1.1, 2, 2), (1.5, 2, 3))  # (sigma at 32 px, max swap px, passes)
MOTION_AT_32PX = ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3))  # (radius, sigma) in ImageMagick's terms
ZOOM_MAX = (1.06, 1.11, 1.16, 1.21, 1.26)  # zoom factors 1, 1.01, ... below this
FOG = ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75))  # (strength, smoothness)
FROST = ((1.0, 0.2), (1.0, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))  # (image weight, frost weight)
SNOW = (  # (mean, std, zoom, threshold, motion radius at 32 px, motion sigma, image blend)
    (0.1, 0.2, 1.0, 0.6, 8, 3, 0.95), (0.1, 0.2, 1.0, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))
SPATTER = (  # (mean, std, blur sigma at 32 px, threshold, water's intensity | mud's blur sigma at 32 px, mud)
    (0.62, 0.1, 0.7, 0.7, 0.5, False), (0.65, 0.1, 0.8, 0.7, 0.5, False), (0.65, 0.3, 1.0, 0.69, 0.5, False),
    (0.65, 0.1, 0.7, 0.69, 0.6, True), (0.65, 0.1, 0.5, 0.68, 0.6, True))
BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)
CONTRAST_FACTOR = (0.75, 0.5, 0.4, 0.3, 0.15)
SATURATE = ((0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2))  # S -> S * a + b
ELASTIC = ((0.0, 0.0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)
JPEG_QUALITY = (80, 65, 58, 50, 40)


def _level(params: tuple, severity: int):  # type: ignore[no-untyped-def, type-arg]
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= len(params):
        raise ConfigError(f"severity {severity!r} is outside 1-{len(params)}", hint="use an integer from 1 to 5")
    return params[severity - 1]


def _done(x: Tensor) -> Tensor:
    return x.clamp(0, 1).detach()


def _rand(shape: tuple[int, ...] | torch.Size, x: Tensor, gen: Gen) -> Tensor:
    return torch.rand(shape, generator=gen, device=x.device, dtype=x.dtype)


def _randn(shape: tuple[int, ...] | torch.Size, x: Tensor, gen: Gen) -> Tensor:
    return torch.randn(shape, generator=gen, device=x.device, dtype=x.dtype)


def _scale(x: Tensor) -> float:
    """Pixels per pixel of a 32-pixel image."""
    return x.shape[-2] / 32.0


# --- building blocks ----------------------------------------------------------------------


def _gaussian_kernel(sigma: float, device: torch.device, dtype: torch.dtype, sampled: bool = False) -> Tensor:
    """The Gaussian integrated over each pixel's extent: sampling it at pixel centres would make
    the sub-pixel widths of small images (0.25 px at 8x8) an identity. ``sampled``: sampled at
    pixel centres out to 4 sigma instead, as scikit-image's, where a threshold was tuned to it."""
    if sampled:
        t = torch.arange(-max(1, math.ceil(4 * sigma)), max(1, math.ceil(4 * sigma)) + 1, device=device,
                         dtype=torch.float64)
        k = torch.exp(-(t ** 2) / (2 * max(sigma, 1e-6) ** 2))
        return (k / k.sum()).to(dtype)
    radius = max(1, math.ceil(3 * sigma))
    edges = torch.arange(-radius - 0.5, radius + 1.0, device=device, dtype=torch.float64) / (
        max(sigma, 1e-6) * math.sqrt(2))
    k = torch.diff(torch.special.erf(edges))
    return (k / k.sum()).to(dtype)


def _pad(x: Tensor, r: int) -> Tensor:
    """Reflect padding, replicate where the image is smaller than the kernel."""
    return F.pad(x, (r, r, r, r), mode="reflect" if r < min(x.shape[-2:]) else "replicate")


def _conv(x: Tensor, kernel: Tensor) -> Tensor:
    """Each channel of each image convolved with ``kernel`` (k, k), or with its own kernel
    (N, k, k); reflect-padded, same size out."""
    n, c, h, w = x.shape
    k = kernel.shape[-1]
    r = (k - 1) // 2
    if kernel.dim() == 2:
        y = F.conv2d(_pad(x.reshape(n * c, 1, h, w), r), kernel.view(1, 1, k, k))
    else:  # one kernel per image: a grouped convolution over the batch
        weight = kernel.repeat_interleave(c, 0).view(n * c, 1, k, k)
        y = F.conv2d(_pad(x.reshape(1, n * c, h, w), r), weight, groups=n * c)
    return y.reshape(n, c, h, w)


def _blur(x: Tensor, sigma: float, sampled: bool = False) -> Tensor:
    """Separable Gaussian blur with a pixel-integrated (or ``sampled``) kernel of width ``sigma`` pixels."""
    k = _gaussian_kernel(sigma, x.device, x.dtype, sampled)
    r = (len(k) - 1) // 2
    n, c, h, w = x.shape
    mode = "reflect" if r < min(h, w) else "replicate"
    y = x.reshape(n * c, 1, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1))
    return y.reshape(n, c, h, w)


def _smooth_noise(noise: Tensor, sigma_at_32: float, scale: float, sampled: bool = False) -> Tensor:
    """White zero-mean ``noise`` (N, C, H, W) blurred by ``sigma_at_32`` pixels of a 32-pixel image
    (times ``scale``, pixels per such pixel), at the amplitude the blur leaves it on a 32-pixel
    image: a blur over fewer pixels averages less noise away, and a threshold on the result should
    cut the same share of any image. On a 32-pixel image, the blur alone."""
    here = _gaussian_kernel(sigma_at_32 * scale, noise.device, torch.float64, sampled)
    at32 = _gaussian_kernel(sigma_at_32, noise.device, torch.float64, sampled)
    return _blur(noise, sigma_at_32 * scale, sampled) * float((at32 ** 2).sum() / (here ** 2).sum())


def _identity_grid(x: Tensor) -> Tensor:
    """(N, H, W, 2) sampling grid in grid_sample's [-1, 1] coordinates (x, y), pixel centres."""
    n, _, h, w = x.shape
    ys = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, device=x.device, dtype=x.dtype) + 0.5) / w * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), -1).expand(n, h, w, 2)


def _sample(x: Tensor, grid: Tensor) -> Tensor:
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _luminance(x: Tensor) -> Tensor:
    """(N, 1, H, W) luminance (ITU-R 601 weights for RGB; the image itself for grayscale)."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _rgb_to_hsv(x: Tensor) -> Tensor:
    r, g, b = x.unbind(1)
    v, _ = x.max(1)
    m, _ = x.min(1)
    d = v - m
    s = torch.where(v > 0, d / v.clamp_min(1e-12), torch.zeros_like(v))
    dd = d.clamp_min(1e-12)
    h = torch.where(v == r, ((g - b) / dd) % 6, torch.where(v == g, (b - r) / dd + 2, (r - g) / dd + 4))
    h = torch.where(d > 0, h / 6, torch.zeros_like(h))
    return torch.stack((h, s, v), 1)


def _hsv_to_rgb(hsv: Tensor) -> Tensor:
    h, s, v = hsv.unbind(1)
    k = torch.stack([(n + h * 6) % 6 for n in (5.0, 3.0, 1.0)], 1)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _fractal(n: int, h: int, w: int, decay: float, x: Tensor, gen: Gen) -> Tensor:
    """(n, 1, h, w) fractal noise in [0, 1]: octaves of uniform noise at resolutions 2, 4, ...,
    up to twice the image size (at most 256), resized to (h, w) and weighted 1 / decay ** octave
    (a larger ``decay`` gives smoother clouds), then stretched to [0, 1] per image."""
    out = torch.zeros((n, 1, h, w), device=x.device, dtype=x.dtype)
    octaves = max(1, min(8, math.ceil(math.log2(2 * max(h, w)))))  # finer octaves would only alias
    for octave in range(octaves):
        side = 2 ** (octave + 1)
        layer = _rand((n, 1, side, side), x, gen) - 0.5
        out += F.interpolate(layer, size=(h, w), mode="bilinear", align_corners=False) / decay ** octave
    lo = out.amin(dim=(2, 3), keepdim=True)
    hi = out.amax(dim=(2, 3), keepdim=True)
    return (out - lo) / (hi - lo).clamp_min(1e-12)


def _motion_kernels(n: int, radius: float, sigma: float, scale: float, x: Tensor, gen: Gen,
                    angles: tuple[float, float] = (-45.0, 45.0)) -> Tensor:
    """(n, k, k) one-sided motion-blur kernels as ImageMagick's MotionBlurImage makes them for a
    32-pixel image: weights exp(-i^2 / (2 sigma^2)) at the steps i = 0, 1, ..., 2 * radius along a
    line at a random angle per image (uniform in ``angles``, degrees; 0 points right, -90 up), here
    with the steps scaled by ``scale`` (pixels per pixel of a 32-pixel image), at most one pixel
    apart, and splatted bilinearly. Steps past 4 sigma (weight below 3e-4) are left out."""
    step = min(1.0, scale)  # pixels between samples: ImageMagick's one pixel, scaled down on small images
    extent = max(min(2 * radius, 4 * sigma) * scale, step)
    t = torch.arange(0, extent + step / 2, step, device=x.device, dtype=x.dtype)
    weight = torch.exp(-((t / scale) ** 2) / (2 * max(sigma, 1e-3) ** 2))
    k = 2 * math.ceil(extent) + 1
    c = k // 2
    lo, hi = angles
    angle = (lo + (hi - lo) * _rand((n, 1), x, gen)) * (math.pi / 180)
    px, py = c + t * torch.cos(angle), c + t * torch.sin(angle)
    kern = torch.zeros((n, k * k), device=x.device, dtype=x.dtype)
    x0, y0 = px.floor(), py.floor()
    for dx in (0, 1):
        for dy in (0, 1):
            wx = 1 - (px - x0 - dx).abs()
            wy = 1 - (py - y0 - dy).abs()
            xi, yi = (x0 + dx).clamp(0, k - 1).long(), (y0 + dy).clamp(0, k - 1).long()
            kern.scatter_add_(1, yi * k + xi, weight * wx * wy)
    kern = kern.view(n, k, k)
    return kern / kern.sum(dim=(1, 2), keepdim=True)


# --- noise --------------------------------------------------------------------------------


def gaussian_noise(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Additive Gaussian noise, sigma 0.08 / 0.12 / 0.18 / 0.26 / 0.38 in [0, 1] units
    (ImageNet-C's levels: stronger than CIFAR-10-C's 0.04-0.10)."""
    return _done(x + _level(NOISE_SIGMA, severity) * _randn(x.shape, x, generator))


def shot_noise(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Poisson (photon) noise: x' = Poisson(x * p) / p with p = 500 / 250 / 100 / 75 / 50 photons."""
    p = _level(SHOT_PHOTONS, severity)
    return _done(torch.poisson(x * p, generator=generator) / p)


def impulse_noise(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Salt-and-pepper noise: a share 0.01 / 0.02 / 0.03 / 0.05 / 0.07 of the values set to 0 or
    1 (equally likely)."""
    amount = _level(IMPULSE_AMOUNT, severity)
    hit = _rand(x.shape, x, generator) < amount
    salt = (_rand(x.shape, x, generator) < 0.5).to(x.dtype)
    return _done(torch.where(hit, salt, x))


def speckle_noise(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Multiplicative Gaussian noise: x + x * N(0, s), s = 0.06 / 0.1 / 0.12 / 0.16 / 0.2 (held out)."""
    return _done(x + x * _level(SPECKLE_SIGMA, severity) * _randn(x.shape, x, generator))


# --- blur ---------------------------------------------------------------------------------


def gaussian_blur(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Gaussian blur, sigma 1 / 2 / 3 / 4 / 6 pixels at 32 px (ImageNet-C's levels; CIFAR-10-C's
    0.4-1 px would be sub-pixel at 8x8), scaled to the image height; separable, reflect-padded
    (held out in CIFAR-10-C)."""
    return _done(_blur(x, _level(BLUR_SIGMA_AT_32PX, severity) * _scale(x)))


def _disk(radius: float, alias_sigma: float, x: Tensor) -> Tensor:
    """A defocus kernel (k, k): a disk of ``radius`` pixels blurred by ``alias_sigma`` pixels,
    discretised as the light a pixel spreads over its whole area lands on its neighbours (the
    disk convolved with a pixel's box, integrated over each target pixel, 8x8 supersampling), so
    a disk narrower than a pixel still blurs a little instead of being an identity."""
    r = math.ceil(radius + 3 * alias_sigma) + 1
    sub = 8
    coords = (torch.arange((2 * r + 1) * sub, device=x.device, dtype=torch.float64) + 0.5) / sub - (r + 0.5)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    disk = ((xx ** 2 + yy ** 2) <= radius ** 2).double()[None, None]
    if disk.sum() == 0:  # narrower than the supersampling: a point
        disk[..., r * sub + sub // 2, r * sub + sub // 2] = 1
    box = torch.ones((1, 1, sub, sub), device=x.device, dtype=torch.float64)
    disk = F.conv2d(F.pad(disk, (sub // 2, sub // 2 - 1, sub // 2, sub // 2 - 1)), box)  # spread over a pixel
    kernel = F.avg_pool2d(disk, sub)
    g = _gaussian_kernel(alias_sigma, x.device, torch.float64)
    pad = (len(g) - 1) // 2
    kernel = F.conv2d(F.pad(kernel, (pad, pad, pad, pad)), (g[:, None] * g[None, :])[None, None])[0, 0]
    return (kernel / kernel.sum()).to(x.dtype)


def defocus_blur(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Defocus: a disk kernel of radius 1 / 1.5 / 2 / 3 / 4 pixels at 32 px, anti-aliased by a
    Gaussian of 0.5 pixels, both scaled to the image height. Stronger than CIFAR-10-C's radii
    (0.3-1.5 px, whose alias widths shrink as the radius grows, so that its blur does not grow
    steadily with severity): these grow at every severity and still blur an 8x8 image."""
    radius, alias = _level(DEFOCUS_AT_32PX, severity)
    return _done(_conv(x, _disk(radius * _scale(x), alias * _scale(x), x)))


def glass_blur(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Frosted glass: Gaussian blur (sigma 0.7 / 0.9 / 1 / 1.1 / 1.5 px at 32 px, ImageNet-C's:
    CIFAR-10-C's 0.05-0.4 vanish below 32 px), then every pixel takes the value of a random
    neighbour at most 1 / 1 / 1 / 2 / 2 pixels away, in 1 / 2 / 3 / 2 / 3 passes (the harness's
    own levels: CIFAR-10-C's are 1 pixel in 1 / 1 / 1 / 2 / 2 passes), then blur again.
    The neighbour shift is a pixel-level effect and is not scaled. Batched: all pixels draw their
    neighbour at once, where the original swaps pixels one after another."""
    sigma, delta, passes = _level(GLASS, severity)
    sigma *= _scale(x)
    y = _blur(x, sigma)
    n, c, h, w = y.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    for _ in range(passes):
        dy = torch.randint(-delta, delta + 1, (n, h, w), generator=generator, device=x.device)
        dx = torch.randint(-delta, delta + 1, (n, h, w), generator=generator, device=x.device)
        src = (rows + dy).clamp(0, h - 1) * w + (cols + dx).clamp(0, w - 1)
        y = y.flatten(2).gather(2, src.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)
    return _done(_blur(y, sigma))


@revised(2)  # 2: follows the reference (tests/test_shifts.py)
def motion_blur(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Motion blur along a random direction per image (-45 to 45 degrees), one-sided, with
    ImageMagick's radius 10 / 10 / 10 / 10 / 12 and sigma 1 / 1.5 / 2 / 2.5 / 3 pixels at 32 px,
    scaled to the image height. These are Tiny-ImageNet-C's levels (CIFAR-10-C's are radius 6 / 6 /
    6 / 8 / 9, sigma 1 / 1.5 / 2 / 2 / 2.5: its severities 3 and 4 blur alike)."""
    radius, sigma = _level(MOTION_AT_32PX, severity)
    return _done(_conv(x, _motion_kernels(x.shape[0], radius, sigma, _scale(x), x, generator)))


def zoom_blur(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Zoom blur: the mean of the image and its central zooms by 1.01, 1.02, ... up to
    1.05 / 1.10 / 1.15 / 1.20 / 1.25 (bilinear)."""
    top = _level(ZOOM_MAX, severity)
    grid = _identity_grid(x)
    zooms = [1 + k / 100 for k in range(1, round((top - 1) * 100))]
    out = x + sum(_sample(x, grid / z) for z in zooms)
    return _done(out / (len(zooms) + 1))


# --- weather ------------------------------------------------------------------------------


@revised(2)  # 2: follows the reference (tests/test_shifts.py)
def snow(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Snow: a layer of Gaussian noise (mean, std, zoom), thresholded into flakes, smeared by a
    motion blur (radius 8-14 px at 32 px, at a random angle from -135 to -45 degrees: falling);
    the image is whitened towards its luminance and the flakes (and the flakes turned by 180
    degrees) are added."""
    mean, std, zoom, thresh, radius, sigma, blend = _level(SNOW, severity)
    n, c, h, w = x.shape
    side_h, side_w = max(2, round(h / zoom)), max(2, round(w / zoom))
    layer = mean + std * _randn((n, 1, side_h, side_w), x, generator)
    layer = F.interpolate(layer, size=(h, w), mode="bilinear", align_corners=False)
    layer = torch.where(layer < thresh, torch.zeros_like(layer), layer)
    # falling: -135 to -45 degrees, as CIFAR-10-C draws it (motion blur's -45 to 45 would smear sideways)
    flakes = _conv(layer, _motion_kernels(n, radius, sigma, _scale(x), x, generator, angles=(-135.0, -45.0)))
    base = blend * x + (1 - blend) * torch.maximum(x, _luminance(x) * 1.5 + 0.5)
    return _done(base + flakes + torch.rot90(flakes, 2, dims=(-2, -1)))


def frost(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Frost: a * x + b * frost with (a, b) = (1, 0.2) / (1, 0.3) / (0.9, 0.4) / (0.85, 0.4) /
    (0.75, 0.45). The frost layer is procedural (fractal noise cubed: dark with bright crystal
    edges), not CIFAR-10-C's photographs of frost, which cannot be shipped here."""
    a, b = _level(FROST, severity)
    n, c, h, w = x.shape
    crystals = _fractal(n, h, w, 1.4, x, generator)  # rough, high-frequency texture
    ice = (crystals ** 3 * 2.2).clamp(0, 1)
    return _done(a * x + b * ice.expand(n, c, h, w))


def fog(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Fog: fractal clouds of strength 0.2 / 0.5 / 0.75 / 1 / 1.5 and smoothness 3 / 3 / 2.5 / 2 /
    1.75 added to the image, then rescaled by max / (max + strength) as CIFAR-10-C does."""
    strength, decay = _level(FOG, severity)
    n, c, h, w = x.shape
    top = x.amax(dim=(1, 2, 3), keepdim=True)
    clouds = _fractal(n, h, w, decay, x, generator)
    return _done((x + strength * clouds) * top / (top + strength))


@revised(2)  # 2: follows the reference (tests/test_shifts.py)
def spatter(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Spatter (held out): blobs where blurred Gaussian noise passes a threshold. Water (severities
    1-3) lightens what it covers towards pale turquoise (a flat blend where CIFAR-10-C adds a
    sheen drawn from edge distances). Mud (4-5) as CIFAR-10-C's: the blobs, blurred by 0.6 pixels
    at 32 px and kept where that is at least 0.8, replace the image by mud brown (made at 32 px and
    averaged down on smaller images)."""
    mean, std, sigma, thresh, intensity, mud = _level(SPATTER, severity)
    n, c, h, w = x.shape
    if mud:  # CIFAR-10-C's fifth parameter is the mask's blur here, and its 0.8 cut assumes kernels
        # sampled at pixel centres and blobs of several pixels: below 32 px, made at 32 and averaged down
        side = (max(h, 32), max(w, 32))
        scale = side[0] / 32
        noise = _randn((n, 1, *side), x, generator)
        blobs = (mean + std * _smooth_noise(noise, sigma, scale, sampled=True) >= thresh).to(x.dtype)
        cover = _blur(blobs, intensity * scale, sampled=True)
        cover = torch.where(cover >= 0.8, cover, torch.zeros_like(cover))
        if side != (h, w):
            cover = F.interpolate(cover, size=(h, w), mode="area")
        brown = torch.tensor([63 / 255, 42 / 255, 20 / 255] if c == 3 else [0.179] * c,  # gray: its luminance
                             device=x.device, dtype=x.dtype).view(1, c, 1, 1)
        return _done(x * (1 - cover) + brown * cover)
    noise = _randn((n, 1, h, w), x, generator)
    liquid = mean + std * _smooth_noise(noise, sigma, _scale(x))
    mask = (liquid >= thresh).to(x.dtype) * ((liquid - thresh) / (1 - thresh)).clamp(0, 1).sqrt()
    water = torch.tensor([175 / 255, 238 / 255, 238 / 255] if c == 3 else [0.9] * c,  # pale turquoise
                         device=x.device, dtype=x.dtype).view(1, c, 1, 1)
    return _done(x * (1 - intensity * mask) + water * intensity * mask)


# --- digital ------------------------------------------------------------------------------


def brightness(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Brightness: value (HSV) raised by 0.05 / 0.1 / 0.15 / 0.2 / 0.3; for grayscale, the image."""
    b = _level(BRIGHTNESS, severity)
    if x.shape[1] != 3:
        return _done(x + b)
    hsv = _rgb_to_hsv(x)
    return _done(_hsv_to_rgb(torch.stack((hsv[:, 0], hsv[:, 1], (hsv[:, 2] + b).clamp(0, 1)), 1)))


@revised(2)  # 2: follows the reference (tests/test_shifts.py)
def contrast(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Contrast reduction towards the mean of each channel of each image, factor 0.75 / 0.5 / 0.4 /
    0.3 / 0.15."""
    f = _level(CONTRAST_FACTOR, severity)
    mean = x.mean(dim=(2, 3), keepdim=True)
    return _done((x - mean) * f + mean)


def saturate(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Saturation (held out): S -> S * a + b with (a, b) = (0.3, 0) / (0.1, 0) / (1.5, 0) / (2, 0.1) /
    (2.5, 0.2) in HSV. Grayscale images have no saturation and come back unchanged."""
    a, b = _level(SATURATE, severity)
    if x.shape[1] != 3:
        return _done(x.clone())
    hsv = _rgb_to_hsv(x)
    return _done(_hsv_to_rgb(torch.stack((hsv[:, 0], (hsv[:, 1] * a + b).clamp(0, 1), hsv[:, 2]), 1)))


@revised(2)  # 2: follows the reference (tests/test_shifts.py)
def elastic_transform(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Elastic transform as CIFAR-10-C's: a random affine that moves three points (two thirds of
    the way from the centre to three corners) by up to 8 / 7 / 6 / 5 / 3% of the image each, then
    a displacement field of uniform noise in [-1, 1] smoothed by a Gaussian of 0 / 20 / 6 / 4 / 3% of
    the image and multiplied by 0 / 5 / 8 / 10 / 10% of the image; bilinear, reflected at the
    border. The field's amplitude is the one it has on a 32-pixel image (smoothing shrinks noise
    less on fewer pixels), so the displacement is the same fraction of any image."""
    alpha, sigma, jitter = _level(ELASTIC, severity)
    n, _, h, w = x.shape
    grid = _identity_grid(x)
    # in grid units, where the image spans 2: theta maps each point p to p + its jitter
    points = torch.tensor([[2 / 3, 2 / 3, 1], [2 / 3, -2 / 3, 1], [-2 / 3, -2 / 3, 1]], dtype=torch.float64)
    jitters = (_rand((n, 3, 2), x, generator) * 2 - 1) * (2 * jitter)
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype) + (
        torch.linalg.inv(points).to(x.device, x.dtype) @ jitters).transpose(1, 2)
    grid = torch.einsum("nhwk,nik->nhwi", torch.cat((grid, torch.ones_like(grid[..., :1])), -1), theta)
    if alpha > 0:
        field = _smooth_noise(_rand((n, 2, h, w), x, generator) * 2 - 1, sigma * 32, _scale(x))
        grid = grid + 2 * alpha * field.permute(0, 2, 3, 1)
    return _done(_sample(x, grid))


def _box_matrix(n_in: int, n_out: int, x: Tensor) -> Tensor:
    """(n_out, n_in) downsampling weights of PIL's BOX filter: each output pixel is the mean of the
    input pixels whose centres fall in its footprint (one or two of them when shrinking by less
    than 2x; an area average would mix two or three into every output pixel)."""
    s = n_in / n_out
    lo = torch.arange(n_out, device=x.device, dtype=torch.float64)[:, None] * s
    centre = torch.arange(n_in, device=x.device, dtype=torch.float64)[None, :] + 0.5
    w = ((centre > lo) & (centre <= lo + s)).to(torch.float64)
    return (w / w.sum(1, keepdim=True)).to(x.dtype)


@revised(2)  # 2: follows the reference (tests/test_shifts.py)
def pixelate(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """Pixelation: box-downsampled to 0.95 / 0.9 / 0.85 / 0.75 / 0.65 of the size as PIL's BOX
    filter does it, then back up by nearest neighbour (pixel centres, as PIL's NEAREST)."""
    f = _level(PIXELATE, severity)
    h, w = x.shape[-2:]
    small = _box_matrix(h, max(1, int(h * f)), x) @ x @ _box_matrix(w, max(1, int(w * f)), x).T
    return _done(F.interpolate(small, size=(h, w), mode="nearest-exact"))


# JPEG's standard quantisation tables (ITU-T T.81, Annex K), luminance and chrominance
_JPEG_LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
              14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
              49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
_JPEG_CHROMA = (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
                47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32))


def _dct_matrix(x: Tensor) -> Tensor:
    k = torch.arange(8, device=x.device, dtype=torch.float64)
    m = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m.to(x.dtype)


def jpeg_compression(x: Tensor, severity: int, generator: Gen = None) -> Tensor:
    """JPEG compression at quality 80 / 65 / 58 / 50 / 40: 8x8 block DCT of the (YCbCr) image in
    0-255 units, quantised with the standard tables scaled by quality as libjpeg does, and
    decoded (no chroma subsampling, no entropy coding: the loss is all in the quantisation)."""
    q = _level(JPEG_QUALITY, severity)
    scale = 5000 / q if q < 50 else 200 - 2 * q
    n, c, h, w = x.shape
    tables = [_JPEG_LUMA] + [_JPEG_CHROMA] * (c - 1)
    qt = torch.tensor(tables, device=x.device, dtype=x.dtype).view(1, c, 1, 1, 8, 8)
    qt = ((qt * scale + 50) // 100).clamp(1, 255)
    if c == 3:
        ycc = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
                           device=x.device, dtype=x.dtype)
        y = torch.einsum("ij,njhw->nihw", ycc, x * 255) + torch.tensor([0.0, 128, 128], device=x.device,
                                                                      dtype=x.dtype).view(1, 3, 1, 1)
    else:
        y = x * 255
    ph, pw = (-h) % 8, (-w) % 8
    y = F.pad(y, (0, pw, 0, ph), mode="replicate") - 128
    hb, wb = (h + ph) // 8, (w + pw) // 8
    blocks = y.view(n, c, hb, 8, wb, 8).permute(0, 1, 2, 4, 3, 5)  # (n, c, hb, wb, 8, 8)
    d = _dct_matrix(x)
    coef = d @ blocks @ d.T
    coef = torch.round(coef / qt) * qt
    y = (d.T @ coef @ d).permute(0, 1, 2, 4, 3, 5).reshape(n, c, hb * 8, wb * 8)[..., :h, :w] + 128
    if c == 3:
        y = y - torch.tensor([0.0, 128, 128], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        rgb = torch.tensor([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]],
                           device=x.device, dtype=x.dtype)
        y = torch.einsum("ij,njhw->nihw", rgb, y)
    return _done(torch.round(y.clamp(0, 255)) / 255)


CIFAR10_C = ("gaussian-noise", "shot-noise", "impulse-noise", "defocus-blur", "glass-blur", "motion-blur",
             "zoom-blur", "snow", "frost", "fog", "brightness", "contrast", "elastic-transform", "pixelate",
             "jpeg-compression")
HELD_OUT = ("speckle-noise", "gaussian-blur", "spatter", "saturate")
NOT_MONOTONE = {
    "saturate": "desaturates at severities 1-2 and oversaturates at 3-5",
    "spatter": "water at severities 1-3, mud at 4-5",
    "elastic-transform": "the affine jitter shrinks as the elastic field grows",
    "frost": "the image's weight falls faster than the frost's rises at severity 4",
    "pixelate": "block grids of neighbouring sizes align differently with the image",
}
