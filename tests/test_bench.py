"""pbdr bench: the scoring math on synthetic estimates, manifests that are
wrong in one place, and a smoke run of refs + run on two tiny cases of the
bundled suite."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import SCENES, assert_one_line_error, run_cli
from pbdr.bench.score import block_variance, score
from pbdr.validate import Estimate

SUITE = SCENES / "bench" / "suite.toml"


# ---- scoring on synthetic estimates ----

def constant(k: int, value: float = 1.0, size: int = 16) -> np.ndarray:
    return np.full((k, size, size, 1), value, dtype=np.float64)


def test_block_error_of_a_known_offset() -> None:
    """FD: a noiseless constant image (four 8x8 blocks of sum 64); the derivative
    adds 0.25 to every pixel of one block: block error 16 / 128 exactly, no noise."""
    fd = Estimate(constant(4))
    g = constant(4)
    g[:, :8, :8] += 0.25
    s = score(fd, seconds=0.5, grad=Estimate(g))
    assert s.block_error == pytest.approx(16 / 128)
    assert s.block_noise == 0
    assert s.fd_total == pytest.approx(256) and s.total == pytest.approx(272)
    assert not s.passed                        # a difference with no noise to explain it


def test_block_variance_z_and_efficiency_of_known_noise() -> None:
    """One pixel of the derivative is +1, -1, +1, -1 over four seeds: its
    block's sum has variance 4/3 (ddof 1), the total's standard error is
    sqrt(4/3)/2, and z = mean difference / that."""
    fd = Estimate(constant(4))
    g = constant(4)
    g[:, 0, 0, 0] += np.array([1.0, -1.0, 1.0, -1.0]) + 0.5      # totals 257.5 + (+-1): mean 256.5
    grad = Estimate(g)
    norm2 = 4 * 64.0 ** 2
    assert block_variance(grad, fd) == pytest.approx((4 / 3) / norm2)
    s = score(fd, seconds=0.5, grad=grad)
    se = np.sqrt(4 / 3) / 2
    assert s.total_se == pytest.approx(se)
    assert s.z == pytest.approx(0.5 / se)
    assert s.rel_se == pytest.approx(se / 256)
    assert s.efficiency == pytest.approx(1 / ((4 / 3) / norm2 * 0.5))
    assert s.block_noise == pytest.approx(se / 128)           # sqrt(var of the block's mean) / ||B_F||
    assert s.passed


def test_reverse_mode_totals_are_scored_on_z_only() -> None:
    """Totals 11, 13, 11, 13 against a noiseless FD total of 10 per seed: mean 12,
    standard error sqrt(4/3)/2, z = 2 / se = 3.46 (within 4); no block error."""
    fd = Estimate(np.full((4, 2, 2, 1), 2.5))              # total 10 per seed
    s = score(fd, seconds=2.0, totals=np.array([11.0, 13.0, 11.0, 13.0]))
    se = np.sqrt(4 / 3) / 2
    assert s.mode == "reverse" and s.block_error is None and s.efficiency is None
    assert s.z == pytest.approx(2 / se) and s.passed
    assert s.rel_error == pytest.approx(0.2)
    assert s.total_efficiency == pytest.approx(1 / ((4 / 3) / 100 * 2.0))   # ||B_F||² = 10²
    bad = score(fd, seconds=2.0, totals=np.array([15.0, 17.0, 15.0, 17.0]))
    assert bad.z == pytest.approx(6 / se) and not bad.passed


# ---- manifests with one mistake ----

CASE = """
[[case]]
name = "{name}"
class = "material"
scene = "{scene}"
param = "{param}"
perturbation = "{kind}"
eps = 0.01
{extra}
"""


def manifest(tmp_path: Path, name: str = "albedo", scene: str | None = None, param: str = "red.reflectance.value",
             kind: str = "offset", extra: str = "") -> str:
    path = tmp_path / "cases.toml"
    path.write_text(CASE.format(name=name, scene=scene or str(SCENES / "cbox.xml"), param=param, kind=kind,
                                extra=extra))
    return str(path)


@pytest.mark.parametrize("kwargs, fragments", [
    ({"extra": "colour = 3"}, ["case 'albedo'", "unknown key 'colour'"]),
    ({"scene": "nowhere.xml"}, ["case 'albedo'", "scene file not found", "nowhere.xml"]),
    ({"kind": "scale"}, ["case 'albedo'", "unsupported perturbation 'scale'", "offset, translate, rotate"]),
    ({"param": "red.reflectance.valu"}, ["case 'albedo'", "unknown parameter 'red.reflectance.valu'",
                                         "red.reflectance.value"]),
    ({"kind": "translate", "extra": "direction = [1, 0, 0]"}, ["case 'albedo'", "--translate applies to"]),
    ({"kind": "rotate"}, ["case 'albedo'", "needs 'axis'"]),
    ({"extra": "fd_seeds = 1"}, ["case 'albedo'", "fd_seeds must be >= 2"]),
], ids=["unknown_key", "missing_scene", "unsupported_perturbation", "unknown_param", "translate_on_colour",
        "rotate_without_axis", "one_seed"])
def test_bad_manifest_is_one_line_naming_the_case(tmp_path, capsys, kwargs, fragments) -> None:
    code, _, err = run_cli(capsys, "bench", "list", "--suite", manifest(tmp_path, **kwargs))
    assert_one_line_error(code, err, *fragments)


def test_bad_manifest_files_and_options(tmp_path, capsys) -> None:
    code, _, err = run_cli(capsys, "bench", "list", "--suite", str(tmp_path / "none.toml"))
    assert_one_line_error(code, err, "manifest not found")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[case]\nname = 1")
    code, _, err = run_cli(capsys, "bench", "list", "--suite", str(bad))
    assert_one_line_error(code, err, "cannot read manifest")
    code, _, err = run_cli(capsys, "bench", "list", "--cases", "no_such_case")
    assert_one_line_error(code, err, "no case 'no_such_case'")
    code, _, err = run_cli(capsys, "bench", "run", "--integrator", "prbb", "--cases", "diffuse_albedo",
                           "--cache", str(tmp_path), "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "unknown integrator 'prbb'")
    code, _, err = run_cli(capsys, "bench", "run", "--integrator", "prb", "--cases", "diffuse_albedo",
                           "--cache", str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "run pbdr bench refs first")


def test_bundled_suite_is_complete(capsys) -> None:
    """The bundled suite loads (every scene, key and step) and has the 16 cases the issue asks for."""
    code, out, err = run_cli(capsys, "bench", "list", "--cache", os.devnull)
    assert code == 0, err
    assert "16 cases" in out
    for name in ("diffuse_albedo", "conductor_roughness", "bitmap_texture", "emitter_radiance",
                 "primary_silhouette", "floating_shadow", "cbox_occlusion", "resting_cube", "smooth_mesh_20k",
                 "moving_area_light", "rotating_cube", "sdf_offset", "sdf_to_world", "smoke_density",
                 "smoke_albedo", "indirect_occluder"):
        assert name in out


# ---- refs + run on two tiny cases ----

def test_refs_and_run_on_two_tiny_cases(tmp_path, capsys) -> None:
    cache, out = str(tmp_path / "cache"), str(tmp_path / "report")
    tiny = ["--cases", "diffuse_albedo,moving_area_light", "--res", "16", "--cache", cache]
    code, stdout, err = run_cli(capsys, "bench", "refs", *tiny, "--fd-spp", "32", "--fd-seeds", "3")
    assert code == 0, err
    assert "2 computed, 0 up to date" in stdout
    meta = json.loads(Path(cache, "moving_area_light", "ref.json").read_text())
    assert (meta["spp"], meta["seeds"], meta["eps"], meta["res"]) == (32, 3, 0.005, 16)
    assert meta["mitsuba"] == "3.9.1" and meta["integrator"] == "path" and len(meta["hash"]) == 64
    code, stdout, err = run_cli(capsys, "bench", "refs", *tiny, "--fd-spp", "32", "--fd-seeds", "3")
    assert code == 0 and "0 computed, 2 up to date" in stdout, err

    code, stdout, err = run_cli(capsys, "bench", "run", *tiny, "--integrator", "pbdr_interior,pbdr_edge,pbdr_reparam",
                                "--spp", "4", "--seeds", "2", "--out", out)
    assert code == 0, err
    results = json.loads(Path(out, "results.json").read_text())
    assert [c["name"] for c in results["cases"]] == ["diffuse_albedo", "moving_area_light"]
    for case in results["cases"]:
        r = case["results"]
        assert r["pbdr_reparam"]["status"] == "unsupported" and "smooth pixel filter" in r["pbdr_reparam"]["reason"]
        for name in ("pbdr_interior", "pbdr_edge"):
            assert r[name]["status"] == "ok", r[name]
            assert r[name]["seconds"] > 0 and r[name]["seeds"] == 2
            # pbdr_interior's derivative of a moving light is exactly 0 (no boundary terms): no noise,
            # no efficiency; every other estimate here is noisy
            zero = name == "pbdr_interior" and case["name"] == "moving_area_light"
            assert (r[name]["efficiency"] is None) if zero else r[name]["efficiency"] > 0
            assert np.isfinite(r[name]["block_error"]) and np.isfinite(r[name]["z"])
            assert Path(out, "images", case["name"], f"{name}.png").is_file()
    assert "no boundary terms" in results["cases"][1]["results"]["pbdr_interior"]["warning"]
    report = Path(out, "report.md").read_text()
    assert "moving_area_light" in report and "`pbdr_edge`" in report and "unsupported" in report
    page = Path(out, "index.html").read_text()
    for src in ("summary.png", "images/diffuse_albedo/fd.png", "images/moving_area_light/pbdr_edge.png"):
        assert f"src='{src}'" in page and Path(out, src).is_file()

    code, _, err = run_cli(capsys, "bench", "run", *tiny, "--integrator", "pbdr_interior", "--out", out)
    assert_one_line_error(code, err, "already exists", "--force")


def test_user_suite_reference_follows_its_files(tmp_path, capsys) -> None:
    """A user's manifest (--suite): the reference is reused until a scene file changes."""
    shutil.copy(SCENES / "shadow.xml", tmp_path / "scene.xml")
    suite = manifest(tmp_path, name="radiance", scene="scene.xml", param="light.emitter.radiance.value",
                     extra="res = 8\nfd_spp = 8\nfd_seeds = 2")
    code, stdout, err = run_cli(capsys, "bench", "refs", "--suite", suite)
    assert code == 0 and "1 computed" in stdout, err
    assert Path(tmp_path, "refs-cache", "cases", "radiance", "fd.npz").is_file()
    code, stdout, _ = run_cli(capsys, "bench", "refs", "--suite", suite)
    assert "0 computed, 1 up to date" in stdout
    with open(tmp_path / "scene.xml", "a") as f:
        f.write("<!-- changed -->\n")
    code, stdout, err = run_cli(capsys, "bench", "run", "--suite", suite, "--integrator", "prb",
                                "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "case 'radiance'", "stale")
    code, stdout, _ = run_cli(capsys, "bench", "refs", "--suite", suite)
    assert "1 computed" in stdout


def test_a_slow_gradient_is_failed_timed_out(tmp_path) -> None:
    from pbdr.bench.manifest import load_manifest
    from pbdr.bench.run import run_worker

    case = load_manifest(SUITE, res=8).select(["diffuse_albedo"])[0]
    result, arrays = run_worker(case, "pbdr_interior", spp=1, seeds=2, timeout=1e-6, variant=None)
    assert result["status"] == "failed" and result["reason"].startswith("timed out"), result
    assert arrays == {}
