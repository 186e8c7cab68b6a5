"""``pbdr bench run``: every integrator on every case, each in its own worker
process (:mod:`pbdr.bench.worker`), scored against the cached references."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import note, one_line, show_progress
from .manifest import Case
from .refs import Reference
from .score import FAILED, OK, Score, score
from .worker import WARMUP_FACTOR

# Seconds a worker may take beyond its gradients: starting Python, importing Mitsuba, loading the scene.
STARTUP_ALLOWANCE = 120.0


@dataclass
class Outcome:
    """One integrator on one case: its score and (forward mode) its mean derivative image."""

    case: str
    integrator: str
    score: Score
    mean: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def worker_limit(timeout: float, seeds: int) -> float:
    """The wall-clock limit of one worker: a warm-up of at most ``WARMUP_FACTOR
    x timeout`` seconds and ``seeds`` gradients of at most ``timeout`` seconds
    each, plus :data:`STARTUP_ALLOWANCE`."""
    return timeout * (seeds + WARMUP_FACTOR) + STARTUP_ALLOWANCE


def run_worker(case: Case, integrator: str, spp: int, seeds: int, timeout: float,
               variant: str | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Start a worker for one integrator and case and wait for it (killed past
    :func:`worker_limit`); return its result manifest and arrays."""
    with tempfile.TemporaryDirectory(prefix="pbdr-bench-") as folder:
        out = os.path.join(folder, "result")
        job = {"case": asdict(case), "integrator": integrator, "spp": spp, "seeds": seeds,
               "timeout": timeout, "variant": variant, "out": out}
        with open(os.path.join(folder, "job.json"), "w", encoding="utf-8") as f:
            json.dump(job, f)
        limit = worker_limit(timeout, seeds)
        try:
            proc = subprocess.run([sys.executable, "-m", "pbdr.bench.worker", os.path.join(folder, "job.json")],
                                  capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            return {"status": FAILED, "reason": f"timed out: the worker ran past {limit:.0f} s "
                                                f"(limit {timeout:g} s per gradient)"}, {}
        if not os.path.isfile(out + ".json"):
            lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
            why = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
            last = f": {one_line(lines[-1], 200)}" if lines else ""
            return {"status": FAILED, "reason": f"the worker crashed ({why}){last}"}, {}
        with open(out + ".json", encoding="utf-8") as f:
            result = json.load(f)
        arrays: dict[str, np.ndarray] = {}
        if result.get("status") == OK:
            with np.load(out + ".npz") as data:
                arrays = {k: data[k] for k in data.files}
        return result, arrays


def outcome_of(case: Case, integrator: str, ref: Reference, result: dict[str, Any],
               arrays: dict[str, np.ndarray]) -> Outcome:
    """Score a worker's result against the case's reference."""
    from ..validate import Estimate

    if result.get("status") != OK:
        return Outcome(case.name, integrator, Score(status=result.get("status", FAILED),
                                                    reason=result.get("reason", "no reason given")))
    seconds = float(np.mean(arrays["times"]))
    if "samples" in arrays:
        grad = Estimate(arrays["samples"])
        if grad.samples.shape[1:] != ref.fd.samples.shape[1:]:
            return Outcome(case.name, integrator, Score(status=FAILED, reason=(
                f"image shape {grad.samples.shape[1:]} differs from the reference's {ref.fd.samples.shape[1:]}")))
        s = score(ref.fd, seconds, grad=grad)
        mean = grad.mean
    else:
        s = score(ref.fd, seconds, totals=arrays["totals"])
        mean = None
    s.warning = result.get("warning", "")
    return Outcome(case.name, integrator, s, mean, {"warmup": result.get("warmup")})


def run_bench(cases: list[Case], refs: dict[str, Reference], integrators: list[str], spp: int,
              seeds: int, timeout: float, variant: str | None = None,
              progress: bool = True) -> list[Outcome]:
    """Every integrator on every case (case by case), scored; one worker at a time."""
    from tqdm import tqdm

    jobs = [(c, name) for c in cases for name in integrators]
    outcomes = []
    bar = tqdm(jobs, desc="bench", unit="run", disable=not show_progress(progress))
    for case, name in bar:
        bar.set_postfix_str(f"{case.name} / {name}")
        result, arrays = run_worker(case, name, spp, seeds, timeout, variant)
        outcome = outcome_of(case, name, refs[case.name], result, arrays)
        s = outcome.score
        if s.status == OK:
            shown = f"block error {s.block_error:.1%}" if s.block_error is not None else f"z {s.z:+.2f}"
            note(f"{case.name} / {name}: {shown}, {s.seconds:.2f} s per gradient")
        else:
            note(f"{case.name} / {name}: {s.status}: {s.reason}")
        outcomes.append(outcome)
    return outcomes
