"""SDF grids: analytic primitives, meshes, .vol round trip, the ``pbdr sdf`` command."""
from __future__ import annotations

import numpy as np
import pytest

from pbdr import PbdrError
from pbdr.cli import main
from pbdr.geometry import sdf


def test_sphere_values_are_distances():
    g = sdf.sphere(0.5, center=(1, 2, 3), resolution=9, padding=0.0)
    # Corner samples at lo + s·i/(N-1); the centre sample lies on the centre.
    assert g.resolution == 9
    assert g.world_values()[4, 4, 4] == pytest.approx(-0.5, abs=1e-6)
    corner = np.linalg.norm([0.5, 0.5, 0.5]) - 0.5
    assert g.world_values()[0, 0, 0] == pytest.approx(corner, abs=1e-6)
    m = g.to_world_matrix()
    assert np.allclose(m[:3, 3], [0.5, 1.5, 2.5]) and m[0, 0] == pytest.approx(1.0)


def test_mesh_sdf_matches_box():
    import mitsuba as mi
    cube = mi.load_dict({"type": "cube"})
    params = mi.traverse(cube)
    v = np.array(params["vertex_positions"]).reshape(-1, 3)
    f = np.array(params["faces"]).reshape(-1, 3)
    from_mesh = sdf.from_mesh(v, f, resolution=12)
    exact = sdf.box((1, 1, 1), resolution=12)
    assert np.allclose(from_mesh.values, exact.values, atol=1e-5)
    assert np.allclose(from_mesh.origin, exact.origin)


def test_torus_sign():
    g = sdf.torus(1.0, 0.25, resolution=17, padding=0.0)
    w = g.world_values()
    # The ring passes through x = ±1 (index (N-1)·(±1+1.25)/2.5 ... ) and the hole is outside.
    assert w[8, 8, 8] == pytest.approx(0.75, abs=1e-5)
    assert w.min() < 0


def test_write_read_roundtrip_and_no_overwrite(tmp_path):
    g = sdf.box((0.2, 0.3, 0.4), resolution=8)
    path = str(tmp_path / "b.vol")
    sdf.write(g, path)
    assert np.allclose(sdf.read(path), g.values)
    with pytest.raises(PbdrError, match="already exists"):
        sdf.write(g, path)
    sdf.write(g, path, force=True)


def test_sdfgrid_surface_where_expected(tmp_path):
    """Mitsuba intersects the written grid where the analytic sphere is."""
    import mitsuba as mi
    g = sdf.sphere(0.4, center=(0.1, 0.0, 0.0), resolution=24)
    path = str(tmp_path / "s.vol")
    sdf.write(g, path)
    scene = mi.load_dict({"type": "scene", "s": {"type": "sdfgrid", "filename": path,
                                                 "to_world": g.to_world()}})
    si = scene.ray_intersect(mi.Ray3f(mi.Point3f(-2, 0, 0), mi.Vector3f(1, 0, 0)))
    assert float(si.p.x[0]) == pytest.approx(0.1 - 0.4, abs=2e-3)


def test_cli(tmp_path, capsys):
    out = str(tmp_path / "t.vol")
    assert main(["sdf", "torus", "--major", "0.5", "--minor", "0.1", "-o", out, "--res", "8"]) == 0
    assert "sdfgrid" in capsys.readouterr().out
    assert main(["sdf", "sphere", "--radius", "0.3", "-o", out]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["sdf", "box", "--half-size", "0.1,0.2,0.3", "-o", out, "--force", "--res", "8"]) == 0
    assert main(["sdf", "sphere", "--radius", "-1", "-o", str(tmp_path / "x.vol")]) == 2
    assert main(["sdf", "mesh", str(tmp_path / "missing.obj"), "-o", str(tmp_path / "m.vol")]) == 2
