"""Checkpoints: everything a resumed run needs to take exactly the steps an
uninterrupted one would (latents, Adam moments and step counts, the next
iteration, the loss history), written atomically so Ctrl-C or a crash at
any moment leaves either the previous checkpoint or the new one, never half.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from ..errors import PbdrError
from ..imageio import atomic_path

FILE = "checkpoint.npz"


@dataclass
class Checkpoint:
    iteration: int                                   # the next iteration to run
    latents: dict[str, np.ndarray]
    adam: dict[str, tuple[np.ndarray, np.ndarray, int]]
    losses: list[float]
    fingerprint: str                                 # the config it belongs to


def save(folder: str, ck: Checkpoint) -> str:
    path = os.path.join(folder, FILE)
    arrays: dict[str, np.ndarray] = {}
    meta = {"iteration": ck.iteration, "losses": ck.losses, "fingerprint": ck.fingerprint,
            "keys": list(ck.latents), "adam": {}}
    for i, (key, value) in enumerate(ck.latents.items()):
        arrays[f"latent_{i}"] = value
    for i, (key, (m, v, t)) in enumerate(ck.adam.items()):
        arrays[f"m_{i}"], arrays[f"v_{i}"] = m, v
        meta["adam"][key] = [i, t]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path


def load(folder: str) -> Checkpoint:
    path = os.path.join(folder, FILE)
    if not os.path.isfile(path):
        raise PbdrError(f"nothing to resume: no {FILE} in {folder}")
    try:
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            latents = {k: data[f"latent_{i}"] for i, k in enumerate(meta["keys"])}
            adam = {k: (data[f"m_{i}"], data[f"v_{i}"], t) for k, (i, t) in meta["adam"].items()}
    except (OSError, KeyError, ValueError) as exc:
        raise PbdrError(f"cannot read checkpoint {path}: {exc}") from None
    return Checkpoint(meta["iteration"], latents, adam, meta["losses"], meta["fingerprint"])
