"""Learning-rate schedule and the Adam optimizer, with state that checkpoints.

pbdr keeps its own small Adam instead of ``mi.ad.Adam`` so that the whole
optimizer state (moments and step counts) is plain arrays it can write to a
checkpoint and read back bit for bit: a resumed run then takes exactly the
steps an uninterrupted one would.
"""
from __future__ import annotations

import math
from typing import Any

import drjit as dr
import numpy as np

from .config import ScheduleSpec


def lr_factor(schedule: ScheduleSpec, iteration: int, iterations: int) -> float:
    """Multiplier of every learning rate at ``iteration`` (0-based)."""
    if schedule.type == "exponential":
        return schedule.gamma ** (iteration / max(1, iterations))
    if schedule.type == "step":
        return schedule.gamma ** (iteration // schedule.every)
    if schedule.type == "cosine":
        t = iteration / max(1, iterations - 1)
        return schedule.min_factor + (1 - schedule.min_factor) * 0.5 * (1 + math.cos(math.pi * t))
    return 1.0


class Adam:
    """Adam (Kingma & Ba 2015) over named Dr.Jit arrays of any type."""

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.state: dict[str, tuple[Any, Any, int]] = {}

    def step(self, name: str, x: Any, grad: Any, lr: float, uniform: bool = False) -> Any:
        """One update of ``x`` (detached) from its gradient; returns the new value.

        ``uniform``: one second moment (the largest) for the whole array, so
        that the step keeps the direction of the gradient (large steps).
        """
        m, v, t = self.state.get(name, (dr.zeros(type(x), dr.shape(x)), dr.zeros(type(x), dr.shape(x)), 0))
        t += 1
        grad = dr.select(dr.isfinite(grad), grad, 0.0)   # one NaN sample must not poison the run
        m = dr.fma(self.beta1, m, (1 - self.beta1) * grad)
        v = dr.fma(self.beta2, v, (1 - self.beta2) * dr.square(grad))
        lr_t = lr * math.sqrt(1 - self.beta2 ** t) / (1 - self.beta1 ** t)
        scale = dr.max(v) if uniform else v
        x = dr.detach(x) - lr_t * m / (dr.sqrt(scale) + self.eps)
        dr.eval(x, m, v)
        self.state[name] = (m, v, t)
        return x

    def export(self) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
        return {k: (np.array(m), np.array(v), t) for k, (m, v, t) in self.state.items()}

    def restore(self, saved: dict[str, tuple[np.ndarray, np.ndarray, int]], types: dict[str, type]) -> None:
        self.state = {k: (types[k](m), types[k](v), int(t)) for k, (m, v, t) in saved.items()}
