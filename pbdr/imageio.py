"""Writing what people look at: EXR data, tonemapped PNGs, diverging-colormap
derivative images with colour bars and labelled side-by-side sheets. Every write is atomic
(temporary file + rename), so an interrupted run never leaves half a file."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from typing import Iterator, Sequence

import mitsuba as mi
import numpy as np

from .errors import PbdrError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=".pbdr-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def as_hwc(image: np.ndarray) -> np.ndarray:
    """``image`` as float32 H x W x C (a channel axis added to H x W)."""
    image = np.asarray(image, dtype=np.float32)
    return image[..., None] if image.ndim == 2 else image


def write_exr(path: str | os.PathLike, image: np.ndarray) -> None:
    """Float32 OpenEXR with the image's channels (Y, RGB or RGBA)."""
    with atomic_path(path) as tmp:
        mi.Bitmap(np.ascontiguousarray(as_hwc(image))).write(tmp)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an EXR (or any format Mitsuba reads) as float32 HxWxC."""
    if not os.path.isfile(path):
        raise PbdrError(f"image not found: {path}")
    try:
        return as_hwc(np.array(mi.Bitmap(os.fspath(path)), dtype=np.float32))
    except Exception as exc:
        raise PbdrError(f"cannot read image {path}: {exc}") from None


def write_png(path: str | os.PathLike, rgb8: np.ndarray) -> None:
    """Write an 8-bit RGB array as a PNG, atomically."""
    import imageio.v3 as iio

    with atomic_path(path) as tmp:
        iio.imwrite(tmp, rgb8, extension=".png")


def tonemap(image: np.ndarray) -> np.ndarray:
    """Linear radiance to 8-bit sRGB (clamped), first three channels."""
    img = as_hwc(image)
    rgb = img[..., :3] if img.shape[-1] >= 3 else np.repeat(img[..., :1], 3, axis=-1)
    rgb = np.clip(np.nan_to_num(rgb), 0.0, 1.0)
    srgb = np.where(rgb <= 0.0031308, 12.92 * rgb, 1.055 * np.power(rgb, 1 / 2.4) - 0.055)
    return (srgb * 255.0 + 0.5).astype(np.uint8)


# Control points of a blue-white-red diverging colormap (ColorBrewer RdBu, reversed).
_DIVERGING = np.array([
    [0.019, 0.188, 0.380], [0.129, 0.400, 0.674], [0.263, 0.576, 0.765],
    [0.573, 0.773, 0.871], [0.820, 0.898, 0.941], [0.969, 0.969, 0.969],
    [0.992, 0.859, 0.780], [0.957, 0.647, 0.510], [0.839, 0.376, 0.302],
    [0.698, 0.094, 0.169], [0.404, 0.000, 0.122]])


def signed_scale(*images: np.ndarray, percentile: float = 99.0) -> float:
    """A symmetric colour range shared by several derivative images."""
    values = np.concatenate([np.abs(channel_mean(i)).ravel() for i in images])
    scale = float(np.percentile(values, percentile)) if values.size else 0.0
    return scale if scale > 0 else 1.0


def channel_mean(image: np.ndarray) -> np.ndarray:
    """The mean over the colour channels (the only channel of a one-channel image): H x W."""
    img = as_hwc(image)
    return img[..., :3].mean(axis=-1) if img.shape[-1] >= 3 else img[..., 0]


def diverging(image: np.ndarray, scale: float | None = None) -> np.ndarray:
    """Signed values (mean over colour channels) to 8-bit RGB: blue < 0 < red."""
    v = channel_mean(image)
    scale = scale or signed_scale(image)
    t = (np.clip(np.nan_to_num(v) / scale, -1, 1) + 1) * 0.5 * (len(_DIVERGING) - 1)
    i = np.clip(np.floor(t).astype(int), 0, len(_DIVERGING) - 2)
    f = (t - i)[..., None]
    rgb = _DIVERGING[i] * (1 - f) + _DIVERGING[i + 1] * f
    return (rgb * 255 + 0.5).astype(np.uint8)


def upscale(rgb8: np.ndarray, min_size: int = 256) -> np.ndarray:
    """Nearest-neighbour enlargement so that tiny test renders are visible."""
    k = max(1, int(np.ceil(min_size / max(rgb8.shape[:2]))))
    return np.repeat(np.repeat(rgb8, k, axis=0), k, axis=1)


def colour_bar(scale: float, height: int) -> np.ndarray:
    """A vertical key for :func:`diverging` images drawn with ``scale``: the
    colour ramp from -scale (bottom) to +scale (top) with its values written
    beside it, ``height`` pixels tall."""
    from PIL import Image, ImageDraw

    bar_w, text_w, margin = 14, 64, 6
    height = max(height, 48)
    ramp = np.linspace(scale, -scale, height, dtype=np.float32)[:, None]
    ramp_rgb = diverging(np.repeat(ramp, bar_w, axis=1), scale)
    canvas = Image.new("RGB", (bar_w + text_w, height), (255, 255, 255))
    canvas.paste(Image.fromarray(ramp_rgb), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for value, y in ((scale, 0), (0.0, height // 2 - 5), (-scale, height - 11)):
        tick = min(max(y + 5, 0), height - 1)
        draw.line([(bar_w, tick), (bar_w + 3, tick)], fill=(0, 0, 0))
        draw.text((bar_w + margin, y), f"{value:+.3g}" if value else "0", fill=(0, 0, 0))
    return np.asarray(canvas)


def sheet(tiles: Sequence[np.ndarray], labels: Sequence[str], scale: float | None = None,
          bar_label: str = "dI/dtheta") -> np.ndarray:
    """Tiles side by side with a label above each; with ``scale`` (the
    colour range the signed tiles were drawn with by :func:`diverging`), a
    colour bar labelled ``bar_label`` at the right."""
    from PIL import Image, ImageDraw

    tiles = [upscale(t) for t in tiles]
    h = max(t.shape[0] for t in tiles)
    if scale is not None:
        tiles, labels = tiles + [colour_bar(scale, h)], list(labels) + [bar_label]
    pad, top = 6, 18
    w = sum(t.shape[1] for t in tiles) + pad * (len(tiles) + 1)
    canvas = Image.new("RGB", (w, h + top + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = pad
    for tile, label in zip(tiles, labels):
        canvas.paste(Image.fromarray(tile), (x, top))
        draw.text((x, 3), label, fill=(0, 0, 0))
        x += tile.shape[1] + pad
    return np.asarray(canvas)


def write_render(path: str | os.PathLike, image: np.ndarray) -> str:
    """EXR at ``path`` plus a tonemapped PNG beside it; returns the PNG path."""
    write_exr(path, image)
    png = os.path.splitext(os.fspath(path))[0] + ".png"
    write_png(png, upscale(tonemap(image)))
    return png


def write_derivative(path: str | os.PathLike, image: np.ndarray, scale: float | None = None) -> str:
    """EXR at ``path`` plus a diverging-colormap PNG with a colour bar beside
    it; returns the PNG path."""
    write_exr(path, image)
    png = os.path.splitext(os.fspath(path))[0] + ".png"
    scale = scale or signed_scale(image)
    write_png(png, sheet([diverging(image, scale)], [os.path.basename(os.fspath(path))], scale))
    return png
