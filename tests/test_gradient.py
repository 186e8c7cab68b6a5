"""pbdr.gradient: the gradient of a loss of the image, for optimization loops."""
from __future__ import annotations

import drjit as dr
import numpy as np
import pytest

import pbdr
from conftest import scene_path


def image_sum(image):
    return dr.sum(image, axis=None)


@pytest.mark.parametrize("scene, key, translate", [
    ("cbox.xml", "red.reflectance.value", None),
    ("shadow.xml", "cube.vertex_positions", (1.0, 0.0, 0.0)),      # auto: pbdr_edge, boundary terms
])
def test_gradient_of_the_image_sum_is_the_reverse_derivative(scene, key, translate) -> None:
    """Σ_i grad_i d_i = d(Σ I)/dθ along the perturbation's direction d, with the same
    samples (the derivative pass uses seed + 1)."""
    loaded = pbdr.load_scene(scene_path(scene))
    params = pbdr.scene_params(loaded)
    before = np.array(params[key])
    grads = pbdr.gradient(loaded, image_sum, [key], spp=8, seed=3)
    g = grads[key]
    assert g.shape == (before.size,) and np.all(np.isfinite(g))
    p = pbdr.Perturbation.of(params, key, translate)
    along = g.reshape(-1, 3)[:, 0].sum() if translate else g.sum()
    expected = pbdr.total_derivative(loaded, p, 8, seed=4)
    assert along == pytest.approx(expected, rel=1e-4)
    assert abs(expected) > 1
    np.testing.assert_array_equal(np.array(params[key]), before)     # left as it was
    assert not dr.grad_enabled(params[key])


def test_gradient_is_taken_at_the_current_value() -> None:
    """Set the value, then ask: the image is a polynomial in a wall's albedo with positive
    coefficients (light bounces off the wall k times: ρ^k), so d mean(I)/dρ grows with ρ."""
    scene = pbdr.load_scene(scene_path("cbox.xml"))
    params = pbdr.scene_params(scene)
    key = "red.reflectance.value"
    mean = lambda image: dr.mean(image, axis=None)      # noqa: E731
    values = {}
    for v in (0.2, 0.8):
        params[key] = type(params[key])(v, v, v)
        params.update()
        values[v] = pbdr.gradient(scene, mean, [key], spp=32)[key].sum()
    assert values[0.8] > 1.02 * values[0.2] > 0, values


def test_gradient_refuses_bad_input() -> None:
    scene = pbdr.load_scene(scene_path("cbox.xml"))
    with pytest.raises(pbdr.PbdrError, match="unknown parameter 'red.reflectanse.value'"):
        pbdr.gradient(scene, image_sum, ["red.reflectanse.value"], spp=2)
    with pytest.raises(pbdr.PbdrError, match="scalar"):
        pbdr.gradient(scene, lambda image: image, ["red.reflectance.value"], spp=2)
    with pytest.raises(pbdr.PbdrError, match="at least one"):
        pbdr.gradient(scene, image_sum, [], spp=2)
