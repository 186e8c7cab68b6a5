"""``pbdr grid``: .npy <-> .vol conversion, its one-line errors, smoke scenes
made from a grid, and the sparse test scenes of scenes/volume (their empty
fractions)."""
from __future__ import annotations

import importlib.util
import os

import mitsuba as mi
import numpy as np
import pytest

import pbdr
from pbdr.cli import main
from pbdr.geometry import voxels
from conftest import SCENES, assert_one_line_error, run_cli

VOLUME = SCENES / "volume"
MEDIUM = "smoke.interior_medium."


def random_grid(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    g[g < -1] = 0.0   # some exact zeros
    return g


# --- convert ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(16, 16, 16), (4, 6, 8), (5, 6, 7, 3)])
def test_convert_round_trip_npy_vol_npy(tmp_path, capsys, shape) -> None:
    a = random_grid(shape)
    src, vol, back = tmp_path / "a.npy", tmp_path / "a.vol", tmp_path / "b.npy"
    np.save(src, a)
    code, out, _ = run_cli(capsys, "grid", "convert", str(src), "-o", str(vol))
    assert code == 0 and "wrote" in out and str(vol) in out
    np.testing.assert_array_equal(voxels.read_vol(vol), a if a.ndim == 4 else a[..., None])
    assert run_cli(capsys, "grid", "convert", str(vol), "-o", str(back))[0] == 0
    b = np.load(back)
    assert b.dtype == np.float32 and b.shape == a.shape
    np.testing.assert_array_equal(b, a)


def test_convert_one_channel_and_float64(tmp_path, capsys) -> None:
    """(Z, Y, X, 1) comes back as (Z, Y, X); float64 is stored as float32."""
    a = np.linspace(0, 1, 4 * 5 * 6).reshape(4, 5, 6, 1)
    np.save(tmp_path / "a.npy", a)
    assert run_cli(capsys, "grid", "convert", str(tmp_path / "a.npy"), "-o", str(tmp_path / "a.vol"))[0] == 0
    assert run_cli(capsys, "grid", "convert", str(tmp_path / "a.vol"), "-o", str(tmp_path / "b.npy"))[0] == 0
    b = np.load(tmp_path / "b.npy")
    assert b.shape == (4, 5, 6) and b.dtype == np.float32
    np.testing.assert_array_equal(b, a[..., 0].astype(np.float32))


def test_convert_refuses_to_overwrite(tmp_path, capsys) -> None:
    np.save(tmp_path / "a.npy", np.ones((2, 2, 2), np.float32))
    out = tmp_path / "a.vol"
    out.write_bytes(b"mine")
    code, _, err = run_cli(capsys, "grid", "convert", str(tmp_path / "a.npy"), "-o", str(out))
    assert_one_line_error(code, err, str(out), "already exists", "--force")
    assert out.read_bytes() == b"mine"
    assert run_cli(capsys, "grid", "convert", str(tmp_path / "a.npy"), "-o", str(out), "--force")[0] == 0
    np.testing.assert_array_equal(voxels.read_vol(out), np.ones((2, 2, 2, 1), np.float32))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pbdr-")] == []


def bad_inputs(tmp_path):
    """(file name, fragments of the error) for each bad input of ``grid convert``."""
    np.save(tmp_path / "flat.npy", np.ones((4, 4), np.float32))
    np.save(tmp_path / "two.npy", np.ones((4, 4, 4, 2), np.float32))
    np.save(tmp_path / "five.npy", np.ones((2, 2, 2, 1, 1), np.float32))
    np.save(tmp_path / "empty.npy", np.ones((0, 4, 4), np.float32))
    nan = np.ones((4, 4, 4))
    nan[1, 2, 3] = np.nan
    nan[3, 3, 3] = np.inf
    np.save(tmp_path / "nan.npy", nan)
    inf = np.ones((3, 3, 3, 1), np.float32)
    inf[0, 1, 2] = -np.inf
    mi.VolumeGrid(inf).write(str(tmp_path / "inf.vol"))
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    (tmp_path / "junk.npy").write_text("not an array")
    (tmp_path / "junk.vol").write_bytes(b"VOL\x03 not a grid")
    np.save(tmp_path / "big.npy", np.full((2, 2, 2), 1e300))
    (tmp_path / "grid.txt").write_text("1 2 3")
    return [
        ("flat.npy", ["shape (4, 4)", "(Z, Y, X) or (Z, Y, X, C) with C = 1 or 3"]),
        ("two.npy", ["shape (4, 4, 4, 2)"]),
        ("five.npy", ["shape (2, 2, 2, 1, 1)"]),
        ("empty.npy", ["shape (0, 4, 4)"]),
        ("nan.npy", ["2 of 64 values are not finite", "(1, 2, 3)"]),
        ("inf.vol", ["1 of 27 values are not finite", "(0, 1, 2, 0)"]),
        ("text.npy", ["expected a numeric array"]),
        ("junk.npy", ["cannot read"]),
        ("junk.vol", ["cannot read"]),
        ("big.npy", ["8 of 8 values overflow float32"]),
        ("grid.txt", ["unknown grid format '.txt'"]),
        ("missing.npy", ["not found"]),
    ]


def test_convert_bad_inputs_are_one_line_errors(tmp_path, capsys) -> None:
    for name, fragments in bad_inputs(tmp_path):
        out = tmp_path / "out.vol"
        code, _, err = run_cli(capsys, "grid", "convert", str(tmp_path / name), "-o", str(out))
        assert_one_line_error(code, err, name, *fragments)
        assert not out.exists(), name


@pytest.mark.parametrize("source, output, fragments", [
    ("a.txt", "b.vol", ["a.txt", "unknown grid format '.txt'", ".npy or .vol"]),
    ("a.npy", "b.raw", ["b.raw", "unknown output format '.raw'"]),
    ("a.npy", "b", ["'(none)'"]),
])
def test_convert_unknown_extension(tmp_path, capsys, source, output, fragments) -> None:
    np.save(tmp_path / "a.npy", np.ones((2, 2, 2), np.float32))
    (tmp_path / "a.txt").write_text("1 2 3")
    code, _, err = run_cli(capsys, "grid", "convert", str(tmp_path / source), "-o", str(tmp_path / output))
    assert_one_line_error(code, err, *fragments)


# --- scene -----------------------------------------------------------------------------------------

def density_and_albedo(tmp_path):
    d = voxels.blobs((8, 12, 16), [((0.5, 0.5, 0.5), 0.25, 1.0)])
    a = np.clip(voxels.blob((8, 12, 16), radius=0.4), 0, 1)[..., None].repeat(3, -1)
    np.save(tmp_path / "d.npy", d)
    voxels.write_vol(tmp_path / "a.vol", a)
    return d, a


def test_scene_loads_and_prints_its_keys(tmp_path, capsys) -> None:
    d, a = density_and_albedo(tmp_path)
    xml = tmp_path / "out" / "smoke.xml"
    xml.parent.mkdir()
    code, out, _ = run_cli(capsys, "grid", "scene", str(tmp_path / "d.npy"), "-o", str(xml), "--albedo",
                           str(tmp_path / "a.vol"), "--scale", "5", "--env", "0.1,0.2,0.3", "--res", "16")
    assert code == 0, out
    assert sorted(os.listdir(xml.parent)) == ["smoke.xml", "smoke_albedo.vol", "smoke_density.vol"]
    printed = [line.strip() for line in out.splitlines() if line.strip().startswith(MEDIUM)]
    assert printed == [MEDIUM + "sigma_t.data", MEDIUM + "albedo.data", MEDIUM + "scale"]
    scene = pbdr.load_scene(xml)
    params = mi.traverse(scene)
    for key in printed:
        assert key in params, key
    np.testing.assert_array_equal(np.array(params[MEDIUM + "sigma_t.data"]), d[..., None])
    np.testing.assert_array_equal(np.array(params[MEDIUM + "albedo.data"]), a)
    assert params[MEDIUM + "scale"] == pytest.approx(5.0)
    np.testing.assert_allclose(np.array(params["env.radiance.value"]).ravel(), [0.1, 0.2, 0.3], rtol=1e-6)
    assert "light.emitter.radiance.value" in params and "floor.bsdf.reflectance.value" in params
    text = xml.read_text()
    for fragment in ('type="volpath"', '<default name="res" value="16"/>', '<default name="spp"',
                     '<default name="max_depth"', '<rfilter type="box"/>', 'type="constant"',
                     'type="heterogeneous"', '<bsdf type="null"/>', 'type="perspective"'):
        assert fragment in text, fragment
    image = pbdr.render(scene, spp=4)
    assert image.shape == (16, 16, 3) and np.all(np.isfinite(image)) and image.mean() > 0


def test_scene_constant_albedo_and_no_env(tmp_path, capsys) -> None:
    density_and_albedo(tmp_path)
    xml = tmp_path / "s.xml"
    code, out, _ = run_cli(capsys, "grid", "scene", str(tmp_path / "d.npy"), "-o", str(xml),
                           "--albedo-value", "0.5")
    assert code == 0
    assert MEDIUM + "albedo.value.value" in out and "albedo.data" not in out
    params = mi.traverse(pbdr.load_scene(xml))
    assert np.array(params[MEDIUM + "albedo.value.value"]).ravel() == pytest.approx([0.5])
    assert not any(k.startswith("env.") for k in params.keys())
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("s")) == ["s.xml", "s_density.vol"]


def test_scene_refuses_to_overwrite_anything(tmp_path, capsys) -> None:
    density_and_albedo(tmp_path)
    xml = tmp_path / "s.xml"
    argv = ["grid", "scene", str(tmp_path / "d.npy"), "-o", str(xml), "--albedo", str(tmp_path / "a.vol")]
    assert run_cli(capsys, *argv)[0] == 0
    for name in ("s.xml", "s_density.vol", "s_albedo.vol"):
        (tmp_path / name).write_bytes(b"mine")
        others = [n for n in ("s.xml", "s_density.vol", "s_albedo.vol") if n != name]
        for other in others:
            (tmp_path / other).unlink(missing_ok=True)
        code, _, err = run_cli(capsys, *argv)
        assert_one_line_error(code, err, name, "already exists", "--force")
        assert (tmp_path / name).read_bytes() == b"mine"
        assert not any((tmp_path / other).exists() for other in others), "wrote before refusing"
    assert run_cli(capsys, *argv, "--force")[0] == 0
    assert "volpath" in xml.read_text()


def test_scene_bad_inputs_are_one_line_errors(tmp_path, capsys) -> None:
    d, _ = density_and_albedo(tmp_path)
    neg = d.copy()
    neg[1, 2, 3] = -0.5
    neg[4, 5, 6] = -2.0
    np.save(tmp_path / "neg.npy", neg)
    alb = np.full(d.shape + (3,), 0.5, np.float32)
    alb[0, 0, 0, 1] = 1.5
    np.save(tmp_path / "alb.npy", alb)
    np.save(tmp_path / "rgb.npy", np.ones(d.shape + (3,), np.float32))
    bad_inputs(tmp_path)
    xml = str(tmp_path / "s.xml")
    cases = [
        (["neg.npy"], ["neg.npy", "2 of 1536 voxels of the density are negative", "min -2", "(1, 2, 3)"]),
        (["d.npy", "--albedo", str(tmp_path / "alb.npy")],
         ["alb.npy", "1 of 4608 values of the albedo are outside [0, 1]", "max 1.5"]),
        (["rgb.npy"], ["rgb.npy", "a density grid has 1 channel, got 3"]),
        (["nan.npy"], ["nan.npy", "not finite"]),
        (["two.npy"], ["two.npy", "shape (4, 4, 4, 2)"]),
        (["d.npy", "--albedo", str(tmp_path / "inf.vol")], ["inf.vol", "not finite"]),
        (["grid.txt"], ["grid.txt", "unknown grid format"]),
    ]
    for argv, fragments in cases:
        code, _, err = run_cli(capsys, "grid", "scene", str(tmp_path / argv[0]), *argv[1:], "-o", xml)
        assert_one_line_error(code, err, *fragments)
        assert not os.path.exists(xml) and not (tmp_path / "s_density.vol").exists()
    dpath = str(tmp_path / "d.npy")
    for options, fragment in [(["--scale", "-1"], "--scale"), (["--scale", "nan"], "--scale"),
                              (["--env", "1,2"], "--env"), (["--env", "-1"], "--env"),
                              (["--albedo-value", "1.5"], "--albedo-value")]:
        code, _, err = run_cli(capsys, "grid", "scene", dpath, "-o", xml, *options)
        assert_one_line_error(code, err, fragment)
    code, _, err = run_cli(capsys, "grid", "scene", dpath, "-o", str(tmp_path / "s.txt"))
    assert_one_line_error(code, err, "s.txt", ".xml")


@pytest.mark.parametrize("command", ["grid", "grid convert", "grid scene"])
def test_help_says_npy_and_vol_are_read_and_written(capsys, command) -> None:
    with pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ".npy" in text and ".vol" in text and "read and written" in text, text
    assert "--quiet" in text


def test_quiet_scene_prints_no_note(tmp_path, capsys) -> None:
    density_and_albedo(tmp_path)
    code, out, err = run_cli(capsys, "grid", "scene", str(tmp_path / "d.npy"), "-o", str(tmp_path / "s.xml"),
                             "--quiet")
    assert code == 0 and err == "" and MEDIUM + "sigma_t.data" in out


# --- the sparse test scenes --------------------------------------------------------------------------

def grid_of(xml: str, key: str, **defines: str) -> np.ndarray:
    params = mi.traverse(pbdr.load_scene(VOLUME / xml, defines))
    return np.array(params[key])


@pytest.mark.parametrize("density, empty", [("sparse_00.vol", 0.0), ("sparse_50.vol", 0.5),
                                            ("sparse_99.vol", 0.99)])
def test_sparse_smoke_empty_fractions(density, empty) -> None:
    d = grid_of("sparse_smoke.xml", MEDIUM + "sigma_t.data", density=density)
    assert d.shape == (24, 24, 24, 1)
    fraction = float((d == 0).mean())
    assert abs(fraction - empty) <= 0.05, fraction
    if empty == 0:
        assert fraction == 0.0
    assert d.min() >= 0 and d.max() == pytest.approx(1.0)


def test_sparse_smoke_default_scene() -> None:
    scene = pbdr.load_scene(VOLUME / "sparse_smoke.xml")
    params = mi.traverse(scene)
    d = np.array(params[MEDIUM + "sigma_t.data"])
    assert abs(float((d == 0).mean()) - 0.5) <= 0.05
    a = np.array(params[MEDIUM + "albedo.data"])
    assert a.shape == (24, 24, 24, 3)
    zero, one = (a == 0).all(-1).mean(), (a == 1).all(-1).mean()
    assert 0.1 < zero < 0.4 and 0.1 < one < 0.6, (zero, one)
    # albedo 0 and 1 both meet smoke, not only empty space
    assert ((a == 0).all(-1) & (d[..., 0] > 0)).any() and ((a == 1).all(-1) & (d[..., 0] > 0)).any()
    emitters = sorted(e.class_name() for e in scene.emitters())
    assert emitters == ["AreaLight", "ConstantBackgroundEmitter"], emitters
    assert MEDIUM + "scale" in params


def test_slab_smoke_has_an_empty_slab_between_dense_regions() -> None:
    d = grid_of("slab_smoke.xml", MEDIUM + "sigma_t.data")[..., 0]
    assert d.shape == (16, 16, 16)
    empty_layers = [z for z in range(16) if (d[z] == 0).all()]
    assert empty_layers == list(range(5, 11))
    assert abs(float((d == 0).mean()) - 0.375) <= 0.05
    assert (d[:5] > 0).all() and (d[11:] > 0).all()
    assert d[:5].max() > 0.5 and d[11:].max() > 0.5


def test_committed_grids_match_make_grids() -> None:
    """The .vol files in scenes/volume are what make_grids.py writes."""
    spec = importlib.util.spec_from_file_location("make_grids", VOLUME / "make_grids.py")
    make_grids = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_grids)
    for name, fraction in make_grids.SPARSE_FRACTIONS.items():
        np.testing.assert_array_equal(voxels.read_vol(VOLUME / name)[..., 0], make_grids.sparse(fraction))
    np.testing.assert_array_equal(voxels.read_vol(VOLUME / "sparse_albedo.vol"), make_grids.sparse_albedo())
    np.testing.assert_array_equal(voxels.read_vol(VOLUME / "slab_density.vol")[..., 0], make_grids.slab())
