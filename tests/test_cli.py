"""The pbdr command: outputs, exit codes, and one-line errors for bad input."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from pbdr.cli import main
from pbdr.imageio import read_image
from conftest import ROOT, scene_path

CBOX = scene_path("cbox.xml")
SHADOW = scene_path("shadow.xml")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("pbdr: error:"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_render_writes_exr_and_png(tmp_path, capsys) -> None:
    out = tmp_path / "img.exr"
    code, stdout, _ = run_cli(capsys, "render", CBOX, "-o", str(out), "--spp", "8", "-D", "res=24")
    assert code == 0
    image = read_image(out)
    assert image.shape == (24, 24, 3) and image.mean() > 0
    assert (tmp_path / "img.png").stat().st_size > 0
    assert "24x24" in stdout


def test_render_with_integrator_keeps_scene_max_depth(tmp_path, capsys) -> None:
    """--integrator replaces the type; the scene's max_depth (here 1: emitters only) carries over."""
    a, b = tmp_path / "a.exr", tmp_path / "b.exr"
    assert run_cli(capsys, "render", CBOX, "-o", str(a), "--spp", "4", "-D", "max_depth=1",
                   "--integrator", "pbdr_interior")[0] == 0
    assert run_cli(capsys, "render", CBOX, "-o", str(b), "--spp", "4", "-D", "max_depth=1",
                   "--integrator", "pbdr_interior", "--max-depth", "3")[0] == 0
    lit_a = (read_image(a).sum(-1) > 0).mean()
    lit_b = (read_image(b).sum(-1) > 0).mean()
    assert lit_a < 0.1 < lit_b


def test_grad_prints_sum_and_writes_images(tmp_path, capsys) -> None:
    out = tmp_path / "g.exr"
    code, stdout, _ = run_cli(capsys, "grad", CBOX, "--param", "red.reflectance.value", "-o", str(out),
                              "--spp", "16")
    assert code == 0
    image = read_image(out)
    assert f"sum = {image.sum(dtype=np.float64):.4g}"[:10] in stdout
    assert image.sum() > 0 and (tmp_path / "g.png").exists()


def test_fd_writes_mean_and_stderr(tmp_path, capsys) -> None:
    out = tmp_path / "fd.exr"
    code, stdout, _ = run_cli(capsys, "fd", CBOX, "--param", "light.emitter.radiance.value", "--eps", "0.5",
                              "--spp", "16", "--seeds", "3", "-o", str(out))
    assert code == 0
    assert read_image(out).sum() > 0
    assert read_image(tmp_path / "fd_stderr.exr").sum() > 0
    assert "±" in stdout


def test_check_agrees_exit_0_and_writes_sheet(tmp_path, capsys) -> None:
    sheet = tmp_path / "check.png"
    code, stdout, _ = run_cli(capsys, "check", SHADOW, "--param", "floor.bsdf.reflectance.value",
                              "--eps", "0.02", "--spp", "32", "-o", str(sheet))
    assert code == 0, stdout
    assert "AGREE" in stdout and "z-score" in stdout and "block error" in stdout
    assert sheet.stat().st_size > 0 and (tmp_path / "check_fd.exr").exists()


def test_check_disagrees_exit_1(capsys) -> None:
    """pbdr_interior has no silhouette term, so a translating cube must fail the check."""
    code, stdout, _ = run_cli(capsys, "check", SHADOW, "--param", "cube.vertex_positions",
                              "--translate", "1,0,0", "--eps", "0.01", "--spp", "32", "--seeds", "4")
    assert code == 1 and "DISAGREE" in stdout


@pytest.mark.parametrize("argv, fragments", [
    (["render", "missing.xml", "-o", "x.exr"], ["not found", "missing.xml"]),
    (["grad", CBOX, "--param", "red.reflectanse.value", "-o", "x.exr"],
     ["unknown parameter", "nearest: red.reflectance.value"]),
    (["grad", CBOX, "--param", "box.faces", "-o", "x.exr"], ["not differentiable"]),
    (["grad", CBOX, "--param", "red.reflectance.value", "--translate", "1,0,0", "-o", "x.exr"],
     ["--translate applies to"]),
    (["grad", CBOX, "--param", "box.to_world", "-o", "x.exr"], ["unknown parameter"]),
    (["fd", CBOX, "--param", "red.reflectance.value", "--eps", "-1", "-o", "x.exr"], ["--eps"]),
    (["fd", CBOX, "--param", "red.reflectance.value", "--eps", "nan", "-o", "x.exr"], ["--eps"]),
    (["fd", CBOX, "--param", "metal.alpha.value", "--eps", "0.5", "-o", "x.exr"],
     ["makes 'metal.alpha.value' negative"]),
    (["render", CBOX, "-o", "x.exr", "-D", "res"], ["-D expects key=value"]),
    (["render", CBOX, "-o", "x.exr", "-D", "res=-4"], ["cannot load scene", "out of bounds"]),
    (["render", CBOX, "-o", "x.exr", "--integrator", "nonesuch"], ["nonesuch"]),
    (["render", CBOX, "-o", "x.png"], ["must be an .exr"]),
    (["render", CBOX, "-o", "x.exr", "--variant", "scalar_rgb"], ["not an available autodiff variant"]),
    (["render", CBOX, "-o", "x.exr", "--max-depth", "0", "--integrator", "path"], ["max depth"]),
    (["check", CBOX, "--param", "red.reflectance.value", "--eps", "0.1", "--seeds", "1"], ["at least 2 seeds"]),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, monkeypatch, argv, fragments) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, *fragments)


def test_malformed_xml(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text('<scene version="3.0.0"><shape type="sphere"></scene>')
    code, _, err = run_cli(capsys, "render", str(bad), "-o", str(tmp_path / "x.exr"))
    assert_one_line_error(code, err, "cannot load scene", "bad.xml")


@pytest.mark.parametrize("setting,reason", [
    ('<integer name="edge_candidates" value="-1"/>', "edge_candidates must be >= 0"),
    ('<float name="terminator_fraction" value="1.5"/>', "terminator_fraction must be in (0, 1]"),
])
def test_bad_plugin_parameter_names_the_reason(tmp_path, capsys, setting: str, reason: str) -> None:
    """A pbdr plugin's own error (wrapped by Mitsuba with its traceback) keeps its message."""
    bad = tmp_path / "bad.xml"
    bad.write_text(f'<scene version="3.0.0"><integrator type="pbdr_edge">{setting}</integrator></scene>')
    code, _, err = run_cli(capsys, "render", str(bad), "-o", str(tmp_path / "x.exr"))
    assert_one_line_error(code, err, "cannot load scene", reason)


def test_existing_output_is_not_overwritten(tmp_path, capsys) -> None:
    out = tmp_path / "mine.exr"
    out.write_bytes(b"precious")
    code, _, err = run_cli(capsys, "render", CBOX, "-o", str(out), "--spp", "2")
    assert_one_line_error(code, err, "already exists", "--force")
    assert out.read_bytes() == b"precious"
    assert run_cli(capsys, "render", CBOX, "-o", str(out), "--spp", "2", "--force")[0] == 0


@pytest.mark.parametrize("env, fragment", [
    ({"DRJIT_LIBLLVM_PATH": "/nonexistent/libLLVM-19.so"}, "does not exist"),
    ({"PBDR_VARIANT": "scalar_rgb"}, "not an available autodiff variant"),
])
def test_environment_problems_in_a_fresh_process(tmp_path, env, fragment) -> None:
    """libLLVM is looked up when Dr.Jit is imported, so this needs its own process."""
    proc = subprocess.run([sys.executable, "-m", "pbdr", "render", CBOX, "-o", str(tmp_path / "x.exr")],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env}, timeout=120)
    assert_one_line_error(proc.returncode, proc.stderr, fragment)


def test_libllvm_version_parsing() -> None:
    from pbdr.variant import llvm_major

    assert llvm_major("/usr/lib/x86_64-linux-gnu/libLLVM-19.so") == 19
    assert llvm_major("/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1") == 19
    assert llvm_major("/usr/lib/x86_64-linux-gnu/libLLVM-14.0.6.so.1") == 14
    assert llvm_major("/usr/lib/llvm-17/lib/libLLVM.so") == 17


def test_grad_warns_when_a_smooth_shaded_mesh_moves(tmp_path, capsys) -> None:
    """Interpolated normals put a discontinuity inside triangles that pbdr_reparam does not
    sample: say so when their geometry is differentiated with it, and not with pbdr_edge
    (which samples it), for flat meshes or for other parameters."""
    flat = scene_path("edge/icosphere.xml")
    obj = os.path.join(os.path.dirname(flat), "icosphere.obj")
    text = open(flat).read().replace('value="icosphere.obj"', f'value="{obj}"')
    smooth = tmp_path / "smooth.xml"
    smooth.write_text(text.replace('name="face_normals" value="true"', 'name="face_normals" value="false"'))
    common = ["--spp", "1", "-D", "res=8", "-o", str(tmp_path / "g.exr"), "-f"]
    reparam = ["--integrator", "pbdr_reparam", "-D", "rfilter=gaussian"]
    code, _, err = run_cli(capsys, "grad", str(smooth), "--param", "sphere.vertex_positions",
                           "--translate", "1,0,0", *reparam, *common)
    assert code == 0 and "'sphere' is smooth-shaded" in err and "ReparamIntegrator" in err, err
    for scene, key, integrator in ((str(smooth), "sphere.vertex_positions", ["--integrator", "pbdr_edge"]),
                                   (str(smooth), "sphere.bsdf.reflectance.value", reparam),
                                   (flat, "sphere.vertex_positions", reparam),
                                   (SHADOW, "cube.vertex_positions", ["--integrator", "pbdr_edge"])):
        extra = ["--translate", "1,0,0"] if key.endswith("positions") else []
        code, _, err = run_cli(capsys, "grad", scene, "--param", key, *extra, *integrator, *common)
        assert code == 0 and "smooth-shaded" not in err, (scene, key, err)
