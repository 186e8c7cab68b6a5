"""pbdr_pathspace: the path-space boundary term against pbdr_edge's secondary
term (the same integral, sampled from the other end) and against finite
differences.

Tolerances come from the measured standard errors (pbdr.check, pbdr.compare);
nothing here hard-codes an expected derivative. Scenes are 32x32.
"""
from __future__ import annotations

import mitsuba as mi
import numpy as np
import pytest

import pbdr
from pbdr.scene import smooth_shading_warning

from conftest import assert_agrees, scene_path


def pathspace(max_depth: int, **kwargs) -> mi.Integrator:
    return mi.load_dict({"type": "pbdr_pathspace", "max_depth": max_depth, **kwargs})


def _case(path: str, key: str, translate=None, rotate=None, defines=None) -> tuple:
    scene = pbdr.load_scene(scene_path(path), defines or {})
    return scene, pbdr.Perturbation.of(pbdr.scene_params(scene), key, translate, rotate)


def _signal(estimate: "pbdr.Estimate") -> float:
    """Largest squared z-score against zero of a large 8x8 block sum (as test_edge's
    FD signal: the test can tell zero from not)."""
    blocks = estimate.blocks()
    mean, var = blocks.mean(axis=0), blocks.var(axis=0, ddof=1) / len(blocks)
    large = np.abs(mean) >= 0.1 * np.abs(mean).max()
    return float(np.max(mean[large] ** 2 / np.maximum(var[large], 1e-30)))


def test_plugin_is_registered_with_its_terms_and_settings() -> None:
    integrator = pathspace(3, spp_pathspace=2, pathspace_directions="sphere")
    text = integrator.to_string()
    assert "primary=True" in text and "pathspace=True" in text and "pathspace_directions=sphere" in text
    assert "terminators=True" in text and "terminator_fraction=1.0" in text
    assert integrator.samples_terminators
    assert integrator.boundary_terms
    with pytest.raises(Exception, match="pathspace_directions"):
        pathspace(3, pathspace_directions="cone")
    with pytest.raises(Exception, match="pathspace_static"):
        pathspace(3, pathspace_static=-1.0)
    with pytest.raises(Exception, match="pathspace_walks"):
        pathspace(3, pathspace_walks=0)
    with pytest.raises(Exception, match="terminator_fraction"):
        pathspace(3, terminator_fraction=0.0)
    with pytest.raises(Exception, match="solid_angle_chain must be 1"):
        pathspace(3, solid_angle_chain=2)


# ---- the same integral as pbdr_edge's secondary term ----

@pytest.mark.parametrize("path,key,depth,spp,options", [
    ("shadow.xml", "cube.vertex_positions", 3, 256, {}),     # shadows: direct light, contact points
    ("cbox.xml", "box.vertex_positions", 4, 128, {}),        # indirect occlusion: camera walks of 1-2 bounces
    ("cbox.xml", "box.vertex_positions", 4, 128, {"pathspace_walks": 4}),   # four walks share the sides
    ("shadow.xml", "light.to_world", 3, 128, {}),            # a moving light's own edges: the camera strategy
])
def test_boundary_term_equals_the_secondary_edge_term(path: str, key: str, depth: int, spp: int,
                                                      options: dict, first_bounce: str = "area") -> None:
    """The path-space term alone and pbdr_edge's secondary term alone are
    unbiased estimates of one integral (the secondary boundary term, for the
    same ``first_bounce``: how the vertex after the camera vertex follows
    it; ``pbdr_pathspace`` holds no later vertex in solid angle, so neither
    does ``pbdr_edge`` here): their images agree within their measured
    noise, block by block."""
    scene, p = _case(path, key, (1, 0, 0))
    ours = pbdr.derivative_estimate(scene, p, spp, 8, pathspace(depth, interior=False, primary=False,
                                                                first_bounce=first_bounce,
                                                                solid_angle_after="camera", **options))
    theirs = pbdr.derivative_estimate(scene, p, spp, 8, mi.load_dict(
        {"type": "pbdr_edge", "max_depth": depth, "interior": False, "primary": False,
         "first_bounce": first_bounce, "solid_angle_after": "camera"}), first_seed=2000)
    assert _signal(theirs) > 16
    assert_agrees(pbdr.CheckResult(pbdr.compare(ours, theirs), ours, theirs))


@pytest.mark.parametrize("path,key,depth", [("shadow.xml", "cube.vertex_positions", 3),
                                             ("cbox.xml", "box.vertex_positions", 4)])
def test_boundary_terms_agree_with_the_first_bounce_in_solid_angle(path: str, key: str, depth: int) -> None:
    """The same with the vertex after the camera vertex held in solid angle
    in both (``first_bounce`` ``direction``): x_a, or the camera vertex one
    bounce before it, moves along its camera ray and carries the sides."""
    test_boundary_term_equals_the_secondary_edge_term(path, key, depth, 256, {}, first_bounce="direction")


@pytest.mark.parametrize("after", ["camera", "moving"])
def test_boundary_terms_agree_where_vertices_move_with_the_camera_vertex(after: str) -> None:
    """A box against a wall, ``first_bounce`` ``auto``: x_a one bounce behind
    a camera vertex on the box moves with it, and static edges (the wall's,
    the floor's) count behind it; with ``solid_angle_after`` ``moving`` any
    x_a on the box holds its sides in solid angle, and one behind it moves
    with it. The path-space term alone against pbdr_edge's secondary term
    alone. (Whether x_a moved was once tested for gradients under
    suspend_grad, which finds none: the static edges were dropped, and the
    term came out -38 against -69.)"""
    scene, p = _case("edge/contact.xml", "wallbox.vertex_positions", (1, 0, 0))
    options = {"interior": False, "primary": False, "first_bounce": "auto", "solid_angle_after": after}
    ours = pbdr.derivative_estimate(scene, p, 64, 8, pathspace(3, **options))
    # 16 seeds of the secondary term: its block variances from 8 are too
    # uncertain against the guided term's (block chi2 up to 3.2 at 8, 1.7 at 16)
    theirs = pbdr.derivative_estimate(scene, p, 64, 16, mi.load_dict(
        {"type": "pbdr_edge", "max_depth": 3, "spp_secondary": 64, **options}), first_seed=2000)
    assert _signal(theirs) > 16
    assert_agrees(pbdr.CheckResult(pbdr.compare(ours, theirs), ours, theirs))


def test_first_bounce_in_solid_angle_at_a_wall() -> None:
    """A box pushed against a wall, sliding along it: with ``first_bounce``
    ``auto`` the interior term stays bounded at the contact and the
    path-space term follows; both settings agree with FD, and ``auto``'s
    block noise is below a third of ``area``'s (27% against 135%)."""
    scene = pbdr.load_scene(scene_path("edge/contact.xml"), {"res": "32"})
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "wallbox.vertex_positions", (1, 0, 0))
    noise = {}
    for form in ("area", "auto"):
        result = pbdr.check(scene, p, eps=0.002, spp=64, fd_spp=256, seeds=8,
                            integrator=pathspace(3, first_bounce=form))
        assert_agrees(result)
        noise[form] = result.report.block_noise
    assert noise["auto"] < noise["area"] / 3, noise


@pytest.mark.parametrize("key", ["cube.vertex_positions", "light.to_world"])
def test_boundary_term_in_a_crop_window(tmp_path, key: str) -> None:
    """A film with a crop window: Mitsuba's sensor sees the window as its
    image (film positions and weights of ``sample_direction`` are the
    window's), for the sensor connections and for the camera strategy's
    density (the moving light's own edges). Subtracting the crop offset
    again put every sample off the film (the term was 0). 1024 segments per
    pixel: the light's edges seen from the cube come from rare large samples,
    and at 256 one of five seed sets had block chi2 17 (at 4096: 1.2)."""
    xml = open(scene_path("shadow.xml")).read().replace(
        '<boolean name="sample_border" value="true"/>',
        '<boolean name="sample_border" value="true"/><integer name="crop_offset_x" value="10"/>'
        '<integer name="crop_offset_y" value="14"/><integer name="crop_width" value="12"/>'
        '<integer name="crop_height" value="12"/>')
    path = tmp_path / "crop.xml"
    path.write_text(xml)
    scene = pbdr.load_scene(str(path))
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), key, (1, 0, 0))
    ours = pbdr.derivative_estimate(scene, p, 1024, 8, pathspace(3, interior=False, primary=False,
                                                                 first_bounce="area"))
    theirs = pbdr.derivative_estimate(scene, p, 1024, 8, mi.load_dict(
        {"type": "pbdr_edge", "max_depth": 3, "interior": False, "primary": False, "spp_secondary": 256,
         "first_bounce": "area"}),
        first_seed=2000)
    assert _signal(theirs) > 16
    assert_agrees(pbdr.CheckResult(pbdr.compare(ours, theirs), ours, theirs))


@pytest.mark.parametrize("options", [{"pathspace_directions": "sphere", "pathspace_guiding": 0},
                                     {"pathspace_static": 1.0, "pathspace_guiding": 0}, {"pathspace_guiding": 8}])
def test_sampling_options_estimate_the_same_term(options: dict) -> None:
    """Uniform directions instead of the plane pencil, static edges drawn as
    often as moving ones, and a guiding grid change the noise, not the
    expectation."""
    scene, p = _case("shadow.xml", "cube.vertex_positions", (1, 0, 0))
    base = pbdr.derivative_estimate(scene, p, 128, 8, pathspace(2, interior=False, primary=False,
                                                                pathspace_guiding=0))
    other = pbdr.derivative_estimate(scene, p, 128, 8, pathspace(2, interior=False, primary=False, **options),
                                     first_seed=2000)
    assert_agrees(pbdr.CheckResult(pbdr.compare(base, other), base, other))


def test_guiding_learns_from_the_terms_own_samples() -> None:
    """No pass of its own: the first call draws its first N segments per pixel
    uniformly and records them, the rest of that call and the later calls
    draw from the running grid and refine it; on the shadow scene (shadows
    of a cube on a floor: most of the sample cube is empty) the guided
    variance per gradient is lower at the same segment count."""
    from pbdr.integrators.boundary import pathspace_guiding
    pathspace_guiding.forget()
    scene, p = _case("shadow.xml", "cube.vertex_positions", (1, 0, 0))
    plain = pbdr.derivative_estimate(scene, p, 32, 8, pathspace(2, interior=False, primary=False,
                                                                 pathspace_guiding=0))
    guided = pbdr.derivative_estimate(scene, p, 32, 8, pathspace(2, interior=False, primary=False,
                                                                  pathspace_guiding=8), first_seed=2000)
    (run,) = pathspace_guiding._GRIDS.values()
    assert run.seen == pytest.approx(8 * 32)            # every segment of the 8 calls recorded, none extra
    assert np.count_nonzero(run.weights) > 0
    var = lambda e: float(e.samples.var(axis=0, ddof=1).sum())    # noqa: E731
    assert var(guided) < 0.7 * var(plain), (var(guided), var(plain))
    assert_agrees(pbdr.CheckResult(pbdr.compare(plain, guided), plain, guided))


def test_guide_grid_draws_from_its_density() -> None:
    """Cells are drawn with the grid's probabilities (a stratified u0 and the
    conditional cell within its slice), and pdf() is that density."""
    from pbdr.integrators.boundary.pathspace_guiding import GuideGrid
    rng = np.random.default_rng(3)
    weights = rng.random((4, 3, 2)) ** 4
    weights[1] = 0                                   # a slice the first pass never saw
    grid = GuideGrid(weights)
    n = 1 << 18
    u = [mi.Float(rng.random(n).astype(np.float32)) for _ in range(3)]
    strat = mi.Float(((np.arange(n) + rng.random(n)) / n).astype(np.float32))
    u0, u1, u2 = grid.draw(strat, *u)
    counts = np.zeros(24)
    np.add.at(counts, np.array(grid.cell(u0, u1, u2)), 1)
    expected = np.array(grid.density) / 24
    assert expected.min() > 0                        # defensive: every cell keeps some density
    assert np.allclose(counts / n, expected, atol=4 * np.sqrt(expected / n).max())
    g = np.array(grid.pdf(u0, u1, u2))
    assert np.allclose(g, np.array(grid.density)[np.array(grid.cell(u0, u1, u2))])


# ---- against finite differences ----

# (scene, XML defaults, key, translate, rotate, max_depth, spp, eps)
FD_CASES = {
    "shadow": ("shadow.xml", {}, "cube.vertex_positions", (1, 0, 0), None, 3, 64, 0.002),
    "rotation": ("shadow.xml", {}, "cube.vertex_positions", None, (0, 1, 0), 3, 64, 0.002),
    "moving-light": ("shadow.xml", {}, "light.to_world", (1, 0, 0), None, 3, 64, 0.002),
    "cbox": ("cbox.xml", {}, "box.vertex_positions", (1, 0, 0), None, 4, 64, 0.002),
    "icosphere": ("edge/icosphere.xml", {}, "sphere.vertex_positions", (1, 0, 0), None, 3, 128, 0.002),
    # pbdr bench's indirect_occluder: the occluder and the patch it shades are out of view
    "gap-room": ("bench/gap_room.xml", {"res": "32"}, "occluder.vertex_positions", (0, 0, 1), None, 5, 64, 0.005),
}


@pytest.mark.parametrize("name", list(FD_CASES))
def test_derivatives_agree_with_fd(name: str) -> None:
    path, defines, key, translate, rotate, depth, spp, eps = FD_CASES[name]
    scene, p = _case(path, key, translate, rotate, defines)
    result = pbdr.check(scene, p, eps=eps, spp=spp, fd_spp=256, seeds=8, integrator=pathspace(depth))
    assert _signal(result.fd) > 16
    assert_agrees(result)


# ---- smooth-shaded meshes: terminator arcs seen from shading points ----

# (scene, XML defaults, key, max_depth, spp, FD spp, whether the terminator term is non-zero)
SMOOTH_CASES = {
    # two smooth spheres that light each other and the floor
    "smooth-pair": ("edge/smooth_pair.xml", {}, "left.vertex_positions", 3, 256, 4096, True),
    # the icosphere with interpolated normals over the lit floor
    "smooth-icosphere": ("edge/icosphere.xml", {"face_normals": "false"}, "sphere.vertex_positions", 3, 128, 4096,
                         True),
    # the 1,280-face blob over a floor; at max_depth 2 the side paths see emission only, so
    # arcs seen from the floor add nothing (those seen from the camera are the primary term's)
    "smooth-blob": ("bench/blob.xml", {"mesh": "blob_1k.ply", "max_depth": "2", "res": "32"},
                    "blob.vertex_positions", 2, 64, 1024, False),
    "smooth-blob-depth-3": ("bench/blob.xml", {"mesh": "blob_1k.ply", "max_depth": "3", "res": "32"},
                            "blob.vertex_positions", 3, 128, 4096, True),
}


@pytest.mark.parametrize("name", list(SMOOTH_CASES))
def test_smooth_meshes_agree_with_fd(name: str) -> None:
    """With the terminator term (``vertex_terminators.py``) the derivative
    agrees with FD on smooth-shaded meshes; where the term is non-zero, the
    same comparison without it fails (the test has power)."""
    path, defines, key, depth, spp, fd_spp, needs_term = SMOOTH_CASES[name]
    scene, p = _case(path, key, (1, 0, 0), None, defines)
    assert smooth_shading_warning(scene, [key], pathspace(depth)) is None
    result = pbdr.check(scene, p, eps=0.002, spp=spp, fd_spp=fd_spp, seeds=8, integrator=pathspace(depth))
    assert _signal(result.fd) > 16
    assert_agrees(result)
    if needs_term:
        without = pbdr.derivative_estimate(scene, p, spp, 8, pathspace(depth, terminators=False))
        assert not pbdr.compare(without, result.fd).passed


def test_without_the_pathspace_term_the_check_fails() -> None:
    """Interior + primary alone miss the shadow (the FD test has power)."""
    scene, p = _case("shadow.xml", "cube.vertex_positions", (1, 0, 0))
    result = pbdr.check(scene, p, eps=0.002, spp=64, fd_spp=256, seeds=8, integrator=pathspace(3, pathspace=False))
    assert not result.report.passed


@pytest.mark.parametrize("path,key,depth", [("shadow.xml", "cube.vertex_positions", 3),
                                            ("cbox.xml", "box.vertex_positions", 4)])
def test_reverse_mode_matches_forward_mode(path: str, key: str, depth: int) -> None:
    scene, p = _case(path, key, (1, 0, 0))
    from pbdr.integrators.boundary import pathspace_guiding
    integrator = pathspace(depth)
    w = np.random.default_rng(7).random((32, 32, 3)).astype(np.float32)
    # each mode's call is a first call (guided by default: the grid learned before would differ)
    pathspace_guiding.forget(integrator)
    forward = float((pbdr.derivative(scene, p, 16, seed=5, integrator=integrator) * w).sum())
    pathspace_guiding.forget(integrator)
    reverse = pbdr.total_derivative(scene, p, 16, seed=5, integrator=integrator, weights=w)
    assert reverse == pytest.approx(forward, rel=1e-3, abs=1e-3)
