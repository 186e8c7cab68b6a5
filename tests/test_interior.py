"""pbdr_interior: primal agrees with Mitsuba's path, derivatives with finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import pbdr
from pbdr.validate import Estimate
from conftest import assert_agrees, scene_path


def load(name: str, **defines):
    return pbdr.load_scene(scene_path(name), defines)


def test_primal_is_an_unbiased_estimate_of_path() -> None:
    """Independent seeds for the two integrators: means must agree within noise,
    per 8x8 block and in total."""
    scene = load("cbox.xml")
    ours = pbdr.make_integrator(scene, "pbdr_interior")
    ref = pbdr.make_integrator(scene, "path")
    a = Estimate(np.stack([pbdr.render(scene, 64, s, ours) for s in range(100, 108)]))
    b = Estimate(np.stack([pbdr.render(scene, 64, s, ref) for s in range(200, 208)]))
    report = pbdr.compare(a, b)
    assert_agrees(pbdr.CheckResult(report, a, b))
    assert report.rel_error < 0.01


def test_primal_is_deterministic_per_seed() -> None:
    """Common random numbers (FD, path replay) need the same image for the
    same seed, and independent seeds need different ones. (pbdr_interior draws
    from its own PCG32 stream per path, seeded from the sampler, so it no
    longer repeats Mitsuba's path sample for sample: see the unbiasedness test.)"""
    scene = load("shadow.xml")
    ours = pbdr.make_integrator(scene, "pbdr_interior")
    a, b, c = (pbdr.render(scene, 16, s, ours) for s in (3, 3, 4))
    np.testing.assert_array_equal(a, b)
    assert np.mean(np.abs(a - c)) > 1e-3 * np.mean(np.abs(a))


@pytest.mark.parametrize("scene_name, key, eps, spp", [
    ("cbox.xml", "red.reflectance.value", 0.02, 64),          # indirect light off a coloured wall
    ("cbox.xml", "boxmat.reflectance.value", 0.02, 64),       # a box under the area light
    ("cbox.xml", "light.emitter.radiance.value", 0.5, 64),    # area emitter radiance
    ("cbox.xml", "metal.alpha.value", 0.01, 256),              # rough conductor roughness
    ("shadow.xml", "floor.bsdf.reflectance.value", 0.02, 64),  # a floor with a shadow on it
    ("shadow.xml", "light.emitter.radiance.value", 0.5, 64),
])
def test_derivative_matches_finite_differences(scene_name: str, key: str, eps: float, spp: int) -> None:
    scene = load(scene_name)
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), key)
    result = pbdr.check(scene, p, eps=eps, spp=spp, fd_spp=4 * spp, seeds=8)
    assert_agrees(result)
    assert abs(result.fd.total) > 10 * result.report.fd_se, "FD must resolve the derivative"


def test_check_rejects_a_wrong_derivative() -> None:
    """The check can fail: a 3% bias, and a right total in the wrong place."""
    scene = load("cbox.xml")
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "red.reflectance.value")
    result = pbdr.check(scene, p, eps=0.02, spp=64, fd_spp=256, seeds=8)
    assert result.report.passed
    biased = Estimate(result.grad.samples * 1.03)
    assert not pbdr.compare(biased, result.fd).passed
    moved = Estimate(np.roll(result.grad.samples, 8, axis=2))    # same sum, shifted by a block
    report = pbdr.compare(moved, result.fd)
    assert abs(report.z) < 4 and not report.passed


def test_rounding_of_finite_differences_is_not_a_disagreement() -> None:
    """A block where the derivative is exactly 0 and FD is rounding alone
    (two renders of a static region that sum their samples in other orders)
    agrees, even where that rounding barely varies over the few seeds and
    their spread alone would call it significant; the same FD against a
    derivative that is off by more than rounding there does not."""
    rng = np.random.default_rng(3)
    k, spp, eps = 4, 256, 0.005
    image = np.ones((16, 16, 1))                                # radiance 1 everywhere
    sd = pbdr.validate.render_rounding(image, spp) / eps        # per pixel, both renders
    live = np.zeros((k, 16, 16, 1))
    live[:, :8] = 0.05 + rng.normal(0.0, 0.005, (k, 8, 16, 1))  # blocks with a derivative
    offset = rng.normal(0.0, 1.0, (16, 16, 1)) * sd             # rounding in the silent half,
    fd_samples = live + offset * (1 + 0.05 * rng.normal(0.0, 1.0, live.shape))  # nearly repeated
    fd = Estimate(fd_samples, rounding=np.sqrt(2.0) * sd)
    grad = Estimate(np.where(np.arange(16)[:, None, None] < 8, live[::-1], 0.0))
    assert pbdr.compare(grad, fd).passed
    assert not pbdr.compare(grad, Estimate(fd_samples)).passed   # without the rounding model
    grad.samples[:, 8:] += 10 * sd[8:]
    assert not pbdr.compare(grad, fd).passed


def test_geometry_without_boundary_term_disagrees() -> None:
    """Interior alone misses the silhouette term of a moving cube: check must say so."""
    scene = load("shadow.xml")
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "cube.vertex_positions", (1.0, 0.0, 0.0))
    result = pbdr.check(scene, p, eps=0.01, spp=32, fd_spp=128, seeds=4,
                        integrator=pbdr.make_integrator(scene, "pbdr_interior"))
    assert not result.report.passed


@pytest.mark.parametrize("key", ["red.reflectance.value", "metal.alpha.value"])
def test_forward_and_reverse_mode_agree(key: str) -> None:
    """Same seed: Σ w·(dI/dθ) from forward mode equals reverse mode's d(Σ w·I)/dθ."""
    scene = load("cbox.xml")
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), key)
    rng = np.random.default_rng(7)
    for seed in (0, 1):
        image = pbdr.derivative(scene, p, 32, seed)
        weights = rng.uniform(0.0, 1.0, image.shape).astype(np.float32)
        forward = float((image * weights).sum(dtype=np.float64))
        reverse = pbdr.total_derivative(scene, p, 32, seed, weights=weights)
        assert reverse == pytest.approx(forward, rel=1e-3, abs=1e-6 * float(np.abs(image).sum()))


@pytest.mark.parametrize("scene_name, key, translate", [
    ("cbox.xml", "red.reflectance.value", None),
    ("cbox.xml", "metal.alpha.value", None),
    ("cbox.xml", "box.vertex_positions", (1.0, 0.0, 0.0)),
    ("shadow.xml", "cube.vertex_positions", (1.0, 0.0, 0.0)),
])
def test_one_pass_forward_mode_equals_the_replay(scene_name: str, key: str, translate, monkeypatch) -> None:
    """Forward mode carries the throughput's tangent in one pass; the same
    seed through Mitsuba's primal + replay must give the same image."""
    from mitsuba.ad.integrators.common import RBIntegrator
    scene = load(scene_name)
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), key, translate)
    integrator = pbdr.make_integrator(scene, "pbdr_interior")
    one_pass = pbdr.derivative(scene, p, 16, 3, integrator)
    monkeypatch.setattr(type(integrator), "render_forward", RBIntegrator.render_forward)
    replay = pbdr.derivative(scene, p, 16, 3, integrator)
    assert np.abs(replay).max() > 0.1
    np.testing.assert_allclose(one_pass, replay, rtol=0, atol=1e-5 * np.abs(replay).max())


def test_max_depth_one_sees_only_emitters() -> None:
    scene = load("cbox.xml")
    image = pbdr.render(scene, 4, 0, pbdr.make_integrator(scene, "pbdr_interior", max_depth=1))
    lit = image.sum(axis=-1) > 0
    assert 0 < lit.sum() < 0.1 * lit.size          # only the light's pixels


def test_derivative_of_unused_parameter_is_zero() -> None:
    """With max_depth=1 only emitters are seen, so no reflectance has any effect."""
    scene = load("shadow.xml")
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "floor.bsdf.reflectance.value")
    integrator = pbdr.make_integrator(scene, "pbdr_interior", max_depth=1)
    assert np.all(pbdr.derivative(scene, p, 8, 0, integrator) == 0)


PEAK_RSS = """
import resource, sys, pbdr
s = pbdr.load_scene(sys.argv[1], {"res": 128})
p = pbdr.Perturbation.of(pbdr.scene_params(s), "white.reflectance.value")
pbdr.derivative(s, p, 256, 0, pbdr.make_integrator(s, "pbdr_interior", max_depth=int(sys.argv[2])))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_memory_does_not_grow_with_path_depth() -> None:
    """Path replay keeps no per-bounce state: 4M paths of depth 50 must peak like depth 2.
    (Storing a spectrum per path and bounce would need ~2 GB more.)"""
    import subprocess
    import sys

    def peak_kib(depth: int) -> int:
        out = subprocess.run([sys.executable, "-c", PEAK_RSS, scene_path("cbox.xml"), str(depth)],
                             capture_output=True, text=True, check=True, timeout=300)
        return int(out.stdout.split()[-1])

    shallow, deep = peak_kib(2), peak_kib(50)
    assert deep - shallow < 64 * 1024, f"depth 2: {shallow} KiB, depth 50: {deep} KiB"


def test_forward_differences_agree_with_the_derivative() -> None:
    """The forward scheme (4 I(ε) - 3 I(0) - I(2ε)) / 2ε estimates the same derivative."""
    scene = load("cbox.xml")
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "red.reflectance.value")
    result = pbdr.check(scene, p, eps=0.01, spp=16, fd_spp=256, seeds=6, fd_scheme="forward",
                        integrator=pbdr.make_integrator(scene, "pbdr_interior"))
    assert result.report.passed, result.report.summary()
    assert abs(result.report.fd_total) > 10 * result.report.fd_se     # FD sees the derivative


def test_paths_cut_to_fewer_segments_are_those_of_a_shorter_max_depth() -> None:
    """``sample``'s ``cutoffs``: the radiance of the same paths cut to at most
    c segments is what a ``max_depth`` c trace with the same random numbers
    returns (path-space side paths traced once for every camera vertex), and
    the cuts differ from each other (the test sees the depths apart)."""
    import drjit as dr
    import mitsuba as mi
    scene = load("cbox.xml", res="16")
    integrator = pbdr.make_integrator(scene, "pbdr_interior", max_depth=5)
    sensor = scene.sensors()[0]

    def trace(max_depth: int, cutoffs: tuple = ()) -> tuple:
        sampler = sensor.sampler().clone()
        sampler.seed(7, 16 * 16 * 4)
        pos = mi.Point2f(sampler.next_1d(), sampler.next_1d())
        ray, _ = sensor.sample_ray(0.0, 0.5, pos, mi.Point2f(0.5))
        integrator.max_depth = max_depth
        L, _, aovs, _ = integrator.sample(dr.ADMode.Primal, scene, sampler, ray, None, None, mi.Bool(True),
                                          cutoffs=cutoffs)
        return [np.array(x) for x in [L, *aovs]]

    full, *cut = trace(5, (4, 3, 2, 1))
    assert len(cut) == 4
    for c, L_c in zip((4, 3, 2, 1), cut):
        (alone,) = trace(c)
        np.testing.assert_allclose(L_c, alone, rtol=1e-5, atol=1e-6)
    means = [float(full.mean())] + [float(x.mean()) for x in cut]
    assert all(a > b * 1.01 for a, b in zip(means[:-1], means[1:])), means
