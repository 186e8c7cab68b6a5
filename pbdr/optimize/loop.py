"""The optimization loop behind ``pbdr optimize`` and ``pbdr.optimize(...)``.

One iteration: write every latent into the scene, render each sensor with
gradients (``mi.render`` with ``spp``/``spp_grad`` and seeds derived from the
iteration index), add the image loss and the regularizers, backpropagate,
take an Adam step, clamp. Seeds depend only on (config seed, iteration,
sensor) and the checkpoint holds the whole optimizer state, so a resumed run
takes the same steps as one that was never interrupted.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import drjit as dr
import mitsuba as mi
import numpy as np

from .. import interrupts
from ..errors import PbdrError, note, show_progress, warn
from ..imageio import diverging, read_image, sheet, signed_scale, tonemap, write_png, write_render
from ..render import check_spp, opaque_seed, render
from ..scene import (AUTO, auto_integrator_type, boundary_warning, load_scene, make_integrator, sdf_warning,
                     smooth_shading_warning)
from ..variant import ensure_variant
from . import checkpoint
from .config import OptimizeConfig, load_config
from .export import export_scene
from .losses import get_loss
from .plot import loss_plot
from .regularizers import make_regularizer
from .schedule import Adam, lr_factor
from .variables import Variable, make_variable

RUN_MARKERS = (checkpoint.FILE, "params.json", "loss.csv")
DISPLAY_SPP = 64        # spp of the initial/final images written for people to look at


@dataclass
class OptimizeResult:
    """What :func:`optimize` returns: the optimized values, the loss curve,
    the integrator used, the run folder and the time taken."""

    values: dict[str, list[float]]     # each [[param]] key -> its optimized numbers
    losses: list[float]                # loss per iteration (image loss + regularizers)
    integrator: str
    out_dir: str | None
    seconds: float


def choose_integrator(config: OptimizeConfig, scene: mi.Scene) -> tuple[str, mi.Integrator]:
    """The config's integrator, or (``integrator`` unset or ``"auto"``) the one
    :func:`pbdr.scene.auto_integrator_type` picks for the optimized keys:
    ``pbdr_volume`` with media, ``pbdr_reparam`` for SDF grids, ``pbdr_edge``
    for moving meshes and emitters, else ``pbdr_interior``."""
    name, props = config.integrator, dict(config.integrator_props)
    keys = [p.key for p in config.params]
    if name is None or name == AUTO:
        name, why = auto_integrator_type(scene, keys)
        note(f"integrator {name} (auto: {why})")
    integrator = make_integrator(scene, name, props=props)
    warn(boundary_warning(keys, integrator))
    warn(sdf_warning(scene, keys, integrator))
    return name, integrator


def fingerprint(config: OptimizeConfig) -> str:
    """What must not change between a run and its resumption (iterations and outputs may)."""
    d = asdict(config)
    for k in ("iterations", "out_dir", "source", "image_every", "checkpoint_every"):
        d.pop(k)
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare_out_dir(out: str, resume: bool, force: bool) -> None:
    """Refuse to mix two runs in one folder unless told to resume or replace it."""
    existing = [m for m in RUN_MARKERS if os.path.exists(os.path.join(out, m))]
    if resume:
        if not os.path.exists(os.path.join(out, checkpoint.FILE)):
            raise PbdrError(f"nothing to resume: no {checkpoint.FILE} in {out}")
    elif existing and not force:
        raise PbdrError(f"{out} already holds a run ({existing[0]}); pass --resume to continue it "
                        "or --force to replace it")
    elif existing:
        for m in RUN_MARKERS:
            if os.path.exists(os.path.join(out, m)):
                os.remove(os.path.join(out, m))
    os.makedirs(out, exist_ok=True)


def film_shape(scene: mi.Scene, sensor: int) -> tuple[int, int, int]:
    """(height, width, channels) of a sensor's film: the shape of its images."""
    film = scene.sensors()[sensor].film()
    size = film.crop_size()
    return int(size[1]), int(size[0]), int(film.base_channels_count())


def load_targets(config: OptimizeConfig, scene: mi.Scene, sensors: list[int], out: str | None,
                 resume: bool) -> list[np.ndarray]:
    """Reference images, one per sensor; saved in the run folder so a resume reuses them exactly."""
    saved = [os.path.join(out, f"target_s{s}.exr") for s in sensors] if out else []
    if resume and saved and all(os.path.isfile(p) for p in saved):
        images = [read_image(p) for p in saved]
    elif config.target.scene:
        target = load_scene(config.target.scene, {**config.defines, **config.target.defines})
        if len(target.sensors()) <= max(sensors):
            raise PbdrError(f"target scene {config.target.scene} has {len(target.sensors())} sensor(s), "
                            f"the optimization uses sensor {max(sensors)}")
        images = [render(target, check_spp(target, config.target.spp, s), seed=2**31 + s, sensor=s)
                  for s in sensors]
    else:
        if len(config.target.images) != len(sensors):
            raise PbdrError(f"[target] images lists {len(config.target.images)} image(s) but the "
                            f"optimization uses {len(sensors)} sensor(s); give one per sensor")
        images = [read_image(p) for p in config.target.images]
    for s, image, name in zip(sensors, images, config.target.images or [f"target sensor {s}" for s in sensors]):
        want = film_shape(scene, s)
        if image.shape != want:
            raise PbdrError(f"{name}: image is {image.shape[1]}x{image.shape[0]}x{image.shape[2]}, "
                            f"sensor {s}'s film is {want[1]}x{want[0]}x{want[2]}")
    if out and not (resume and all(os.path.isfile(p) for p in saved)):
        for p, image in zip(saved, images):
            write_render(p, image)
    return images


def write_losses(out: str, losses: list[float]) -> None:
    """``loss.csv`` and ``loss.png`` (the loss curve) in the run folder, atomically."""
    from ..imageio import atomic_path

    with atomic_path(os.path.join(out, "loss.csv")) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["iteration", "loss"])
            w.writerows((i, f"{v:.8g}") for i, v in enumerate(losses))
    loss_plot(os.path.join(out, "loss.png"), losses)


def write_json(path: str, data: Any) -> None:
    """``data`` as indented JSON at ``path``, atomically."""
    from ..imageio import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")


def comparison(out: str, sensors: list[int], rows: list[list[np.ndarray]]) -> None:
    """target | initial | final | final - target (with its colour bar), one
    row per sensor, in ``comparison.png``."""
    sheets = []
    for s, (target, initial, final) in zip(sensors, rows):
        scale = signed_scale(final - target, target)
        sheets.append(sheet([tonemap(target), tonemap(initial), tonemap(final), diverging(final - target, scale)],
                            [f"target (sensor {s})", "initial", "final", "final - target"], scale, "radiance"))
    width = max(s.shape[1] for s in sheets)
    padded = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in sheets]
    write_png(os.path.join(out, "comparison.png"), np.concatenate(padded, axis=0))


class Optimization:
    """The state of one run; ``run()`` does the iterations and writes the outputs."""

    def __init__(self, config: OptimizeConfig, resume: bool, force: bool) -> None:
        ensure_variant()
        self.config, self.out = config, config.out_dir
        if resume and not self.out:
            raise PbdrError("--resume needs an output folder ([output] dir or --out)")
        if self.out:
            prepare_out_dir(self.out, resume, force)
        self.scene = load_scene(config.scene, config.defines)
        self.params = mi.traverse(self.scene)
        self.variables: list[Variable] = [make_variable(self.params, p) for p in config.params]
        by_key = {v.key: v for v in self.variables}
        self.regularizers = []
        for r in config.regularizers:
            if r.key not in by_key:
                raise PbdrError(f"[[regularizer]] key '{r.key}' is not one of the [[param]] keys")
            self.regularizers.append((by_key[r.key], make_regularizer(self.params, r)))
        n = len(self.scene.sensors())
        self.sensors = list(config.sensors) if config.sensors is not None else list(range(n))
        if max(self.sensors) >= n:
            raise PbdrError(f"sensor {max(self.sensors)} does not exist; the scene has {n} sensor(s)")
        for s in self.sensors:
            check_spp(self.scene, config.spp, s)
        self.integrator_name, self.integrator = choose_integrator(config, self.scene)
        warn(smooth_shading_warning(self.scene, [v.key for v in self.variables], self.integrator))
        self.loss_fn = get_loss(config.loss, config.loss_levels)
        self.targets = load_targets(config, self.scene, self.sensors, self.out, resume)
        self.target_tensors = [mi.TensorXf(t) for t in self.targets]
        self.adam, self.start, self.losses = Adam(), 0, []
        if resume:
            self.restore(checkpoint.load(self.out))
        self.snapshot = self.make_checkpoint()

    def restore(self, ck: checkpoint.Checkpoint) -> None:
        """Continue from a checkpoint of the same config (values, Adam state, losses)."""
        if ck.fingerprint != fingerprint(self.config):
            raise PbdrError(f"the checkpoint in {self.out} belongs to a different config; "
                            "use another [output] dir or --force to start over")
        for v in self.variables:
            v.from_numpy(ck.latents[v.key])
        self.adam.restore(ck.adam, {v.key: type(v.latent) for v in self.variables})
        self.start, self.losses = ck.iteration, list(ck.losses)

    def make_checkpoint(self) -> checkpoint.Checkpoint:
        """The state after the last completed iteration."""
        return checkpoint.Checkpoint(self.start, {v.key: v.to_numpy() for v in self.variables},
                                     self.adam.export(), list(self.losses), fingerprint(self.config))

    def set_scene(self, grad: bool) -> None:
        """Write the variables into the scene, attached to the AD graph when ``grad``."""
        for v in self.variables:
            v.apply(self.params, grad)
        self.params.update()

    def display(self, seed: int) -> list[np.ndarray]:
        """Images of the current state for people to look at, one per sensor."""
        self.set_scene(grad=False)
        return [render(self.scene, DISPLAY_SPP, seed=seed + s, integrator=self.integrator, sensor=s)
                for s in self.sensors]

    def step(self, it: int) -> tuple[float, list[mi.TensorXf]]:
        """One iteration; returns its loss and the rendered (detached) images."""
        c, total, images = self.config, 0.0, []
        # The scene is written once (large-steps solve, BVH rebuild) and every
        # sensor's loss goes back through it in one backward pass.
        self.set_scene(grad=True)
        loss_sum = mi.Float(0.0)
        for j, s in enumerate(self.sensors):
            k = 2 * (it * len(self.sensors) + j) + c.seed
            image = mi.render(self.scene, self.params, sensor=s, integrator=self.integrator,
                              spp=c.spp, spp_grad=c.spp_grad or c.spp,
                              seed=opaque_seed(k % 2**32), seed_grad=opaque_seed((k + 1) % 2**32))
            loss = self.loss_fn(image, self.target_tensors[j]) / len(self.sensors)
            loss_sum = loss_sum + loss
            total += float(loss[0])
            images.append(dr.detach(image))
        dr.backward(loss_sum)
        for var, term in self.regularizers:
            dr.enable_grad(var.latent)
            penalty = term(var.scene_value())
            dr.backward(penalty)
            total += float(penalty[0])
        factor = lr_factor(c.schedule, it, c.iterations)
        for v in self.variables:
            v.latent = self.adam.step(v.key, v.latent, dr.grad(v.latent), v.spec.lr * factor,
                                     uniform=v.uniform_adam)
            v.clamp()
        return total, images

    def run(self, progress: bool = True,
            callback: Callable[[int, float], None] | None = None) -> OptimizeResult:
        """Iterate to ``config.iterations`` and write the outputs; on an
        exception or Ctrl-C, save the last completed iteration first."""
        from tqdm import tqdm

        c, out, t0 = self.config, self.out, time.perf_counter()
        initial = None
        if out:
            paths = [os.path.join(out, f"initial_s{s}.exr") for s in self.sensors]
            if self.start > 0 and all(os.path.isfile(p) for p in paths):
                initial = [read_image(p) for p in paths]
            else:
                initial = self.display(seed=7)
                for p, image in zip(paths, initial):
                    write_render(p, image)
        bar = tqdm(total=c.iterations, initial=self.start, disable=not show_progress(progress), unit="it",
                   desc="optimize", dynamic_ncols=True)
        try:
            for it in range(self.start, c.iterations):
                loss, images = self.step(it)
                interrupts.raise_if_interrupted()  # Ctrl-C that Dr.Jit swallowed: drop this step
                if not np.isfinite(loss):
                    raise PbdrError(f"loss is not finite at iteration {it}; lower the learning rates")
                self.losses.append(loss)
                self.start = it + 1
                self.snapshot = self.make_checkpoint()
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}")
                if out and self.start % c.image_every == 0:
                    for s, image in zip(self.sensors, images):
                        write_render(os.path.join(out, "images", f"iter{self.start:04d}_s{s}.exr"),
                                     np.array(image))
                if out and self.start % c.checkpoint_every == 0:
                    checkpoint.save(out, self.snapshot)
                if callback is not None:
                    callback(it, loss)
        except BaseException:   # also Ctrl-C that Dr.Jit wrapped in a RuntimeError
            interrupts.acknowledge()  # save first: no re-delivered Ctrl-C cuts the saving short
            if out:   # Ctrl-C or a crash: keep the last completed iteration
                checkpoint.save(out, self.snapshot)
                write_losses(out, self.losses)
            raise
        finally:
            bar.close()
        self.set_scene(grad=False)
        values = {v.key: v.numbers() for v in self.variables}
        if out:
            checkpoint.save(out, self.snapshot)
            write_json(os.path.join(out, "params.json"), values)
            write_losses(out, self.losses)
            final = self.display(seed=7)
            for s, image in zip(self.sensors, final):
                write_render(os.path.join(out, f"final_s{s}.exr"), image)
            comparison(out, self.sensors, [[t, i, f] for t, i, f in zip(self.targets, initial, final)])
            self.set_scene(grad=False)
            export_scene(c.scene, self.scene, self.params, self.variables, os.path.join(out, "scene"),
                         c.defines)
        return OptimizeResult(values, list(self.losses), self.integrator_name, out,
                              time.perf_counter() - t0)


def optimize(config: OptimizeConfig | str | os.PathLike, *, iterations: int | None = None,
             out_dir: str | None = None, resume: bool = False, force: bool = False,
             progress: bool = True, callback: Callable[[int, float], None] | None = None) -> OptimizeResult:
    """Run an inverse-rendering optimization from a config (file path or OptimizeConfig).

    ``iterations``/``out_dir`` override the config. ``callback(iteration, loss)``
    runs after every step (raising KeyboardInterrupt there acts like Ctrl-C).
    """
    if not isinstance(config, OptimizeConfig):
        config = load_config(config)
    if iterations is not None:
        if iterations <= 0:
            raise PbdrError(f"iterations must be a positive integer, got {iterations}")
        config = replace(config, iterations=iterations)
    if out_dir is not None:
        config = replace(config, out_dir=os.path.abspath(out_dir))
    try:
        run = Optimization(config, resume, force)
    except PbdrError as exc:   # name the config whose scene, keys or targets are wrong
        raise PbdrError(f"{config.source}: {exc}") from None
    return run.run(progress, callback)
