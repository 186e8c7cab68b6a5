"""Write meshes/ico.ply: an icosphere (radius 1, 2 subdivisions, 162 vertices)
for the shape-recovery example. Run once: python scenes/opt_shape/make_mesh.py
"""
from __future__ import annotations

import os

import mitsuba as mi
import numpy as np


def icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    t = (1 + 5 ** 0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
         (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
         (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
         (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(p, float) / np.linalg.norm(p) for p in v]
    faces = f
    for _ in range(subdivisions):
        mid: dict[tuple[int, int], int] = {}

        def midpoint(a: int, b: int) -> int:
            key = (min(a, b), max(a, b))
            if key not in mid:
                p = verts[a] + verts[b]
                verts.append(p / np.linalg.norm(p))
                mid[key] = len(verts) - 1
            return mid[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(verts, np.float32), np.array(faces, np.uint32)


if __name__ == "__main__":
    mi.set_variant("scalar_rgb")
    v, f = icosphere(2)
    mesh = mi.Mesh("ico", len(v), len(f), has_vertex_normals=False)
    params = mi.traverse(mesh)
    params["vertex_positions"] = v.ravel()
    params["faces"] = f.ravel()
    params.update()
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "meshes", "ico.ply")
    mesh.write_ply(out)
    print(f"wrote {out}: {len(v)} vertices, {len(f)} faces")
