"""The loss curve as a PNG, drawn with PIL (already present through imageio)
so that pbdr needs no plotting library. Log scale: losses fall by decades."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..imageio import write_png


def loss_plot(path: str | os.PathLike, losses: Sequence[float], title: str = "loss") -> None:
    from PIL import Image, ImageDraw

    w, h, left, right, top, bottom = 480, 300, 62, 12, 24, 30
    img = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    values = np.log10(np.maximum(np.asarray(losses, dtype=np.float64), 1e-30))
    draw.rectangle([left, top, w - right, h - bottom], outline=(0, 0, 0))
    draw.text((left, 6), f"{title} (log scale), {len(losses)} iterations", fill=(0, 0, 0))
    if len(values):
        lo, hi = float(values.min()), float(values.max())
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        xs = left + (w - right - left) * np.arange(len(values)) / max(1, len(values) - 1)
        ys = top + (h - bottom - top) * (hi - values) / (hi - lo)
        if len(values) > 1:
            draw.line(list(zip(xs.tolist(), ys.tolist())), fill=(200, 40, 40), width=2)
        for v, y in ((hi, top), (lo, h - bottom)):
            draw.text((4, y - 6), f"{10 ** v:.3g}", fill=(0, 0, 0))
        draw.text((left, h - bottom + 8), "0", fill=(0, 0, 0))
        draw.text((w - right - 30, h - bottom + 8), str(len(values) - 1), fill=(0, 0, 0))
    write_png(path, np.asarray(img))
