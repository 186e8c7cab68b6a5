"""The boundary-term interface: a new term is one class and one entry in a composite's list.

A test-only term, ``ConstantTerm``, splats a known density: each of its
samples lands uniformly on the film's sampled domain and adds
A · ∂q/∂θ with A = c · (domain area) / count and q the red channel of
a reflectance, so that ∂q/∂θ = 1 along the perturbation. Its derivative
image then integrates to c per unit of film area, in every channel: exactly
with a box filter, within Monte Carlo noise with a Gaussian one, whose
footprint reaches past the film's border. Forward and reverse mode must
agree with that.
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi
import numpy as np
import pytest

import pbdr
from conftest import scene_path

KEY = "red.reflectance.value"
C = 0.5


def constant_term():
    from pbdr.integrators.boundary.term import BoundarySamples, BoundaryTerm, Setting, filter_footprint

    class ConstantTerm(BoundaryTerm):
        name = "constant"
        spp_divisor = 1
        settings = (Setting("constant_value", C, "what the term adds per unit of film area"),)

        def applies(self, scene: mi.Scene) -> bool:
            return True

        def samples(self, scene, sensor, integrator, seed, count):
            fp = filter_footprint(sensor.film())
            lo, hi = mi.Vector2f(fp.lo), mi.Vector2f(*fp.hi)
            sampler = sensor.sampler().clone()
            sampler.seed(seed, count)
            pos = lo + (hi - lo) * sampler.next_2d()
            area = (hi.x - lo.x) * (hi.y - lo.y)
            A = mi.Spectrum(self.values["constant_value"] * area / count)
            q = dr.gather(mi.Float, mi.traverse(scene)[KEY].x, dr.zeros(mi.UInt32, count))
            yield BoundarySamples(pos, [(A, q)], mi.Bool(True))

    return ConstantTerm


def toy_integrator(**props) -> mi.Integrator:
    """pbdr_edge's interior integrator with the constant term alone."""
    from pbdr.integrators.composite import with_boundary_terms
    from pbdr.integrators.interior import InteriorIntegrator

    class ToyIntegrator(with_boundary_terms(InteriorIntegrator)):
        plugin_name = "toy"
        term_types = (constant_term(),)

    p = mi.Properties()
    for k, v in {"interior": False, **props}.items():
        p[k] = v
    return ToyIntegrator(p)


@pytest.mark.parametrize("rfilter, rel", [("box", 1e-5), ("gaussian", 0.01)])
def test_a_toy_term_splats_its_known_integral(tmp_path, rfilter: str, rel: float) -> None:
    text = open(scene_path("cbox.xml")).read()
    assert '<rfilter type="box"/>' in text
    path = tmp_path / "scene.xml"
    path.write_text(text.replace('<rfilter type="box"/>', f'<rfilter type="{rfilter}"/>'))
    scene = pbdr.load_scene(path, {"res": 16})
    film = scene.sensors()[0].film()
    size = film.crop_size()
    expected = C * int(size[0]) * int(size[1]) * film.base_channels_count()
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), KEY)
    integrator = toy_integrator(spp_constant=256)
    image = pbdr.derivative(scene, p, 4, 0, integrator)
    assert image.sum(dtype=np.float64) == pytest.approx(expected, rel=rel)
    assert pbdr.total_derivative(scene, p, 4, 0, integrator) == pytest.approx(image.sum(dtype=np.float64),
                                                                            rel=1e-5)
    assert "constant=True, spp_constant=256, constant_value=0.5" in str(integrator)


def test_a_term_added_to_pbdr_edge_adds_its_integral() -> None:
    """One entry in an existing composite's list: pbdr_edge plus the toy term is pbdr_edge's
    derivative plus the toy's, sample for sample."""
    from pbdr.integrators.edge import EdgeIntegrator

    class EdgeWithConstant(EdgeIntegrator):
        term_types = EdgeIntegrator.term_types + (constant_term(),)

    scene = pbdr.load_scene(scene_path("cbox.xml"), {"res": 16})
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), KEY)
    edge = pbdr.derivative(scene, p, 4, 0, mi.load_dict({"type": "pbdr_edge"}))
    both = pbdr.derivative(scene, p, 4, 0, EdgeWithConstant(mi.Properties()))
    toy = pbdr.derivative(scene, p, 4, 0, toy_integrator())   # its default count: spp / 1
    np.testing.assert_allclose(both, edge + toy, rtol=1e-5, atol=1e-6)
    assert toy.sum() == pytest.approx(C * 16 * 16 * 3, rel=1e-5)


def test_term_settings_are_checked() -> None:
    from pbdr.integrators.boundary.term import Setting

    s = Setting("fraction", 0.5, "a share", lambda v: None if 0 < v <= 1 else "must be in (0, 1]")
    props = mi.Properties()
    props["fraction"] = 1.5
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\], got 1.5"):
        s.read(props)
    assert s.read(mi.Properties()) == 0.5



@pytest.mark.parametrize("plugin", ["pbdr_edge", "pbdr_pathspace"])
def test_unbounded_max_depth_walks_a_bounded_number_of_vertices(plugin: str) -> None:
    """``max_depth`` -1 (unbounded), which Mitsuba's integrators hold as
    2^32 - 1: the boundary terms walk ``UNBOUNDED_DEPTH`` camera-path vertices
    and trace unbounded side paths (they once walked 2^32 - 1 vertices: the
    call never returned). In an open scene whose paths end within a few
    bounces, the derivative is the same as with a large ``max_depth``."""
    from pbdr.integrators.boundary import pathspace_guiding
    from pbdr.integrators.boundary.term import depth_limit
    scene = pbdr.load_scene(scene_path("shadow.xml"), {"res": "16"})
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), "cube.vertex_positions", (1, 0, 0))
    images = []
    for depth in (-1, 8):
        integrator = mi.load_dict({"type": plugin, "max_depth": depth})
        assert depth_limit(integrator) == depth
        pathspace_guiding.forget()
        images.append(pbdr.derivative(scene, p, 16, 3, integrator))
    assert np.isfinite(images[0]).all() and np.abs(images[0]).sum() > 0
    np.testing.assert_allclose(images[0], images[1], rtol=1e-3, atol=1e-3 * np.abs(images[1]).max())
