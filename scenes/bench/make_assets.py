"""Regenerate the bench suite's assets: ``python scenes/bench/make_assets.py``.

``--subdivisions N --out FILE`` writes only the blob, subdivided N times
(20 · 4^N faces: 3 gives 1,280, 6 gives 81,920, 8 gives 1.3 million), for
``blob.xml -D mesh=FILE``.

- ``blob.ply``: a smooth closed mesh of 20,480 faces (an icosahedron
  subdivided five times, displaced along its normals by a smooth bump
  pattern) with per-vertex normals, binary PLY (~0.5 MB);
- ``checker.exr``: a 64x64 float colour texture (soft checks and a gradient;
  float, so that its texels are differentiable: an 8-bit PNG loads as integers).

Deterministic: no random numbers.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "edge"))
from make_icosphere import icosphere  # noqa: E402


def vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Area-weighted averages of the faces' normals, normalized."""
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def blob(subdivisions: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    v, f = icosphere(subdivisions)
    x, y, z = v.T
    r = 1.0 + 0.08 * np.sin(3 * x + 1) * np.sin(3 * y + 2) * np.sin(3 * z) + 0.05 * np.cos(5 * y)
    v = v * r[:, None]
    return v, f, vertex_normals(v, f)


def write_ply(path: Path, v: np.ndarray, f: np.ndarray, n: np.ndarray) -> None:
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(v)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property float nx\nproperty float ny\nproperty float nz\n"
              f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n")
    verts = np.hstack([v, n]).astype("<f4")
    faces = np.zeros(len(f), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    faces["n"], faces["i"] = 3, f
    with open(path, "wb") as out:
        out.write(header.encode("ascii"))
        out.write(verts.tobytes())
        out.write(faces.tobytes())


def checker(size: int = 64) -> np.ndarray:
    u, v = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size))
    checks = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * u) * np.sin(2 * np.pi * 4 * v)
    rgb = np.stack([0.1 + 0.6 * checks, 0.1 + 0.4 * u, 0.15 + 0.5 * (1 - checks) * v], axis=-1)
    return np.round(rgb, 4).astype(np.float32)


def main() -> None:
    import argparse

    import mitsuba as mi

    ap = argparse.ArgumentParser(description="regenerate the bench suite's assets")
    ap.add_argument("--subdivisions", type=int, help="write only a blob subdivided this many times")
    ap.add_argument("--out", type=Path, help="where that blob goes (with --subdivisions)")
    args = ap.parse_args()
    if args.subdivisions is not None:
        if args.out is None:
            ap.error("--subdivisions needs --out")
        v, f, n = blob(args.subdivisions)
        write_ply(args.out, v, f, n)
        print(f"wrote {args.out} ({len(v)} vertices, {len(f)} faces)")
        return
    mi.set_variant("scalar_rgb")
    v, f, n = blob()
    write_ply(HERE / "blob.ply", v, f, n)
    mi.Bitmap(checker(), pixel_format=mi.Bitmap.PixelFormat.RGB).write(str(HERE / "checker.exr"))
    print(f"wrote blob.ply ({len(v)} vertices, {len(f)} faces) and checker.exr")


if __name__ == "__main__":
    main()
