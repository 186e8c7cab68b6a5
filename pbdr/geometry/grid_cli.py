"""``pbdr grid``: voxel grids from NumPy, and smoke scenes around them.

    pbdr grid convert IN.(npy|vol) -o OUT.(vol|npy) [--force]
    pbdr grid scene DENSITY.(npy|vol) -o SCENE.xml [--albedo A.(npy|vol) | --albedo-value X]
                    [--scale S] [--env RADIANCE] [--res N] [--force]

Both read and write ``.npy`` (NumPy) and ``.vol`` (Mitsuba) grids. Arrays are
``(Z, Y, X)`` or ``(Z, Y, X, C)`` with 1 or 3 channels, stored as float32:
the layout of :mod:`pbdr.geometry.voxels` and of ``mi.VolumeGrid``. A
one-channel grid is written to ``.npy`` as ``(Z, Y, X)``.

``grid scene`` writes, beside ``SCENE.xml``, the grids as ``.vol`` files and
a scene in the conventions of ``scenes/volume/smoke.xml``: a ``cube`` (id
``smoke``) with a null BSDF around a ``heterogeneous`` medium whose
``gridvolume`` sigma_t (and albedo) read those files, a diffuse floor, a
square area light (and, with ``--env``, a ``constant`` environment), a
perspective camera and ``volpath``. The box takes the grid's proportions,
its longest side 1. It prints the medium's ``mi.traverse`` keys.

From Python: :func:`read_grid`, :func:`write_grid`, :func:`check_density`,
:func:`check_albedo`, :func:`smoke_scene_xml`, :func:`write_smoke_scene`.
"""
from __future__ import annotations

import argparse
import os
from typing import Sequence
from xml.sax.saxutils import quoteattr

import numpy as np

from ..cli import add_command, positive_int, variant_arg
from ..errors import PbdrError, note, one_line

__all__ = ["read_grid", "write_grid", "check_density", "check_albedo", "smoke_scene_xml",
           "write_smoke_scene", "medium_keys"]

GRID_FORMATS = (".npy", ".vol")
"""The file extensions ``pbdr grid`` reads and writes."""

FORMATS_HELP = (".npy (NumPy) and .vol (Mitsuba) grids are read and written; arrays are (Z, Y, X) or "
                "(Z, Y, X, C) with C = 1 or 3, stored as float32")


def grid_format(path: str | os.PathLike, role: str = "grid") -> str:
    """``.npy`` or ``.vol`` from the file name (any case); PbdrError otherwise."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in GRID_FORMATS:
        raise PbdrError(f"{os.fspath(path)}: unknown {role} format '{ext or '(none)'}' "
                        f"(expected .npy or .vol)")
    return ext


def first_index(mask: np.ndarray) -> str:
    """``(z, y, x[, c])`` of the first True in ``mask``, as text."""
    return str(tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape)))


def checked_array(values: np.ndarray, path: str) -> np.ndarray:
    """``values`` as a float32 (Z, Y, X, C) array with C = 1 or 3, finite; the
    errors name ``path``."""
    a = np.asarray(values)
    if a.dtype.kind not in "biuf":
        raise PbdrError(f"{path}: expected a numeric array, got dtype {a.dtype}")
    shape = tuple(int(n) for n in a.shape)
    if not (a.ndim == 3 or (a.ndim == 4 and a.shape[3] in (1, 3))) or a.size == 0:
        raise PbdrError(f"{path}: a grid is (Z, Y, X) or (Z, Y, X, C) with C = 1 or 3, "
                        f"got shape {shape}")
    bad = ~np.isfinite(a) if a.dtype.kind == "f" else None
    if bad is not None and bad.any():
        raise PbdrError(f"{path}: {int(bad.sum())} of {a.size} values are not finite (NaN or inf), "
                        f"the first at {first_index(bad)} (z, y, x[, c])")
    with np.errstate(over="ignore"):
        f = np.ascontiguousarray(a, dtype=np.float32)
    bad = ~np.isfinite(f)
    if bad.any():
        raise PbdrError(f"{path}: {int(bad.sum())} of {a.size} values overflow float32, "
                        f"the first at {first_index(bad)} (z, y, x[, c])")
    return f if f.ndim == 4 else f[..., None]


def read_grid(path: str | os.PathLike) -> np.ndarray:
    """Read a ``.npy`` or ``.vol`` grid as a float32 (Z, Y, X, C) array, C = 1 or 3.

    Raises PbdrError (one line, naming the file) for a missing or unreadable
    file, an unknown extension, a bad shape or dtype, or non-finite values.
    """
    path = os.fspath(path)
    ext = grid_format(path)
    if not os.path.isfile(path):
        raise PbdrError(f"grid file not found: {path}")
    if ext == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except Exception as exc:   # ValueError for pickles and bad headers, OSError, EOFError, ...
            why = one_line(exc)
            if "pickle" in why:        # not a .npy file at all, or an array of Python objects
                why = "not a NumPy array file (or one of Python objects, which are not loaded)"
            raise PbdrError(f"cannot read {path}: {why}") from None
        if not isinstance(values, np.ndarray):
            raise PbdrError(f"cannot read {path}: not a single NumPy array")
    else:
        from . import voxels

        try:
            values = voxels.read_vol(path)
        except PbdrError as exc:
            raise PbdrError(one_line(exc)) from None
    return checked_array(values, path)


def write_grid(path: str | os.PathLike, values: np.ndarray) -> None:
    """Write a (Z, Y, X[, C]) grid as ``.npy`` or ``.vol`` (by extension), atomically.

    Values are stored as float32; a one-channel grid goes to ``.npy`` as
    (Z, Y, X). Does not check whether ``path`` exists.
    """
    from ..imageio import atomic_path

    path = os.fspath(path)
    ext = grid_format(path, "output")
    a = checked_array(values, path)
    with atomic_path(path) as tmp:
        if ext == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, a[..., 0] if a.shape[3] == 1 else a)
        else:
            from . import voxels

            voxels.write_vol(tmp, a)


def count_text(mask: np.ndarray, what: str) -> str:
    """``"k of n what"`` for the True entries of ``mask``."""
    return f"{int(mask.sum())} of {mask.size} {what}"


def check_density(values: np.ndarray, path: str) -> np.ndarray:
    """A density (sigma_t) grid: one channel, no negative voxel; returns (Z, Y, X, 1)."""
    a = checked_array(values, path)
    if a.shape[3] != 1:
        raise PbdrError(f"{path}: a density grid has 1 channel, got {a.shape[3]}")
    neg = a[..., 0] < 0
    if neg.any():
        raise PbdrError(f"{path}: {count_text(neg, 'voxels')} of the density are negative "
                        f"(min {float(a.min()):.4g}, the first at {first_index(neg)} (z, y, x)); "
                        f"a density must be >= 0")
    return a


def check_albedo(values: np.ndarray, path: str) -> np.ndarray:
    """An albedo grid: 1 or 3 channels, every value in [0, 1]; returns (Z, Y, X, C)."""
    a = checked_array(values, path)
    out = (a < 0) | (a > 1)
    if out.any():
        raise PbdrError(f"{path}: {count_text(out, 'values')} of the albedo are outside [0, 1] "
                        f"(min {float(a.min()):.4g}, max {float(a.max()):.4g}, the first at "
                        f"{first_index(out)} (z, y, x, c)); an albedo must lie in [0, 1]")
    return a


def fmt(x: float) -> str:
    """A number for XML, to 7 significant digits (as exact as float32)."""
    return f"{float(x):.7g}"


def box_size(shape: Sequence[int]) -> tuple[float, float, float]:
    """(x, y, z) extent of the box for a (Z, Y, X, ...) grid: its proportions, longest side 1."""
    z, y, x = (int(n) for n in shape[:3])
    m = max(x, y, z)
    return x / m, y / m, z / m


def smoke_scene_xml(density_file: str, shape: Sequence[int], albedo_file: str | None = None,
                    albedo_value: float = 0.8, scale: float = 10.0,
                    env: Sequence[float] | None = None, res: int = 64, spp: int = 64,
                    max_depth: int = 4, comment: str | None = None) -> str:
    """The XML of a smoke box reading ``density_file`` (and ``albedo_file``, else a
    constant ``albedo_value``), for a density grid of ``shape`` (Z, Y, X).

    File names are written as the ``$density`` (``$albedo``) defaults, relative
    to the scene file. ``env`` (one value or RGB) adds a ``constant``
    environment emitter with id ``env``. ``res``, ``spp``, ``max_depth`` and
    ``scale`` become ``$`` defaults. ``comment``, if given, is added to the
    scene's opening comment (what the scene is for).
    """
    for name in (density_file, albedo_file):
        if name is not None and "$" in name:
            raise PbdrError(f"grid file name '{name}' contains '$', which Mitsuba's XML reads as a default")
    if comment is not None and ("--" in comment or comment.endswith("-")):
        raise PbdrError("an XML comment cannot hold '--' or end with '-'")
    note_text = "" if comment is None else "\n     " + comment.strip().replace("\n", "\n     ")
    sx, sy, sz = box_size(shape)
    grid_to_world = (f'<transform name="to_world"><scale x="{fmt(sx)}" y="{fmt(sy)}" z="{fmt(sz)}"/>'
                     f'<translate x="{fmt(-sx / 2)}" y="0" z="{fmt(-sz / 2)}"/></transform>')
    zyx = "x".join(str(int(n)) for n in shape[:3])
    keys = ["smoke.interior_medium.sigma_t.data"]
    defaults = [f'    <default name="density" value={quoteattr(density_file)}/>']
    if albedo_file is not None:
        keys.append("smoke.interior_medium.albedo.data")
        defaults.append(f'    <default name="albedo" value={quoteattr(albedo_file)}/>')
        albedo = ('            <volume type="gridvolume" name="albedo">\n'
                  '                <string name="filename" value="$albedo"/>\n'
                  f'                {grid_to_world}\n'
                  '            </volume>')
        albedo_text = "albedo $albedo"
    else:
        keys.append("smoke.interior_medium.albedo.value.value")
        albedo = f'            <float name="albedo" value="{fmt(albedo_value)}"/>'
        albedo_text = f"constant albedo {fmt(albedo_value)}"
    keys.append("smoke.interior_medium.scale")
    keys += ["floor.bsdf.reflectance.value", "light.emitter.radiance.value"]
    env_xml, env_text = "", ""
    if env is not None:
        keys.append("env.radiance.value")
        rgb = ", ".join(fmt(v) for v in env)
        env_xml = f'\n    <emitter type="constant" id="env"><rgb name="radiance" value="{rgb}"/></emitter>'
        env_text = " and a constant environment"
    # Camera and light: a box of longest side 1 on the floor, seen from the front, a
    # little to the right and above; the light above, in front, to the left.
    ty = fmt(0.45 * sy)
    return f"""<?xml version="1.0" encoding="utf-8"?>
<!-- Smoke in a box, written by `pbdr grid scene`: a heterogeneous medium
     (gridvolume sigma_t $density, {zyx} (z, y, x); {albedo_text}) inside an
     index-matched cube of {fmt(sx)} x {fmt(sy)} x {fmt(sz)} (x, y, z), over a
     diffuse floor, lit by a square area light{env_text}.{note_text}
     Keys (mi.traverse): {(',' + chr(10) + '     ').join(keys)}. -->
<scene version="3.0.0">
    <default name="res" value="{int(res)}"/>
    <default name="spp" value="{int(spp)}"/>
    <default name="max_depth" value="{int(max_depth)}"/>
    <default name="scale" value="{fmt(scale)}"/>
{chr(10).join(defaults)}

    <integrator type="volpath">
        <integer name="max_depth" value="$max_depth"/>
    </integrator>

    <sensor type="perspective">
        <float name="fov" value="35"/>
        <transform name="to_world">
            <lookat origin="0.9, 1.5, 3.2" target="0, {ty}, 0" up="0, 1, 0"/>
        </transform>
        <sampler type="independent"><integer name="sample_count" value="$spp"/></sampler>
        <film type="hdrfilm">
            <integer name="width" value="$res"/>
            <integer name="height" value="$res"/>
            <string name="pixel_format" value="rgb"/>
            <rfilter type="box"/>
            <boolean name="sample_border" value="true"/>
        </film>
    </sensor>

    <shape type="rectangle" id="floor">
        <transform name="to_world"><scale value="2"/><rotate x="1" angle="-90"/></transform>
        <bsdf type="diffuse"><rgb name="reflectance" value="0.4, 0.4, 0.4"/></bsdf>
    </shape>

    <shape type="cube" id="smoke">
        <!-- the bottom face 0.002 below the floor, not in its plane (coplanar, ray
             hits on the two are a toss-up: a black patch) -->
        <transform name="to_world">
            <scale x="{fmt(sx / 2)}" y="{fmt(sy / 2 + 0.001)}" z="{fmt(sz / 2)}"/><translate y="{fmt(sy / 2 - 0.001)}"/>
        </transform>
        <bsdf type="null"/>
        <medium type="heterogeneous" name="interior">
            <volume type="gridvolume" name="sigma_t">
                <string name="filename" value="$density"/>
                {grid_to_world}
            </volume>
{albedo}
            <float name="scale" value="$scale"/>
            <phase type="hg"><float name="g" value="0.3"/></phase>
        </medium>
    </shape>

    <shape type="rectangle" id="light">
        <transform name="to_world">
            <scale value="0.4"/><rotate x="1" angle="90"/><translate x="-0.6" y="2.0" z="0.6"/>
        </transform>
        <emitter type="area"><rgb name="radiance" value="30, 30, 30"/></emitter>
    </shape>{env_xml}
</scene>
"""


def medium_keys(scene) -> list[str]:
    """The ``mi.traverse`` keys of the smoke medium's differentiable parameters
    (``smoke.interior_medium.*``: its grids' ``.data`` or constant ``.value``, and ``scale``)."""
    import mitsuba as mi

    params = mi.traverse(scene)
    prefix = "smoke.interior_medium."
    keys = [k for k in params.keys() if k.startswith(prefix)
            and (k.endswith(".data") or k.endswith(".value") or k == prefix + "scale")]
    order = ("sigma_t", "albedo", "scale")
    return sorted(keys, key=lambda k: next((i for i, w in enumerate(order) if k[len(prefix):].startswith(w)),
                                           len(order)))


def write_smoke_scene(xml_path: str | os.PathLike, density: np.ndarray,
                      albedo: np.ndarray | float | None = None, *,
                      density_file: str | None = None, albedo_file: str | None = None,
                      force: bool = False, **xml_options) -> list[str]:
    """Write a smoke-box scene ``xml_path`` with its grid(s) as ``.vol`` files beside it.

    ``density`` is a (Z, Y, X[, 1]) array (>= 0); ``albedo`` a (Z, Y, X[, C])
    array in [0, 1], a number (a constant albedo) or None (0.8). The ``.vol``
    files are named ``density_file`` / ``albedo_file`` (default
    ``<stem>_density.vol`` / ``<stem>_albedo.vol``), in the scene's folder.
    ``xml_options`` go to :func:`smoke_scene_xml`. Refuses to replace any
    existing file unless ``force``; every write is atomic, the XML last.
    Returns the paths written.
    """
    xml_path = os.fspath(xml_path)
    if not xml_path.lower().endswith(".xml"):
        raise PbdrError(f"scene output must be an .xml file, got '{xml_path}'")
    folder = os.path.dirname(xml_path)
    stem = os.path.splitext(os.path.basename(xml_path))[0]
    density_file = density_file or f"{stem}_density.vol"
    d = check_density(density, density_file)
    grids = [(density_file, d)]
    if isinstance(albedo, np.ndarray):
        albedo_file = albedo_file or f"{stem}_albedo.vol"
        grids.append((albedo_file, check_albedo(albedo, albedo_file)))
        xml = smoke_scene_xml(density_file, d.shape, albedo_file=albedo_file, **xml_options)
    else:
        value = 0.8 if albedo is None else float(albedo)
        if not 0.0 <= value <= 1.0:
            raise PbdrError(f"an albedo must lie in [0, 1], got {value:g}")
        xml = smoke_scene_xml(density_file, d.shape, albedo_value=value, **xml_options)
    for name, _ in grids:
        if not name.lower().endswith(".vol") or os.path.dirname(name):
            raise PbdrError(f"grid file '{name}' must be a .vol file name in the scene's folder")
    outputs = [os.path.join(folder, name) for name, _ in grids] + [xml_path]
    existing = [p for p in outputs if os.path.exists(p)]
    if existing and not force:
        raise PbdrError(f"{existing[0]} already exists; pass --force to replace it")
    if not os.path.isdir(folder or "."):
        raise PbdrError(f"output folder does not exist: {folder}")
    from ..imageio import atomic_path

    for path, (_, values) in zip(outputs, grids):
        write_grid(path, values)
    with atomic_path(xml_path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(xml)
    return outputs


def register_subcommand(sub) -> None:
    """Add ``pbdr grid`` (``convert``, ``scene``) to the ``pbdr`` parser."""
    p = add_command(sub, "grid", "voxel grids: convert .npy <-> .vol, make a smoke scene from a grid",
                    description="Voxel grids for participating media: convert between .npy and .vol, "
                                "and make a smoke-box scene from a density grid. " + FORMATS_HELP + ".")
    actions = p.add_subparsers(dest="grid_action", required=True, metavar="ACTION")

    q = add_command(actions, "convert", "convert a grid between .npy and .vol (either direction)",
                    description="Convert a voxel grid between .npy and .vol, in either direction, "
                                "checking its shape and values. " + FORMATS_HELP + "; a one-channel "
                                "grid is written to .npy as (Z, Y, X). Values are any finite numbers "
                                "(signed distances too).")
    q.add_argument("input", metavar="IN", help="input grid (.npy or .vol)")
    q.add_argument("-o", "--output", required=True, metavar="OUT", help="output grid (.npy or .vol)")
    q.add_argument("-f", "--force", action="store_true", help="replace an existing output")
    q.set_defaults(run=cmd_convert)

    q = add_command(actions, "scene", "write a smoke-box scene (XML + .vol grids) around a density grid",
                    description="Write SCENE.xml and, beside it, the grid(s) as .vol files "
                                "(SCENE_density.vol, SCENE_albedo.vol): smoke in an index-matched box "
                                "(id 'smoke', a heterogeneous medium with gridvolume sigma_t and "
                                "albedo), over a diffuse floor, lit by an area light (and with --env "
                                "a constant environment), rendered with volpath. The box takes the "
                                "grid's proportions, longest side 1. Prints the medium's mi.traverse "
                                "keys. " + FORMATS_HELP + "; a density is one channel, >= 0, an albedo "
                                "1 or 3 channels in [0, 1].")
    q.add_argument("density", metavar="DENSITY", help="density grid (.npy or .vol), 1 channel, >= 0")
    q.add_argument("-o", "--output", required=True, metavar="SCENE.xml", help="output scene")
    albedo = q.add_mutually_exclusive_group()
    albedo.add_argument("--albedo", default=None, metavar="A",
                        help="albedo grid (.npy or .vol), 1 or 3 channels in [0, 1]")
    albedo.add_argument("--albedo-value", type=float, default=None, metavar="X",
                        help="constant albedo in [0, 1] (default: 0.8 without --albedo)")
    q.add_argument("--scale", type=float, default=10.0,
                   help="density scale, sigma_t = scale * grid: the scene's $scale")
    q.add_argument("--env", default=None, metavar="RADIANCE",
                   help="add a constant environment emitter of this radiance (V or R,G,B)")
    q.add_argument("--res", type=positive_int, default=64, help="film width and height: the scene's $res")
    variant_arg(q)
    q.add_argument("-f", "--force", action="store_true", help="replace existing outputs")
    q.set_defaults(run=cmd_scene)


def cmd_convert(args: argparse.Namespace) -> int:
    """``pbdr grid convert``."""
    grid_format(args.input)
    grid_format(args.output, "output")
    if os.path.exists(args.output) and not args.force:
        raise PbdrError(f"{args.output} already exists; pass --force to replace it")
    values = read_grid(args.input)
    write_grid(args.output, values)
    z, y, x, c = values.shape
    print(f"wrote {args.output} ({z}x{y}x{x} (z, y, x), {c} channel{'s' if c > 1 else ''}, "
          f"values in [{float(values.min()):.4g}, {float(values.max()):.4g}])")
    return 0


def parse_radiance(text: str) -> tuple[float, ...]:
    """``V`` or ``R,G,B``, finite and >= 0."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise PbdrError(f"--env expects a radiance V or R,G,B, got '{text}'") from None
    if len(values) not in (1, 3) or not all(np.isfinite(values)) or min(values) < 0:
        raise PbdrError(f"--env expects a finite radiance >= 0, as V or R,G,B, got '{text}'")
    return values


def cmd_scene(args: argparse.Namespace) -> int:
    """``pbdr grid scene``."""
    import pbdr

    if not (np.isfinite(args.scale) and args.scale > 0):
        raise PbdrError(f"--scale must be a finite number > 0, got {args.scale}")
    env = parse_radiance(args.env) if args.env is not None else None
    if args.albedo_value is not None and not 0.0 <= args.albedo_value <= 1.0:
        raise PbdrError(f"--albedo-value must lie in [0, 1], got {args.albedo_value:g}")
    pbdr.set_variant(args.variant)
    density = check_density(read_grid(args.density), args.density)
    albedo = check_albedo(read_grid(args.albedo), args.albedo) if args.albedo else args.albedo_value
    written = write_smoke_scene(args.output, density, albedo, force=args.force, scale=args.scale,
                                env=env, res=args.res)
    scene = pbdr.load_scene(args.output)
    print(f"wrote {', '.join(written)}")
    print("keys to differentiate (mi.traverse):")
    for key in medium_keys(scene):
        print(f"  {key}")
    note(f"render it: pbdr render {args.output} -o OUT.exr  (-D scale=, -D res=, -D spp= change its defaults)")
    return 0
