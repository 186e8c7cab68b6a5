"""pbdr_volume vs Mitsuba's prbvolpath: time per reverse-mode gradient and error vs FD.

    python scripts/bench_volume.py [--res 32] [--spp 64] [--seeds 8] [--fd-spp 1024]
        [--fd-seeds 16] [--no-blocks] [--only NAME ...]

Both integrators compute d(Σ W·I)/dθ in reverse mode (render_backward) on the
same scene, spp and machine, seed by seed, alternating which goes first. W is
the indicator of one 8x8-pixel block (every channel), one gradient per block,
so each seed gives the derivative's block sums; their sum is the derivative
of the image total (W = 1). With ``--no-blocks`` one W = 1 gradient per seed
(no block error). The reference is central FD of ``volpath`` with common
random numbers. Errors are ``pbdr.compare``'s: relative error and z of the
totals, and the 8x8 block error with the error that noise alone would give.
Times are medians over all gradients after one warm-up (JIT) per integrator.

Scenes (scenes/volume): a homogeneous medium; smooth heterogeneous smoke; smoke
in a box with a saturated core (a third of the voxels at the grid maximum,
Mitsuba's majorant); the same box with a uniform grid; the box's density scale;
the density scale of a sparse grid (half the voxels empty) under an area and an
environment light; a smooth ball moving inside the smoke.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import mitsuba as mi
import numpy as np

import pbdr
from pbdr.validate import BLOCK, Estimate, compare

MEDIUM = "smoke.interior_medium"


@dataclass
class Case:
    name: str
    scene: str
    param: str
    eps: float
    defines: dict
    translate: tuple | None = None
    integrators: tuple = ("pbdr_volume", "prbvolpath")


CASES = [
    Case("homogeneous", "homogeneous.xml", f"{MEDIUM}.sigma_t.value.value", 0.02, {}),
    Case("smoke", "smoke.xml", f"{MEDIUM}.sigma_t.data", 0.01, {}),
    Case("smoke_box", "smoke_box.xml", f"{MEDIUM}.sigma_t.data", 0.01, {}),
    Case("smoke_box uniform", "smoke_box.xml", f"{MEDIUM}.sigma_t.data", 0.01,
         {"density": "uniform.vol", "scale": "2"}),
    Case("smoke_box scale", "smoke_box.xml", f"{MEDIUM}.scale", 0.2, {}),
    # Half the voxels exactly empty, albedo 0 and 1 in places, area + environment light. The
    # density scale keeps empty voxels empty, so central differences stay in the domain.
    Case("sparse scale", "sparse_smoke.xml", f"{MEDIUM}.scale", 0.2, {}),
    # A lit smooth-shaded ball inside the smoke moving towards the camera (boundary terms,
    # flight ends, dragged vertices). prbvolpath is left out: in reverse mode on this scene
    # Dr.Jit aborts the process compiling its kernel ("Instruction does not dominate all uses").
    Case("ball in smoke", "smooth_ball_medium.xml", "ball.vertex_positions", 0.002, {},
         (0.0, 0.32, 0.95), ("pbdr_volume",)),
]


def block_weights(res: int, blocks: bool, channels: int) -> list[np.ndarray]:
    if not blocks:
        return [np.ones((res, res, channels), dtype=np.float32)]
    out = []
    for by in range(0, res, BLOCK):
        for bx in range(0, res, BLOCK):
            w = np.zeros((res, res, channels), dtype=np.float32)
            w[by:by + BLOCK, bx:bx + BLOCK] = 1
            out.append(w)
    return out


def as_block_image(values: np.ndarray, res: int, blocks: bool) -> np.ndarray:
    """Block sums as an image whose 8x8 block sums are those values (for pbdr.compare)."""
    img = np.zeros((res, res, 1), dtype=np.float64)
    if not blocks:
        img[0, 0, 0] = values[0]
        return img
    nb = -(-res // BLOCK)
    for i, v in enumerate(values):
        img[(i // nb) * BLOCK, (i % nb) * BLOCK, 0] = v
    return img


def run_case(case: Case, args: argparse.Namespace) -> dict:
    defines = {"res": args.res, **case.defines}
    scene = pbdr.load_scene(f"scenes/volume/{case.scene}", defines)
    p = pbdr.Perturbation.of(pbdr.scene_params(scene), case.param, translate=case.translate)
    fd = pbdr.finite_differences(scene, p, case.eps, args.fd_spp, seeds=args.fd_seeds, progress=True)
    fd_img = fd.samples.sum(axis=-1, keepdims=True)
    if not args.blocks:
        fd_img = np.array([as_block_image([s.sum(dtype=np.float64)], args.res, False) for s in fd_img])
    channels = fd.samples.shape[-1]
    weights = block_weights(args.res, args.blocks, channels)
    names = case.integrators
    integrators = {n: mi.load_dict({"type": n, "max_depth": args.max_depth}) for n in names}
    for it in integrators.values():                                   # JIT warm-up
        pbdr.total_derivative(scene, p, args.spp, 999, it, weights=weights[0])
    values = {n: [] for n in names}
    times = {n: [] for n in names}
    for seed in range(args.seeds):
        order = names if seed % 2 == 0 else names[::-1]
        for n in order:
            row = []
            for w in weights:
                t0 = time.perf_counter()
                row.append(pbdr.total_derivative(scene, p, args.spp, 100 + seed, integrators[n], weights=w))
                times[n].append(time.perf_counter() - t0)
            values[n].append(as_block_image(row, args.res, args.blocks))
    out = {"case": case, "fd": Estimate(fd_img)}
    for n in names:
        out[n] = (float(np.median(times[n])), compare(Estimate(np.stack(values[n])), out["fd"]))
    return out


def table(results: list[dict], args: argparse.Namespace) -> str:
    lines = [f"{args.res}x{args.res}, {args.spp} spp, max_depth {args.max_depth}, {args.seeds} seeds; "
             f"FD: volpath, {args.fd_spp} spp x {args.fd_seeds} seeds, central, common random numbers",
             "",
             "| scene | FD total | integrator | s/gradient | ratio | total | rel. error | z | "
             "block error (noise) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        case = r["case"]
        base = r["prbvolpath"][0] if "prbvolpath" in r else None
        for i, n in enumerate(case.integrators):
            t, rep = r[n]
            ratio = f"{t / base:.2f}" if base else "-"
            block = f"{rep.block_error:.1%} ({rep.block_noise:.1%})" if args.blocks else "-"
            head = (f"{case.name} (`{case.param.split('.', 2)[-1]}`) | {rep.fd_total:+.4g} ± {rep.fd_se:.2g}"
                    if i == 0 else " | ")
            lines.append(f"| {head} | {n} | {t:.3f} | {ratio} | {rep.grad_total:+.4g} ± "
                         f"{rep.grad_se:.2g} | {rep.rel_error:.1%} | {rep.z:+.1f} | {block} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--spp", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--fd-spp", type=int, default=1024)
    ap.add_argument("--fd-seeds", type=int, default=16)
    ap.add_argument("--max-depth", type=int, default=4)
    ap.add_argument("--no-blocks", dest="blocks", action="store_false",
                    help="one W = 1 gradient per seed (no block error)")
    ap.add_argument("--only", nargs="*", default=None, help="case names to run")
    args = ap.parse_args()

    pbdr.set_variant(None)
    results = []
    for case in CASES:
        if args.only and case.name not in args.only:
            continue
        results.append(run_case(case, args))
        print("\n".join(table(results[-1:], args).splitlines()[4:]), flush=True)   # the case's rows
    print()
    print(table(results, args))


if __name__ == "__main__":
    main()
