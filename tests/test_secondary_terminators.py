"""pbdr_edge on smooth-shaded meshes: shading terminators seen from path vertices
(integrators/boundary/secondary_terminators.py) and a vertex's own horizon
(edge_sampling.edge_view). Tolerances come from measured standard errors."""
from __future__ import annotations

import drjit as dr
import mitsuba as mi
import numpy as np
import pytest

import pbdr

from conftest import assert_agrees, scene_path


def _smooth_sphere_moving() -> tuple[mi.Scene, dict]:
    scene = pbdr.load_scene(scene_path("edge/icosphere.xml"), {"face_normals": "false"})
    params = pbdr.scene_params(scene)
    dr.enable_grad(params["sphere.vertex_positions"])     # a moving mesh: its arcs are drawn
    params.update()
    return scene, params


def _reference_arcs(positions: np.ndarray, normals: np.ndarray, p: np.ndarray, K: int = 4001) -> float:
    """Total length of the terminator arcs seen from p on the front faces (numpy,
    float64): each crossed face's chord, K points moved onto the arc along the
    chord's normal in the face's plane, and the polyline through them."""
    total = 0.0
    for V, N in zip(positions, normals):
        h = np.einsum("kj,kj->k", N, p - V)
        if (h > 0).all() or (h < 0).all() or np.dot(np.cross(V[1] - V[0], V[2] - V[0]), p - V[0]) <= 0:
            continue
        ends = []
        for k in range(3):
            j = (k + 1) % 3
            dn, dv = N[j] - N[k], V[j] - V[k]
            if (h[k] > 0) == (h[j] > 0):
                continue
            roots = np.roots([-dn @ dv, dn @ (p - V[k]) - N[k] @ dv, h[k]])
            t = [r.real for r in roots if abs(r.imag) < 1e-12 and 0 <= r.real <= 1][0]
            ends.append(V[k] + t * dv)
        a, b = ends
        e1, e2 = V[1] - V[0], V[2] - V[0]
        n_f = np.cross(e1, e2)
        M = np.linalg.pinv(np.stack([e1, e2], axis=1))            # barycentrics of a point in the plane
        chord = (b - a) / np.linalg.norm(b - a)
        step = np.cross(n_f, chord)
        step /= np.linalg.norm(step)
        pts = []
        for s in np.linspace(0, 1, K):
            c = a + s * (b - a)
            bc, bN = M @ (c - V[0]), M @ step
            n_c = N[0] + bc[0] * (N[1] - N[0]) + bc[1] * (N[2] - N[0])
            n_N = bN[0] * (N[1] - N[0]) + bN[1] * (N[2] - N[0])
            roots = np.roots([-n_N @ step, n_N @ (p - c) - n_c @ step, n_c @ (p - c)])
            u = min((r.real for r in roots if abs(r.imag) < 1e-12), key=abs)
            pts.append(c + u * step)
        total += np.linalg.norm(np.diff(np.array(pts), axis=0), axis=1).sum()
    return total


@pytest.mark.parametrize("candidates", [0, 8])
def test_terminator_samples_lie_on_the_arcs_and_integrate_their_length(candidates: int) -> None:
    """From a floor point, every sample is a zero of H inside its face, and 1/pdf
    averages to the total arc length (with all faces weighed, and with a strided
    subset of 8: the Horvitz-Thompson sum keeps it unbiased)."""
    from pbdr.integrators.boundary.secondary_terminators import TerminatorSampler, smooth_face_set
    scene, params = _smooth_sphere_moving()
    faces = smooth_face_set(scene)
    assert faces is not None and faces.moving_count == len(faces) == 320
    sampler = TerminatorSampler(faces, candidates)
    n = 1 << 16
    p_host = np.array([0.7, 0.0, 0.4])
    p = mi.Point3f(*(mi.Float(np.full(n, c)) for c in p_host))
    rng = np.random.default_rng(3)
    u = [mi.Float(rng.random(n).astype(np.float32)) for _ in range(2)]
    smp = sampler.sample(p, mi.Vector3f(0, 1, 0), mi.Bool(False), u[0], u[1], mi.Bool(True), mi.Bool(False))
    active = np.array(smp.active)
    # (a subset of 8 of the 320 faces often holds no arc: that sample is 0)
    assert active.mean() > (0.99 if candidates == 0 else 0.3)

    # On the arc: n_s(b)·(p - x) vanishes at the sampled barycentrics.
    corners = [np.array(dr.detach(x)).T[np.array(smp.index)] for x in faces.v + faces.n]
    b1, b2 = np.array(smp.bary)
    x = corners[0] + b1[:, None] * (corners[1] - corners[0]) + b2[:, None] * (corners[2] - corners[0])
    n_s = corners[3] + b1[:, None] * (corners[4] - corners[3]) + b2[:, None] * (corners[5] - corners[3])
    H = np.einsum("ij,ij->i", n_s, p_host - x) / np.linalg.norm(p_host - x, axis=1)
    assert np.abs(H[active]).max() < 1e-4
    assert np.allclose(x[active], np.array(smp.x).T[active], atol=1e-5)

    # The density: E[1/pdf] is the arcs' total length.
    length = _reference_arcs(*_face_arrays(faces), p_host)
    inv_pdf = np.where(active, np.array(smp.inv_pdf), 0.0)
    se = inv_pdf.std() / np.sqrt(n)
    assert abs(inv_pdf.mean() - length) < 4 * se + 1e-3 * length, (inv_pdf.mean(), length, se)


def _face_arrays(faces) -> tuple[np.ndarray, np.ndarray]:
    """(F x 3 x 3 corners, F x 3 x 3 vertex normals) of a SmoothFaces, float64."""
    v = np.stack([np.array(dr.detach(x), dtype=np.float64).T for x in faces.v], axis=1)
    n = np.stack([np.array(dr.detach(x), dtype=np.float64).T for x in faces.n], axis=1)
    return v, n


def test_smooth_pair_needs_the_secondary_terminators(monkeypatch) -> None:
    """Two smooth spheres light each other and the floor: with the terminators seen
    from shading points the derivative agrees with FD; without them (edges alone)
    the same comparison, against the same FD, fails (the test has power)."""
    import pbdr.integrators.boundary.secondary_edges as secondary
    scene = pbdr.load_scene(scene_path("edge/smooth_pair.xml"))
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "left.vertex_positions", (1, 0, 0))
    integrator = mi.load_dict({"type": "pbdr_edge", "max_depth": 3})
    result = pbdr.check(scene, p, eps=0.002, spp=128, fd_spp=4096, seeds=16, integrator=integrator)
    assert_agrees(result)
    monkeypatch.setattr(secondary, "smooth_face_set", lambda scene: None)
    without = pbdr.validate.derivative_estimate(scene, p, 128, 16, integrator)
    assert not pbdr.validate.compare(without, result.fd).passed


def test_a_vertex_on_a_face_sees_that_face_edge_on() -> None:
    """p on a smooth-shaded face (up to rounding either way): the face's own edges bound
    p's horizon and are candidates (not with flat shading); an edge between two faces that both hold p is not; a point
    clearly in front of one face and behind the other sees a silhouette, one behind both not."""
    from pbdr.integrators.boundary.edge_sampling import is_candidate
    up, tilted = mi.Vector3f(0, 0, 1), mi.Vector3f(0, 0.6, 0.8)
    smooth = mi.Vector3f(0, 0.1, 0.995)         # p's shading normal, not its face's
    a = mi.Point3f(1, 0, 0)
    no = mi.Bool(False)
    for dz in (-1e-7, 0.0, 1e-7):      # p on the plane z = 0, rounded below, on or above it
        p = mi.Point3f(0.3, -0.2, dz)
        assert bool(is_candidate(p, smooth, a, up, tilted, no, no)[0])
        assert not bool(is_candidate(p, up, a, up, tilted, no, no)[0])      # flat shading: no light there
        assert not bool(is_candidate(p, smooth, a, up, up, no, no)[0])
    assert bool(is_candidate(mi.Point3f(0, -1, 0.1), up, a, up, tilted, no, no)[0])
    assert not bool(is_candidate(mi.Point3f(0, 1, 0.5), up, a, up, tilted, no, no)[0])     # behind both


def test_smooth_meshes_are_no_noisier_than_flat_ones() -> None:
    """The secondary term on the smooth pair has the flat pair's noise: a vertex
    near its own face's edge once traced its side rays from the offset origins
    across the face's plane into the neighbour (fireflies, 6x the spread)."""
    spread = {}
    for normals in ("false", "true"):
        scene = pbdr.load_scene(scene_path("edge/smooth_pair.xml"), {"face_normals": normals})
        p = pbdr.Perturbation.of(pbdr.scene_params(scene), "left.vertex_positions", (1, 0, 0))
        integrator = mi.load_dict({"type": "pbdr_edge", "max_depth": 3, "interior": False, "primary": False})
        totals = [pbdr.derivative(scene, p, 64, seed=100 + s, integrator=integrator).sum() for s in range(12)]
        spread[normals] = np.std(totals, ddof=1)
    assert spread["false"] < 2 * spread["true"], spread


def test_a_share_of_the_vertices_estimates_the_whole_terminator_term(monkeypatch) -> None:
    """``terminator_fraction``: the terminator term (edges switched off) drawn at
    a quarter of the vertices, each weighted 4x, has the mean of the term drawn
    at all of them; the term is far from zero, so a missing 1/q would show."""
    import pbdr.integrators.boundary.secondary_edges as secondary
    from pbdr.geometry.edges import scene_edges
    no_edges = scene_edges(mi.load_dict({"type": "scene"}))
    monkeypatch.setattr(secondary, "scene_edges", lambda scene: no_edges)
    scene = pbdr.load_scene(scene_path("edge/smooth_pair.xml"))
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "left.vertex_positions", (1, 0, 0))

    def terminators(fraction: float, first_seed: int) -> "pbdr.Estimate":
        integrator = mi.load_dict({"type": "pbdr_edge", "max_depth": 3, "interior": False, "primary": False,
                                   "terminator_fraction": fraction})
        return pbdr.derivative_estimate(scene, p, 128, 16, integrator, first_seed=first_seed)
    whole, share = terminators(1.0, 0), terminators(0.25, 100)
    assert abs(whole.total) > 8 * whole.total_se
    report = pbdr.compare(share, whole)
    assert report.passed, report.summary()
