"""Regenerate ``sphere_1k.ply`` for ``contact.xml``: ``python scenes/edge/make_contact.py``.

A unit icosphere subdivided three times (1,280 faces) with per-vertex
normals (smooth shading), shifted up so that its lowest vertex lies at
y = 0: scaled and placed on a floor at y = 0, it rests there.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "bench"))
from make_assets import write_ply  # noqa: E402
from make_icosphere import icosphere  # noqa: E402


def main() -> None:
    v, f = icosphere(3)
    n = v.copy()                      # a unit sphere's normals are its positions
    v = v - np.array([0.0, v[:, 1].min(), 0.0])
    write_ply(HERE / "sphere_1k.ply", v, f, n)
    print(f"wrote sphere_1k.ply ({len(v)} vertices, {len(f)} faces)")


if __name__ == "__main__":
    main()
