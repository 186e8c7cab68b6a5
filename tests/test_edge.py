"""pbdr_edge: edge tables, primary and secondary edge terms against finite differences.

Tolerances come from the measured standard errors (pbdr.check); nothing here
hard-codes an expected derivative. FD checks of boundary terms need small
eps and many samples, so scenes are 32x32.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import drjit as dr
import mitsuba as mi
import numpy as np
import pytest

import pbdr
from pbdr.geometry.edges import build_topology, mesh_topology, scene_edges, silhouette_mask

from conftest import assert_agrees, scene_path


def edge_integrator(max_depth: int, **kwargs) -> mi.Integrator:
    return mi.load_dict({"type": "pbdr_edge", "max_depth": max_depth, **kwargs})


# ---- edge tables ----

def test_cube_edges_are_welded_by_position() -> None:
    mesh = mi.load_dict({"type": "cube"})
    assert mesh.vertex_count() == 24          # split per face: indices alone would find no edge twice
    topo = mesh_topology(mesh)
    assert len(topo) == 12
    assert not topo.boundary.any()
    assert topo.crease.all()                  # face normals: shading jumps at every edge


@pytest.mark.parametrize("mesh", [{"type": "cube"}, {"type": "obj", "filename": "edge/icosphere.obj"}])
def test_edge_points_on_their_faces(mesh: dict) -> None:
    """An edge point, given by its faces' indices and the ends' corners in
    them (Mitsuba's prim_uv), is the same point on both faces: the cube's
    faces list split copies of the ends, in either order."""
    from pbdr.geometry.edges import edge_barycentrics
    if "filename" in mesh:
        mesh = dict(mesh, filename=scene_path(mesh["filename"]))
    scene = mi.load_dict({"type": "scene", "mesh": mesh})
    edges = scene_edges(scene)
    s = mi.Float(np.random.default_rng(1).random(len(edges)))
    for face, prim in ((0, edges.prim0), (1, edges.prim1)):
        pi = dr.zeros(mi.PreliminaryIntersection3f, len(edges))
        pi.t, pi.valid, pi.prim_index, pi.shape_index = mi.Float(1), mi.Bool(True), prim, edges.shape_index
        pi.prim_uv = edge_barycentrics(edges.corners, face, s)
        pi.shape = dr.gather(mi.ShapePtr, scene.shapes_dr(), edges.shape_index)
        si = pi.compute_surface_interaction(dr.zeros(mi.Ray3f, len(edges)))
        assert np.abs(np.array(si.p - dr.lerp(edges.p0, edges.p1, s))).max() < 1e-6
    assert (np.array(edges.prim0) != np.array(edges.prim1)).all()


def test_open_quad_has_four_boundary_edges_and_no_flat_diagonal() -> None:
    quad = mi.load_dict({"type": "obj", "filename": scene_path("edge/quad.obj")})
    topo = mesh_topology(quad)
    assert len(topo) == 4 and topo.boundary.all()


def test_a_boundary_edge_two_static_meshes_share_counts_once() -> None:
    """A room built from rectangles: the floor and the wall meet along one
    edge, each mesh's boundary. Both counted, the jump there is counted
    twice (each side ray sees the other mesh beyond its edge); the table
    keeps one. A moving mesh's edges and edges that do not coincide stay."""
    scene = pbdr.load_scene(scene_path("edge/corner.xml"))
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "box.vertex_positions", (1, 0, 0))
    with p.attached(pbdr.scene_params(scene)):
        edges = scene_edges(scene)
        e = edges.numpy()
        static = np.arange(len(edges)) >= edges.moving_count
        assert edges.moving_count == 12                          # the box's 12 edges, all kept
        assert static.sum() == 7                                 # floor 4 + wall 4 - the shared one
        on_corner = static & np.all(np.isclose(e["p0"][:, [0, 1]], [1, 0], atol=1e-5), axis=1) & \
            np.all(np.isclose(e["p1"][:, [0, 1]], [1, 0], atol=1e-5), axis=1)
        assert on_corner.sum() == 1


def test_a_shared_edge_gives_the_jump_once(tmp_path) -> None:
    """Held in solid angle from a moving point, the floor-wall corner is a
    discontinuity (the point sliding along a fixed ray crosses from wall to
    floor). The same room with the floor running on under the wall (one
    boundary edge there, the wall's) gives the same image and the same
    secondary term; with the shared edge counted twice, the term came out
    1.6x (-67 against -110, 8 seeds)."""
    shared = pbdr.load_scene(scene_path("edge/corner.xml"))
    xml = open(scene_path("edge/corner.xml")).read()
    floor = '<transform name="to_world"><rotate x="1" angle="-90"/></transform>'
    assert floor in xml
    path = tmp_path / "floor_under_wall.xml"
    path.write_text(xml.replace(floor, '<transform name="to_world"><rotate x="1" angle="-90"/>'
                                       '<scale x="1.5"/><translate x="0.5"/></transform>'))
    single = pbdr.load_scene(str(path))
    estimates = []
    for scene, first_seed in ((shared, 0), (single, 100)):
        p = pbdr.Perturbation.of(pbdr.scene_params(scene), "box.vertex_positions", (1, 0, 0))
        estimates.append(pbdr.derivative_estimate(
            scene, p, 64, 32, edge_integrator(2, interior=False, primary=False, first_bounce="direction"),
            first_seed=first_seed))
    assert abs(estimates[1].total) > 10 * estimates[1].total_se       # the corner's term is there
    assert_agrees(pbdr.CheckResult(pbdr.compare(*estimates), *estimates))


def test_edges_follow_vertex_positions() -> None:
    positions = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], dtype=float)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    assert len(build_topology(positions, faces)) == 4
    positions[3, 2] = 0.5                      # fold the quad: its diagonal becomes an edge
    topo = build_topology(positions, faces)
    assert len(topo) == 5 and topo.crease.sum() == 1


def test_every_folded_interior_edge_is_a_crease() -> None:
    # Also under smooth normals: a face's own plane hides part of the
    # shading normal's hemisphere, differently on the two faces.
    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    topo = build_topology(positions, faces)
    assert len(topo) == 6 and topo.crease.all() and not topo.boundary.any()
    p = positions
    sil = silhouette_mask(p[topo.v0], *_normals(p, topo), topo.boundary, np.array([0.3, 0.3, 5.0]))
    assert 0 < sil.sum() < 6


def _normals(p: np.ndarray, topo) -> tuple[np.ndarray, np.ndarray]:
    def n(f: np.ndarray) -> np.ndarray:
        v = np.cross(p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]])
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    return n(topo.face0), n(topo.face1)


def test_scene_edges_are_attached_to_parameters() -> None:
    import drjit as dr
    scene = pbdr.load_scene(scene_path("edge/primary.xml"))
    params = pbdr.scene_params(scene)
    p = pbdr.Perturbation.of(params, "quad.vertex_positions", (0, 1, 0))
    theta = mi.Float(0.0)
    dr.enable_grad(theta)
    try:
        p.apply(params, theta)
        edges = scene_edges(scene)
        assert dr.grad_enabled(edges.p0)
        # The moving quad's edges come first, whatever the shapes' order.
        quad = next(i for i, s in enumerate(scene.shapes()) if s.id() == "quad")
        assert edges.moving_count == 4 and np.all(edges.shape_host[:4] == quad)
        assert np.all(edges.shape_host[4:] != quad) and np.all(np.array(edges.shape_index) == edges.shape_host)
    finally:
        p.restore(params)


def test_rotation_perturbation_turns_about_the_centre() -> None:
    import drjit as dr
    scene = pbdr.load_scene(scene_path("shadow.xml"))
    params = pbdr.scene_params(scene)
    p = pbdr.Perturbation.of(params, "cube.vertex_positions", rotate=(0, 2, 0))
    v0 = np.array(p.value_at(0.0)).reshape(-1, 3)
    v1 = np.array(p.value_at(0.4)).reshape(-1, 3)
    c = np.array(p.centre)
    assert np.allclose(v0, np.array(params["cube.vertex_positions"]).reshape(-1, 3), atol=1e-6)
    assert np.allclose(np.linalg.norm(v1 - c, axis=1), np.linalg.norm(v0 - c, axis=1), atol=1e-5)
    assert np.allclose(v1[:, 1], v0[:, 1], atol=1e-6)                  # about the y axis
    theta = mi.Float(0.0)
    dr.enable_grad(theta)
    out = p.value_at(theta)
    dr.forward_from(theta)
    velocity = np.array(dr.grad(out)).reshape(-1, 3)
    assert np.allclose(velocity, np.cross([0, 1, 0], v0 - c), atol=1e-5)  # ω × (v - c), θ in radians
    with pytest.raises(pbdr.PbdrError):
        pbdr.Perturbation.of(params, "cube.bsdf.reflectance.value", rotate=(0, 1, 0))
    with pytest.raises(pbdr.PbdrError):
        pbdr.Perturbation.of(params, "cube.vertex_positions", (1, 0, 0), (0, 1, 0))


# ---- primary edges (max_depth 1: the derivative is all boundary term) ----

@pytest.mark.parametrize("key,direction,rfilter", [
    ("cube.vertex_positions", (1, 0, 0), "box"),
    ("quad.vertex_positions", (0, 1, 0), "box"),
    ("cube.vertex_positions", (0, 1, 0), "gaussian"),
])
def test_primary_edges_agree_with_fd(key: str, direction: tuple, rfilter: str) -> None:
    scene = pbdr.load_scene(scene_path("edge/primary.xml"), {"rfilter": rfilter})
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), key, direction)
    result = pbdr.check(scene, p, eps=0.002, spp=32, fd_spp=256, seeds=8,
                        integrator=edge_integrator(1))
    assert abs(result.fd.total) > 4 * result.fd.total_se     # the test can tell zero from not
    assert_agrees(result)


@pytest.mark.parametrize("sample_border", ["true", "false"])
def test_primary_edges_across_the_film_border_agree_with_fd(sample_border: str) -> None:
    """Edges that cross the film's border, under a Gaussian filter: a pixel
    there is Σ k L / Σ k over the samples the film takes, beyond the border
    with ``sample_border`` and not without (Mitsuba's default). Masking side
    rays that left the film dropped the edges within the filter's reach
    outside it (the total was 26% and 17% short, block chi2 129 and 59)."""
    scene = pbdr.load_scene(scene_path("edge/primary.xml"),
                            {"rfilter": "gaussian", "fov": "15", "sample_border": sample_border})
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "quad.vertex_positions", (0, 1, 0))
    grad = pbdr.derivative_estimate(scene, p, 32, seeds=8, integrator=edge_integrator(1))
    # One thread: a Gaussian splats each sample into 25 pixels, and threads
    # adding into the same pixel in any order leave 1e-5 of noise in images
    # that should be equal. Across the emitters that fill this view, FD
    # amplified it into block means of ±0.01 where the derivative is exactly 0.
    threads = dr.thread_count()
    dr.set_thread_count(1)
    try:
        fd = pbdr.finite_differences(scene, p, 0.01, 4096, seeds=8)
    finally:
        dr.set_thread_count(threads)
    assert abs(fd.total) > 4 * fd.total_se
    assert_agrees(pbdr.CheckResult(pbdr.compare(grad, fd), grad, fd))


def test_interior_alone_misses_the_silhouette() -> None:
    """Without the boundary term the same check must fail (the test has power)."""
    scene = pbdr.load_scene(scene_path("edge/primary.xml"))
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "cube.vertex_positions", (1, 0, 0))
    result = pbdr.check(scene, p, eps=0.002, spp=16, fd_spp=256, seeds=4,
                        integrator=edge_integrator(1, primary=False, secondary=False))
    assert not result.report.passed


def test_reverse_mode_matches_forward_mode() -> None:
    scene = pbdr.load_scene(scene_path("shadow.xml"))
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "cube.vertex_positions", (1, 0, 0))
    integrator = edge_integrator(3)
    assert_reverse_matches_forward(scene, p, integrator, rng_seed=7, seed=5)


def assert_reverse_matches_forward(scene: mi.Scene, p: "pbdr.Perturbation", integrator: mi.Integrator,
                                   rng_seed: int, seed: int) -> None:
    """Reverse mode's total against forward mode's image summed with random weights."""
    w = np.random.default_rng(rng_seed).random(pbdr.render(scene, 1, 0).shape).astype(np.float32)
    forward = float((pbdr.derivative(scene, p, 16, seed=seed, integrator=integrator) * w).sum())
    reverse = pbdr.total_derivative(scene, p, 16, seed=seed, integrator=integrator, weights=w)
    assert reverse == pytest.approx(forward, rel=1e-3, abs=1e-3)


# ---- secondary edges: shadows, indirect occlusion, moving lights, rotations ----

# (scene, XML defaults, key, translate, rotate, max_depth, spp)
GEOMETRY_CASES = {
    # silhouette + shadow of a cube resting on the floor (contact points)
    "shadow": ("shadow.xml", {}, "cube.vertex_positions", (1, 0, 0), None, 3, 64),
    # the box of a Cornell box: indirect occlusion, colour bleeding, a glossy sphere
    "cbox": ("cbox.xml", {}, "box.vertex_positions", (1, 0, 0), None, 4, 64),
    # the same box in rough plastic, its bottom face on the floor (contact, glossy reflections)
    "resting-glossy-box": ("edge/resting_box.xml", {}, "box.vertex_positions", (1, 0, 0), None, 4, 64),
    # a glossy box stacked on another, and a smooth 1,280-face sphere mesh resting on the floor
    "stacked-boxes": ("edge/contact.xml", {"res": "32"}, "top.vertex_positions", (1, 0, 0), None, 3, 64),
    "resting-sphere": ("edge/contact.xml", {"res": "32"}, "ball.vertex_positions", (1, 0, 0), None, 3, 64),
    # the same box beside a static 480-edge mesh ball: wall points draw only the box's edges
    "cbox-mesh-ball": ("edge/cbox_mesh_ball.xml", {}, "box.vertex_positions", (1, 0, 0), None, 4, 64),
    # 480 crease edges; silhouettes of edge-on sliver faces
    "icosphere": ("edge/icosphere.xml", {}, "sphere.vertex_positions", (1, 0, 0), None, 3, 128),
    # interpolated normals: the shading terminator inside triangles seen from the camera,
    # the light each face's plane cuts off (smooth edges are creases); a black floor
    # (the lit floor is in smooth-pair)
    "smooth-icosphere": ("edge/icosphere.xml", {"face_normals": "false", "floor_albedo": "0"},
                         "sphere.vertex_positions", (1, 0, 0), None, 3, 128),
    # two smooth spheres that light each other: terminators seen from the floor and from
    # the other sphere's points, moving (tests/test_secondary_terminators.py)
    "smooth-pair": ("edge/smooth_pair.xml", {}, "left.vertex_positions", (1, 0, 0), None, 3, 64),
    # a rotating object (vertex positions about the vertical axis through its centre)
    "rotation": ("shadow.xml", {}, "cube.vertex_positions", None, (0, 1, 0), 3, 64),
    # a moving area light (to_world): the shadow moves, the light's own edges sweep the floor
    "moving-light": ("shadow.xml", {}, "light.to_world", (1, 0, 0), None, 3, 64),
    # a tilting area light (to_world rotation)
    "tilting-light": ("shadow.xml", {}, "light.to_world", None, (1, 0, 0), 3, 64),
}


def _case(name: str) -> tuple:
    path, defines, key, translate, rotate, depth, spp = GEOMETRY_CASES[name]
    scene = pbdr.load_scene(scene_path(path), defines)
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), key, translate, rotate)
    return scene, p, depth, spp


@pytest.mark.parametrize("name", list(GEOMETRY_CASES))
def test_geometry_derivatives_agree_with_fd(name: str) -> None:
    scene, p, depth, spp = _case(name)
    result = pbdr.check(scene, p, eps=0.002, spp=spp, fd_spp=256, seeds=8,
                        integrator=edge_integrator(depth))
    assert _fd_signal(result) > 16       # FD blocks far from zero: the test can tell zero from not
    assert_agrees(result)


def _fd_signal(result: "pbdr.CheckResult") -> float:
    """Largest squared z-score against zero of a large FD 8x8 block sum (a moving
    light redistributes light: its total derivative may be ~0, its blocks are not)."""
    blocks = result.fd.blocks()
    mean, var = blocks.mean(axis=0), blocks.var(axis=0, ddof=1) / len(blocks)
    large = np.abs(mean) >= 0.1 * np.abs(mean).max()     # not a float-noise block
    return float(np.max(mean[large] ** 2 / np.maximum(var[large], 1e-30)))


def test_a_box_resting_on_another_agrees_along_the_contact() -> None:
    """The bottom edges of a box resting on another lie in the lower box's
    top face, and an edge point can round to just below it. A side of the
    primary term pinned at the edge point then started its path inside that
    face: the lit face's side came out black along the contact, 3x FD
    there (z -4.3, block chi2 7.4 with the pinned point on the edge). Direct
    light only, where nothing else is heavy-tailed at the contact."""
    scene = pbdr.load_scene(scene_path("edge/contact.xml"), {"res": "64", "max_depth": "2"})
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "top.vertex_positions", (1, 0, 0))
    assert_agrees(pbdr.check(scene, p, eps=0.002, spp=32, fd_spp=256, seeds=16, integrator=edge_integrator(2)))


def test_first_bounce_in_solid_angle_tames_the_contact() -> None:
    """Held fixed in space, the vertex after a camera vertex on a box resting
    on another makes the interior term heavy-tailed (its Jacobian's
    derivative grows as 1/height at the contact); held in solid angle from
    the moving camera vertex (``first_bounce`` ``auto``, the default, on
    flat-shaded surfaces) it is not, and the secondary term's velocities
    follow. Both agree with FD; the block noise falls from 191% to 11%
    (8 seeds)."""
    scene, p, depth, spp = _case("stacked-boxes")
    noise = {}
    for form in ("area", "auto"):
        result = pbdr.check(scene, p, eps=0.002, spp=spp, fd_spp=256, seeds=8,
                            integrator=edge_integrator(depth, first_bounce=form))
        assert_agrees(result)
        noise[form] = result.report.block_noise
    assert noise["auto"] < 0.25 * noise["area"], noise


@pytest.mark.parametrize("name,chain", [("resting-glossy-box", 2), ("cbox", 1), ("stacked-boxes", 2)])
def test_vertices_after_moving_ones_held_in_solid_angle(name: str, chain: int) -> None:
    """``solid_angle_after`` ``moving`` (the default): every vertex on a
    moving mesh holds the next one in solid angle, not only the camera
    vertex, so that a contact seen through a bounce (the Cornell box's box
    resting on the floor, seen in a wall's reflection) is not heavy-tailed;
    a chain of two such vertices in a row recomputes both at replay. Agrees
    with FD, and reverse mode gives forward mode's total (the replay's
    chain state)."""
    scene, p, depth, spp = _case(name)
    integrator = edge_integrator(depth, solid_angle_chain=chain)
    assert integrator.solid_angle_after == "moving"
    assert_agrees(pbdr.check(scene, p, eps=0.002, spp=spp, fd_spp=256, seeds=8, integrator=integrator))
    assert_reverse_matches_forward(scene, p, integrator, rng_seed=3, seed=9)


@pytest.mark.parametrize("name", ["stacked-boxes", "smooth-pair", "moving-light"])
def test_first_bounce_in_solid_angle_everywhere_agrees(name: str) -> None:
    """``first_bounce`` ``direction`` on smooth meshes too (the terminator
    term's arcs seen along fixed directions from a moving point) and with a
    moving light (the emitter point reached in a fixed direction slides
    over it); reverse mode gives forward mode's total."""
    scene, p, depth, spp = _case(name)
    integrator = edge_integrator(depth, first_bounce="direction")
    assert_agrees(pbdr.check(scene, p, eps=0.002, spp=spp, fd_spp=256, seeds=8, integrator=integrator))
    assert_reverse_matches_forward(scene, p, integrator, rng_seed=7, seed=5)


@pytest.mark.parametrize("name", ["shadow", "moving-light"])
def test_without_secondary_edges_the_check_fails(name: str) -> None:
    """Interior + primary alone miss shadows and the moving light's edges (the test has power)."""
    scene, p, depth, spp = _case(name)
    result = pbdr.check(scene, p, eps=0.002, spp=spp, fd_spp=256, seeds=8,
                        integrator=edge_integrator(depth, secondary=False))
    assert not result.report.passed


def test_without_terminators_the_smooth_check_fails(monkeypatch) -> None:
    """The smooth icosphere's derivative needs the terminator term (the test has power)."""
    import pbdr.integrators.boundary.primary_edges as primary
    from pbdr.integrators.boundary.primary_terminators import TerminatorTable

    class NoTerminators(TerminatorTable):
        def __init__(self, scene, cam, margin, moving) -> None:
            self.length, self.skipped = np.zeros(0), 0
    monkeypatch.setattr(primary, "TerminatorTable", NoTerminators)
    scene, p, depth, spp = _case("smooth-icosphere")
    result = pbdr.check(scene, p, eps=0.002, spp=spp, fd_spp=256, seeds=8, integrator=edge_integrator(depth))
    assert not result.report.passed


def test_terminator_points_lie_on_the_arc_and_move_with_it() -> None:
    """Every arc point is found on its face, the chord-to-arc weights add up to the
    arc's length, and the AD normal speed matches the arc's displacement under a move."""
    from pbdr.geometry.camera import Camera
    from pbdr.integrators.boundary.primary_terminators import TerminatorTable
    scene = pbdr.load_scene(scene_path("edge/icosphere.xml"), {"face_normals": "false"})
    params = pbdr.scene_params(scene)
    v0 = mi.Float(params["sphere.vertex_positions"])
    shift = mi.Float(np.tile([0.3, 1.0, 0.0], dr.width(v0) // 3))
    cam = Camera.of(scene.sensors()[0])
    K = 257

    def arcs(theta: float) -> tuple:
        th = mi.Float(theta)
        dr.enable_grad(th)
        params["sphere.vertex_positions"] = v0 + th * shift
        params.update()
        table = TerminatorTable(scene, cam, 0.0, np.array([s.id() == "sphere" for s in scene.shapes()]))
        C = len(table)
        idx = mi.UInt32(np.repeat(np.arange(C), K))
        pts = table.points(cam, idx, mi.Float(np.tile((np.arange(K) + 0.5) / K, C)), mi.Bool(True), 1e-3)
        dr.forward_from(th)
        x = np.array(dr.detach(pts.x)).reshape(2, C, K)
        speed = (np.array(pts.n) * np.array(dr.grad(pts.x))).sum(axis=0).reshape(C, K)
        return table, x, np.array(pts.n).reshape(2, C, K), speed, np.array(pts.weight).reshape(C, K), \
            np.array(pts.valid).reshape(C, K)
    try:
        table, x, n, speed, weight, valid = arcs(0.0)
        assert len(table) > 10 and valid.all()
        arc_length = np.linalg.norm(np.diff(x, axis=2), axis=0).sum(axis=1) * K / (K - 1)
        assert np.allclose(weight.mean(axis=1) * table.length, arc_length, rtol=1e-3)
        eps = 1e-3
        _, xp, _, _, _, _ = arcs(eps)
        _, xm, _, _, _, _ = arcs(-eps)
        # The arcs are nearly straight: the normal offset of the moved arc is the same at any of its points.
        fd = ((n * (xp - x)).sum(axis=0) - (n * (xm - x)).sum(axis=0)) / (2 * eps)
        assert np.abs(speed).max() > 1
        assert np.allclose(speed, fd, rtol=2e-2, atol=2e-2 * np.abs(speed).max())
    finally:
        params["sphere.vertex_positions"] = v0
        params.update()


def _limb_crop(tmp_path, face_normals: str) -> mi.Scene:
    """The icosphere at 256x256, cropped to 16x16 pixels around its upper-left
    limb, where a front face next to the silhouette is seen within 10⁻³ rad
    of edge-on (and, shaded smooth, a terminator arc runs along it)."""
    xml = open(scene_path("edge/icosphere.xml")).read()
    xml = xml.replace('"icosphere.obj"', f'"{scene_path("edge/icosphere.obj")}"')
    xml = xml.replace('<boolean name="sample_border" value="true"/>',
                      '<boolean name="sample_border" value="true"/>'
                      '<integer name="crop_offset_x" value="92"/><integer name="crop_offset_y" value="92"/>'
                      '<integer name="crop_width" value="16"/><integer name="crop_height" value="16"/>')
    path = tmp_path / "limb.xml"
    path.write_text(xml)
    return pbdr.load_scene(str(path), {"res": "256", "face_normals": face_normals})


@pytest.mark.parametrize("coverage", ["mesh", "lit"])
def test_primary_term_of_a_grazing_limb_matches_coverage_fd(tmp_path, coverage: str) -> None:
    """With the radiance replaced by an indicator (the sphere is hit; or hit
    and lit, n_s·wi > 0, on the smooth sphere), the primary term is the
    derivative of covered area, which FD measures precisely. Rays aimed
    10⁻³ of a face's width inside the grazing limb face missed it 14% of
    the time (float rounding): that silhouette edge lost 13% of its term,
    50 standard errors here, and on the smooth sphere the black rim's edge
    and arc no longer cancelled (a block 6% off FD at full resolution)."""
    from pbdr.integrators.edge import EdgeIntegrator
    scene = _limb_crop(tmp_path, "true" if coverage == "mesh" else "false")
    sphere = mi.ShapePtr([s for s in scene.shapes() if s.id() == "sphere"][0])

    def indicator(si: mi.SurfaceInteraction3f) -> mi.Spectrum:
        hit = si.is_valid() & (si.shape == sphere)
        if coverage == "lit":
            hit &= mi.Frame3f.cos_theta(si.wi) > 0
        return mi.Spectrum(dr.select(hit, 1.0, 0.0))

    class Coverage(mi.SamplingIntegrator):
        def sample(self, scene, sampler, ray, medium=None, active=True):
            return indicator(scene.ray_intersect(mi.Ray3f(ray))), True, []

    class CoverageEdges(EdgeIntegrator):
        def sample(self, mode, scene, sampler, ray, δL, state_in, active, first=None, **kwargs):
            si = scene.ray_intersect(ray) if first is None else first.compute_surface_interaction(ray)
            return indicator(si), mi.Bool(True), [], None

    props = mi.Properties()
    props["interior"], props["secondary"], props["spp_primary"] = False, False, 2048
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "sphere.vertex_positions", (1, 0, 0))
    grad = pbdr.derivative_estimate(scene, p, 4, seeds=8, integrator=CoverageEdges(props))
    fd = pbdr.finite_differences(scene, p, 1e-3, 16384, seeds=8, integrator=Coverage(mi.Properties()))
    g, f = grad.blocks(4)[..., 0], fd.blocks(4)[..., 0]
    var = g.var(axis=0, ddof=1) / len(g) + f.var(axis=0, ddof=1) / len(f)
    z2 = (g.mean(axis=0) - f.mean(axis=0)) ** 2 / np.maximum(var, 1e-12)
    assert np.abs(f.mean(axis=0)).max() ** 2 / var.max() > 100     # FD sees the limb: the test has power
    assert z2.mean() < 3, f"block chi2 {z2.mean():.2f}, worst z {np.sqrt(z2.max()):.1f}"


def test_terminator_side_points_lie_on_their_side() -> None:
    """The two side points of every arc point, evaluated as the primary term
    does (the pinned first hit, Mitsuba's shading frame), are dark
    (n_s·wi < 0) and lit (> 0). At a thousandth of a thin rim's width,
    float error in the arc's position put a quarter of one limb chord's
    dark-side points on the lit side, and the smooth icosphere's limb pixel
    came out at 60% of FD."""
    from pbdr.geometry.camera import Camera
    from pbdr.integrators.boundary.sides import pinned_hits
    from pbdr.integrators.boundary.primary_terminators import TerminatorTable
    scene, _, _, _ = _case("smooth-icosphere")
    cam = Camera.of(scene.sensors()[0])
    table = TerminatorTable(scene, cam, 0.0, np.array([s.id() == "sphere" for s in scene.shapes()]))
    C, K = len(table), 1024
    assert C > 10
    idx = mi.UInt32(np.repeat(np.arange(C), K))
    ξ = mi.Float(np.tile((np.arange(K) + 0.5) / K, C))
    pts = table.points(cam, idx, ξ, mi.Bool(True), 1e-3)
    valid = np.array(pts.valid)
    for side, sign in zip(pts.sides, (-1, 1)):
        ray, first = pinned_hits(scene, cam, side, side.p, mi.Bool(True), cam.ray_towards(side.p))
        si = first.compute_surface_interaction(ray)
        assert np.allclose(np.array(si.p), np.array(side.p), atol=1e-5)
        cos = np.array(mi.Frame3f.cos_theta(si.wi))
        wrong = valid & (np.sign(cos) != sign)
        assert wrong.mean() == 0, f"{wrong.sum()} of {valid.sum()} side points on the wrong side ({sign:+d})"


@pytest.mark.parametrize("name", ["moving-light", "rotation"])
def test_reverse_mode_matches_forward_mode_for_lights_and_rotations(name: str) -> None:
    scene, p, depth, _ = _case(name)
    integrator = edge_integrator(depth)
    assert_reverse_matches_forward(scene, p, integrator, rng_seed=3, seed=9)


def _secondary_only(scheme: str) -> mi.Integrator:
    return edge_integrator(3, interior=False, primary=False, edge_sampling=scheme)


def test_edge_importance_sampling_is_unbiased_and_beats_uniform() -> None:
    """The per-point importance sampler estimates the same secondary term as uniform
    edge sampling (same mean within noise) with far less variance at equal samples."""
    scene = pbdr.load_scene(scene_path("shadow.xml"))
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "cube.vertex_positions", (1, 0, 0))
    ours = pbdr.validate.derivative_estimate(scene, p, 32, 12, _secondary_only("importance"))
    uniform = pbdr.validate.derivative_estimate(scene, p, 32, 12, _secondary_only("uniform"),
                                                first_seed=2000)
    assert_agrees(pbdr.CheckResult(pbdr.compare(ours, uniform), ours, uniform))
    var_ours = ours.blocks().var(axis=0, ddof=1).sum()
    var_uniform = uniform.blocks().var(axis=0, ddof=1).sum()
    assert var_ours * 4 < var_uniform, (var_ours, var_uniform)


def test_edge_candidate_subsets_are_unbiased() -> None:
    """Weighing every 16th edge (from a random offset) at a shading point estimates the
    same secondary term as weighing all 488 edges of the icosphere."""
    scene = pbdr.load_scene(scene_path("edge/icosphere.xml"))
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "sphere.vertex_positions", (1, 0, 0))
    subset, every = (edge_integrator(3, interior=False, primary=False, edge_candidates=n) for n in (31, 0))
    ours = pbdr.validate.derivative_estimate(scene, p, 32, 12, subset)
    exact = pbdr.validate.derivative_estimate(scene, p, 32, 12, every, first_seed=2000)
    assert_agrees(pbdr.CheckResult(pbdr.compare(ours, exact), ours, exact))


@contextlib.contextmanager
def _cbox_with_moving_box(seed: int, n: int = 4096) -> Iterator[tuple]:
    """The Cornell box with its box attached to a parameter: (scene, edges,
    shapes, the box's shape index, six arrays of n uniforms)."""
    scene = pbdr.load_scene(scene_path("cbox.xml"))
    params = pbdr.scene_params(scene)
    p = pbdr.Perturbation.of(params, "box.vertex_positions", (1, 0, 0))
    theta = mi.Float(0.0)
    dr.enable_grad(theta)
    p.apply(params, theta)
    shapes = list(scene.shapes())
    box = next(i for i, s in enumerate(shapes) if s.id() == "box")
    rng = np.random.default_rng(seed)
    try:
        yield scene, scene_edges(scene), shapes, box, [mi.Float(rng.random(n).astype(np.float32)) for _ in range(6)]
    finally:
        p.restore(params)


@pytest.mark.parametrize("candidates", [0, 8])
def test_static_edges_are_drawn_only_from_moving_points(candidates: int) -> None:
    """A static edge seen from a static point adds nothing (n_h·ṁ = n_h·ṗ = 0):
    from the Cornell box's walls only the moving box's edges are drawn; from the
    box itself the walls' edges are too (all edges weighed, and a subset)."""
    from pbdr.integrators.boundary.edge_sampling import EdgeSampler, SamplingOptions
    with _cbox_with_moving_box(seed=1) as (scene, edges, shapes, box, u):
        sampler = EdgeSampler(scene, edges, SamplingOptions("importance", candidates))
        for index, shape in enumerate(shapes):
            if not shape.is_mesh() or shape.emitter() is not None:
                continue
            with dr.suspend_grad():
                ps = shape.sample_position(0.0, mi.Point2f(u[0], u[1]))
                x = ps.p + 1e-3 * ps.n
                smp = sampler.sample(x, ps.n, mi.Bool(True), *u[2:], mi.Bool(True),
                                     dr.full(mi.Bool, index == box, dr.width(x)))
            drawn = edges.shape_host[np.array(smp.index)[np.array(smp.active)]]
            assert len(drawn) > 0, shape.id()
            if index == box:
                assert np.any(drawn != box), "walls' edges are never drawn from the moving box"
            else:
                assert np.all(drawn == box), (shape.id(), np.unique(drawn))


def test_static_points_stride_over_moving_edges_only() -> None:
    """With as many candidates as moving edges (the box's 12 of the Cornell box's
    36), a wall point weighs all of them, as when every edge is weighed: the same
    numbers draw the same edge, point and density. A stride over all 36 edges
    would weigh every third edge and draw differently."""
    from pbdr.integrators.boundary.edge_sampling import EdgeSampler, SamplingOptions
    with _cbox_with_moving_box(seed=2) as (scene, edges, shapes, box, u):
        assert np.count_nonzero(edges.shape_host == box) == 12 and len(edges) > 24
        subset, every = (EdgeSampler(scene, edges, SamplingOptions("importance", m)) for m in (12, 0))
        back = next(s for s in shapes if s.id() == "back")
        with dr.suspend_grad():
            ps = back.sample_position(0.0, mi.Point2f(u[0], u[1]))
            x = ps.p + 1e-3 * ps.n
            a, b = (s.sample(x, ps.n, mi.Bool(True), *u[2:], mi.Bool(True), mi.Bool(False))
                    for s in (subset, every))
    active = np.array(a.active)
    assert active.sum() > len(active) // 4 and np.array_equal(active, np.array(b.active))
    assert np.array_equal(np.array(a.index)[active], np.array(b.index)[active])
    assert np.allclose(np.array(a.t)[active], np.array(b.t)[active], rtol=1e-5, atol=1e-6)
    assert np.allclose(np.array(a.inv_pdf)[active], np.array(b.inv_pdf)[active], rtol=1e-4)


@pytest.mark.parametrize("kind", ["pbdr_edge", "pbdr_reparam"])
def test_material_derivatives_need_no_boundary_term(kind: str) -> None:
    """With no geometry moving the boundary terms are zero, not an error: a
    reflectance derivative agrees with pbdr_interior's; reverse mode runs."""
    scene = pbdr.load_scene(scene_path("reparam/sdf_shadow.xml" if kind == "pbdr_reparam" else "shadow.xml"),
                            {"res": "16"})
    key = "floor.bsdf.reflectance.value"
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), key)
    integrator, interior = (pbdr.make_integrator(scene, t, None, True) for t in (kind, "pbdr_interior"))
    if kind == "pbdr_edge":      # the same paths: equal images
        a, b = (pbdr.derivative(scene, p, 8, seed=3, integrator=it) for it in (integrator, interior))
        assert np.abs(a).sum() > 0 and np.allclose(a, b)
    else:                        # its warps draw extra numbers: equal in expectation
        a, b = (pbdr.derivative_estimate(scene, p, 16, 4, it) for it in (integrator, interior))
        report = pbdr.compare(a, b)
        assert report.passed, report.summary()
    params = mi.traverse(scene)
    dr.enable_grad(params[key])
    params.update()
    dr.backward(dr.sum(mi.render(scene, params, integrator=integrator, spp=4, seed=1), axis=None))
    grad = np.array(dr.grad(params[key]))
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_side_rays_enter_small_faces_seen_nearly_edge_on() -> None:
    """The covered side of a silhouette edge of a fine mesh, seen from a
    shading point 1 away: folds of two faces 0.005 across, seen 0.3° off
    edge-on, in random orientations, the rays leaving an offset origin (as
    ``spawn_ray``'s). A ray aimed a thousandth of the way into such a face
    passes 1e-8 rad off the edge, below float rounding, and slipped past
    both faces on a 82k-face blob (a fifth of the jumps of its floor shadow
    lost, the shadow's derivative 27% short of FD); it must hit the face,
    and the open side's ray must miss the mesh."""
    from pbdr.integrators.boundary.secondary_edges import adjacent_faces, side_rays
    rng = np.random.default_rng(5)
    K, a, γ = 512, 0.005, np.radians(0.3)
    # A fold: edge along z through the origin, face 0 at γ off the line of
    # sight (the x axis, from p at x = -1) towards -y, face 1 behind it.
    fold = np.array([[0, 0, -a], [0, 0, a], [a * np.cos(γ), -a * np.sin(γ), 0],
                     [a * np.cos(3 * γ), a * np.sin(3 * γ), 0]])
    q = rng.normal(size=(K, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    R = np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
                  np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
                  np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], 1)
    T = rng.uniform(-30, 30, size=(K, 3))
    V = np.einsum("kij,vj->kvi", R, fold) + T[:, None]                          # K x 4 x 3
    p = np.einsum("kij,j->ki", R, [-1.0, 0, 0]) + T
    n_p = rng.normal(size=(K, 3))
    n_p /= np.linalg.norm(n_p, axis=1, keepdims=True)
    mesh = mi.Mesh("folds", 4 * K, 2 * K)
    params = mi.traverse(mesh)
    params["vertex_positions"] = mi.Float(V.astype(np.float32).ravel())
    params["faces"] = mi.UInt32((np.array([[0, 1, 2], [1, 0, 3]])[None] + 4 * np.arange(K)[:, None, None])
                                .astype(np.uint32).ravel())
    params.update()
    scene = mi.load_dict({"type": "scene", "mesh": mesh})
    P = lambda x: mi.Point3f(*(mi.Float(np.asarray(x[:, k], dtype=np.float32)) for k in range(3)))  # noqa: E731
    s_ = rng.uniform(0.05, 0.95, K)[:, None]
    pd, md = P(p), P(V[:, 0] + s_ * (V[:, 1] - V[:, 0]))
    v0, v1 = P(V[:, 0]), P(V[:, 1])
    n_h = dr.normalize(dr.cross(v0 - pd, v1 - pd))
    front = (dr.full(mi.Bool, True, K), dr.full(mi.Bool, False, K))      # face 0 seen from the front
    faces = adjacent_faces((P(V[:, [0, 1, 2]].mean(1)), P(V[:, [0, 1, 3]].mean(1))), front, n_h, pd, md, v1 - v0)
    assert np.array(faces[1][1]).all()
    covered = np.where(np.array(faces[1][2]) < 0, 0, 1)        # the lane of each sample's covered side
    origin = P(p + 1e-4 * (1 + np.abs(p).max(axis=1, keepdims=True)) * n_p)     # as spawn_ray offsets it
    rays = side_rays(lambda i, d: mi.Ray3f(dr.gather(mi.Point3f, origin, i), d), md - pd, dr.norm(md - pd), n_h,
                     pd, faces, mi.Bool(False))
    hit = np.array(scene.ray_intersect_preliminary(rays).is_valid()).reshape(K, 2)
    rows = np.arange(K)
    assert hit[rows, covered].all(), f"{(~hit[rows, covered]).sum()} of {K} covered-side rays missed the fold"
    assert not hit[rows, 1 - covered].any()


def test_fine_meshes_count_as_smooth_shaded() -> None:
    """Vertex normals 0.05° off the face normal (a mesh of a million faces
    has about that) make a mesh smooth-shaded; normals equal to the face's
    up to float rounding leave it flat. With a threshold of 2.6° an 82k-face
    blob counted as flat: its terminators were left out and its silhouette
    derivative came out at half of FD."""
    from pbdr.geometry.terminators import face_normals, smooth_faces
    rng = np.random.default_rng(2)
    positions = rng.normal(size=(3, 3))
    faces = np.array([[0, 1, 2]])
    n = face_normals(positions, faces)[0]
    flat = np.tile(n.astype(np.float32).astype(np.float64), (3, 1))
    assert not smooth_faces(positions, flat, faces)
    axis = np.cross(n, [1.0, 0, 0])
    axis /= np.linalg.norm(axis)
    θ = np.radians(0.05)
    tilted = flat.copy()
    tilted[0] = n * np.cos(θ) + np.cross(axis, n) * np.sin(θ)
    assert smooth_faces(positions, tilted, faces)


def test_silhouette_of_a_fine_mesh_over_itself_agrees_with_fd() -> None:
    """The 20k-face smooth blob's derivative against FD, pixel by pixel where
    FD is well away from zero: where the blob's contour
    passes over another of its own sheets, a traced side offset a fixed
    1e-3 px from the edge saw past the thin sliver next to it (one pixel at
    1.4x FD, z -7; the image total 40 too low)."""
    scene = pbdr.load_scene(scene_path("bench/blob.xml"), {"max_depth": "2"})
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "blob.vertex_positions", (1, 0, 0))
    fd = pbdr.finite_differences(scene, p, 0.005, 1024, seeds=8).samples.sum(-1)
    est = pbdr.derivative_estimate(scene, p, 128, 16, edge_integrator(2), first_seed=7000).samples.sum(-1)
    se = np.sqrt(est.var(0, ddof=1) / len(est) + fd.var(0, ddof=1) / len(fd))
    large = np.abs(fd.mean(0)) > 5
    z = (est.mean(0) - fd.mean(0))[large] / se[large]
    assert large.sum() > 100
    assert np.abs(z).max() < 5, f"max |z| {np.abs(z).max():.1f} over {large.sum()} pixels"
