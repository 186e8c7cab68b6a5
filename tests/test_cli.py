"""The pbdr command: outputs, exit codes, and one-line errors for bad input."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from pbdr.cli import main
from pbdr.imageio import read_image
from conftest import ROOT, assert_one_line_error, run_cli, scene_path

CBOX = scene_path("cbox.xml")
SHADOW = scene_path("shadow.xml")


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
    code, stdout, err = run_cli(capsys, "check", SHADOW, "--param", "cube.vertex_positions",
                                "--translate", "1,0,0", "--eps", "0.01", "--spp", "32", "--seeds", "4",
                                "--integrator", "pbdr_interior")
    assert code == 1 and "DISAGREE" in stdout
    assert "pbdr_interior has no boundary terms" in err


def test_grad_warns_when_an_integrator_holds_sdf_surfaces(tmp_path, capsys) -> None:
    # pbdr_edge's path replay holds sdfgrid hit points fixed: only pbdr_reparam moves them.
    code, _, err = run_cli(capsys, "grad", scene_path("reparam/sdf_sphere.xml"), "--param", "sdf.to_world",
                           "--translate", "1,0,0", "--spp", "1", "--integrator", "pbdr_edge", "-D", "res=8",
                           "-o", str(tmp_path / "d.exr"))
    assert code == 0
    assert "pbdr_edge holds the surfaces of sdfgrid shapes fixed" in err and "pbdr_reparam" in err


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
    ('<string name="first_bounce" value="solid"/>', "first_bounce must be one of area, direction, auto"),
    ('<string name="solid_angle_after" value="all"/>', "solid_angle_after must be one of camera, moving"),
    ('<integer name="solid_angle_chain" value="0"/>', "solid_angle_chain must be at least 1"),
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
    assert code == 0 and "'sphere' is smooth-shaded" in err and "pbdr_reparam does not sample" in err, err
    for scene, key, integrator in ((str(smooth), "sphere.vertex_positions", ["--integrator", "pbdr_edge"]),
                                   (str(smooth), "sphere.bsdf.reflectance.value", reparam),
                                   (flat, "sphere.vertex_positions", reparam),
                                   (SHADOW, "cube.vertex_positions", ["--integrator", "pbdr_edge"])):
        extra = ["--translate", "1,0,0"] if key.endswith("positions") else []
        code, _, err = run_cli(capsys, "grad", scene, "--param", key, *extra, *integrator, *common)
        assert code == 0 and "smooth-shaded" not in err, (scene, key, err)


def test_grad_says_which_integrator_auto_chose(tmp_path, capsys) -> None:
    """The default integrator is 'auto': one line names the choice; a moving shape gets boundary
    terms (pbdr_edge), and pbdr_interior chosen by hand for it draws a warning; --quiet drops the
    note and keeps the warning."""
    common = ["--spp", "2", "-D", "res=8", "-o", str(tmp_path / "g.exr"), "-f"]
    move = ["--param", "cube.vertex_positions", "--translate", "1,0,0"]
    code, _, err = run_cli(capsys, "grad", SHADOW, *move, *common)
    assert code == 0 and err.splitlines() == [
        "pbdr: integrator pbdr_edge (auto: 'cube.vertex_positions' moves geometry, so boundary terms "
        "are needed)"], err
    code, _, err = run_cli(capsys, "grad", SHADOW, *move, *common, "--integrator", "pbdr_interior", "--quiet")
    assert code == 0 and err.splitlines() == [
        "pbdr: warning: pbdr_interior has no boundary terms: the derivative of 'cube.vertex_positions' "
        "misses the silhouettes and shadows that move with it; use --integrator auto"], err
    code, _, err = run_cli(capsys, "grad", SHADOW, "--param", "cube.bsdf.reflectance.value", *common)
    assert code == 0 and "integrator pbdr_interior (auto: no parameter moves geometry)" in err, err


def test_version_and_defaults_in_help(capsys) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == (
        f"pbdr {version('pbdr')} (mitsuba {version('mitsuba')}, drjit {version('drjit')})")
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("samples per pixel (default: 64)", "(default: auto)", "(default: 8)", "(default: 4.0)",
                  "-q, --quiet"):
        assert shown in text, shown


@pytest.mark.parametrize("command", ["render", "grad", "fd", "check", "optimize", "sdf sphere"])
def test_every_command_takes_quiet(capsys, command: str) -> None:
    with pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    assert "--quiet" in capsys.readouterr().out


def test_no_progress_bars_into_a_log(tmp_path, capsys) -> None:
    """stderr is not a terminal here (as in a log file): fd and check draw no bars."""
    out = tmp_path / "fd.exr"
    code, _, err = run_cli(capsys, "fd", CBOX, "--param", "red.reflectance.value", "--eps", "0.01",
                           "--spp", "2", "--seeds", "2", "-D", "res=8", "-o", str(out))
    assert code == 0 and err == "", err


@pytest.mark.parametrize("value", ["nan", "inf", "1, nan, 2", "-1e999"])
def test_non_finite_define_is_named(tmp_path, capsys, value: str) -> None:
    code, _, err = run_cli(capsys, "render", CBOX, "-o", str(tmp_path / "x.exr"), "-D", f"res={value}")
    assert_one_line_error(code, err, f"-D res={value}", "not a finite number")


def test_check_sheet_has_a_colour_bar(tmp_path) -> None:
    """The bar's top is the diverging map's +scale colour (red), its bottom -scale (blue)."""
    from pbdr.imageio import colour_bar, diverging, sheet

    image = np.zeros((16, 16, 3), np.float32)
    bar = colour_bar(2.0, 256)
    top, bottom = bar[0, 2].astype(int), bar[-1, 2].astype(int)
    assert top[0] > top[2] + 50 and bottom[2] > bottom[0] + 50
    np.testing.assert_array_equal(top, diverging(np.full((1, 1, 3), 2.0, np.float32), 2.0)[0, 0])
    assert sheet([diverging(image, 1.0)], ["a"], 1.0).shape[1] == sheet([diverging(image, 1.0)], ["a"]).shape[1] \
        + bar.shape[1] + 6


def test_fd_at_the_edge_of_a_domain_points_to_forward_differences(tmp_path, capsys) -> None:
    """Empty voxels sit at density 0: central differences refuse with a pointer to
    --fd-scheme forward, which then runs."""
    scene = scene_path("volume/sparse_smoke.xml")
    common = ["--param", "smoke.interior_medium.sigma_t.data", "--eps", "0.01", "--spp", "2", "--seeds", "2",
              "-D", "res=8", "-o", str(tmp_path / "fd.exr")]
    code, _, err = run_cli(capsys, "fd", scene, *common)
    assert_one_line_error(code, err, "values at 0", "--fd-scheme forward")
    code, out, _ = run_cli(capsys, "fd", scene, *common, "--fd-scheme", "forward")
    assert code == 0 and "finite differences (forward) of" in out, out
