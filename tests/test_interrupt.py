"""Ctrl-C anywhere in a pbdr command: ``pbdr: interrupted``, exit code 130, no traceback,
and an optimization keeps a checkpoint that ``--resume`` accepts.

Before pbdr.interrupts, a SIGINT that landed in Python code called back by Dr.Jit came out
as ``pbdr: error: RuntimeError: dr.while_loop(): encountered an exception`` (or dr.if_stmt's,
or ``drjit.custom(_RenderOp)``'s), exit 2; one swallowed by C++ (an enum attribute look-up
while Dr.Jit traces a loop) let the run go on as if nothing happened.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pbdr import interrupts
from pbdr.optimize import checkpoint
from conftest import ROOT, scene_path

PYTHON = sys.executable
SEED = 130
# 20 moments, in seconds after the start, over the phases of the run below. On a 2-core machine:
# `import pbdr` (Mitsuba, Dr.Jit) ends at ~0.35 s, main() sets up until ~0.6 s, the scene and the
# target render (its kernels) take until ~1.0 s, the first iteration's kernels until ~1.1 s, or
# ~1.7 s with an empty kernel cache (COLD), then ~60 ms per iteration. The earliest moments fall
# in `import pbdr` itself, which pbdr/__init__.py covers first thing
# (interrupts.exit_on_sigint_while_starting()).
PHASES = [(4, 0.03, 0.70),    # interpreter start-up, `import pbdr`, main(): arguments, variant, config
          (6, 0.60, 1.90),    # scene, target, first kernel compilations
          (10, 1.20, 5.00)]   # iterations
COLD = 1                      # the phase run with an empty kernel cache
EXIT_WITHIN_S = 5.0           # from the signal to the process's end (loaded 2-core machine)


def demo_config(tmp_path: Path) -> Path:
    """The bundled demo (pbdr_interior: its dr.while_loop / dr.if_stmt inside mi.render's
    dr.custom), cheaper: a 256-spp target. The only checkpoint before the end is the one
    written on interruption; an image after every iteration records which ones completed."""
    scene = scene_path("demo/scene.xml")
    text = (ROOT / "scenes" / "demo" / "config.toml").read_text()
    text = text.replace('scene = "scene.xml"', f'scene = "{scene}"').replace("spp = 1024", "spp = 256")
    head, _, _ = text.partition("[output]")
    path = tmp_path / "config.toml"
    path.write_text(head + "[output]\nimage_every = 1\ncheckpoint_every = 1000000\n")
    return path


def interrupt(argv: list[str], at: float, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Run ``python -m pbdr ARGV``, SIGINT it ``at`` seconds after the start; (exit code,
    stderr, seconds from the signal to the end)."""
    proc = subprocess.Popen([PYTHON, "-m", "pbdr", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    time.sleep(at)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err, time.monotonic() - sent


def assert_interrupted(code: int, err: str, took: float, what: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == interrupts.EXIT_INTERRUPTED, f"{what}: exit {code}\n{err}"
    assert lines and lines[-1] == "pbdr: interrupted", f"{what}:\n{err}"
    assert "Traceback" not in err, f"{what}:\n{err}"
    assert took < EXIT_WITHIN_S, f"{what}: ended {took:.1f} s after the signal"


def completed_iterations(out: Path) -> int:
    """The iterations whose image was written (each is written right after its step)."""
    return max((int(p.name[4:8]) for p in (out / "images").glob("iter*_s0.exr")), default=0)


def test_sigint_at_random_moments_of_optimize(tmp_path: Path) -> None:
    """20 runs of the demo, each sent SIGINT once; then one resumes from its checkpoint."""
    config = demo_config(tmp_path)
    rng = random.Random(SEED)
    moments = [(rng.uniform(lo, hi), phase == COLD) for phase, (count, lo, hi) in enumerate(PHASES)
               for _ in range(count)]
    resumable: list[tuple[Path, int]] = []
    for k, (at, cold) in enumerate(moments):
        out = tmp_path / f"run{k:02d}"
        # An empty kernel cache makes the first compilations long enough to land in.
        env = {"DRJIT_CACHE_DIR": str(tmp_path / f"cache{k:02d}")} if cold else None
        code, err, took = interrupt(["optimize", str(config), "--out", str(out), "--iterations", "1000",
                                     "--quiet"], at, env)
        what = f"run {k} (SIGINT at {at:.2f} s)"
        assert_interrupted(code, err, took, what)
        done = completed_iterations(out) if out.exists() else 0
        if (out / checkpoint.FILE).exists():
            ck = checkpoint.load(str(out))
            # the last completed iteration: at most one past the last image written
            assert done <= ck.iteration <= done + 1 and len(ck.losses) == ck.iteration, what
            if ck.iteration:
                resumable.append((out, ck.iteration))
        else:
            assert done == 0, f"{what}: {done} iteration(s) done but no checkpoint"
    assert len(resumable) >= 5, f"only {len(resumable)} runs were interrupted during the iterations"

    out, done = resumable[0]
    before = checkpoint.load(str(out)).losses
    proc = subprocess.run([PYTHON, "-m", "pbdr", "optimize", str(config), "--out", str(out), "--resume",
                           "--iterations", str(done + 2), "--quiet"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    after = checkpoint.load(str(out)).losses
    assert len(after) == done + 2 and after[:done] == before


@pytest.mark.parametrize("at", [0.7, 1.5, 2.5])
def test_sigint_during_check(at: float) -> None:
    """``pbdr check`` with pbdr_edge (boundary sampling loops, FD renders) on a small scene
    (~5.5 s uninterrupted)."""
    code, err, took = interrupt(["check", scene_path("shadow.xml"), "--param", "cube.vertex_positions",
                                 "--translate", "1,0,0", "--eps", "0.01", "--spp", "256", "--seeds", "16"], at)
    assert_interrupted(code, err, took, f"check, SIGINT at {at} s")


# The module itself, in this process: a swallowed interrupt comes back, an acknowledged one
# doesn't, main() reads what Dr.Jit wraps it in, and a second Ctrl-C exits at once.

def spin(seconds: float) -> None:
    """Python bytecode for a while: where a pending signal handler runs."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_swallowed_interrupt_is_delivered_again() -> None:
    with interrupts.sigint_recorded():
        try:
            signal.raise_signal(signal.SIGINT)
            spin(0.1)
        except KeyboardInterrupt:
            pass   # as C++ code that discards an error would
        assert interrupts.interrupted()
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            spin(5.0)
        assert time.monotonic() - start < 2 * interrupts.REDELIVER_S + 0.5
    assert signal.getsignal(signal.SIGINT) is not interrupts._on_sigint


def test_acknowledged_interrupt_is_not_delivered_again() -> None:
    with interrupts.sigint_recorded():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
            spin(0.1)
        interrupts.acknowledge()
        spin(3 * interrupts.REDELIVER_S)   # no KeyboardInterrupt: the clean-up runs to its end
    assert not interrupts.interrupted()  # a new command starts clean
    with interrupts.sigint_recorded():
        assert not interrupts.interrupted()


@pytest.mark.parametrize("swallow", [False, True])
def test_main_reads_a_wrapped_or_swallowed_interrupt(monkeypatch, capsys, swallow: bool) -> None:
    import pbdr.cli as cli

    def cmd_render(args) -> int:
        try:
            signal.raise_signal(signal.SIGINT)
            spin(0.1)
        except KeyboardInterrupt as exc:
            if not swallow:   # what dr.while_loop does with it
                raise RuntimeError("dr.while_loop(): encountered an exception (see above).") from exc
        interrupts.acknowledge()  # a finished command: no re-delivery while main() returns
        return 0

    monkeypatch.setattr(cli, "cmd_render", cmd_render)
    assert cli.main(["render", "x.xml", "-o", "x.exr"]) == 130
    assert capsys.readouterr().err == "pbdr: interrupted\n"


def test_second_sigint_exits_at_once() -> None:
    """The first Ctrl-C is handled by slow clean-up; the second ends the process: one line, 130."""
    code = ("import signal, time\n"
            "from pbdr import interrupts\n"
            "with interrupts.sigint_recorded():\n"
            "    try:\n"
            "        signal.raise_signal(signal.SIGINT); time.sleep(1)\n"
            "    except KeyboardInterrupt:\n"
            "        interrupts.acknowledge()\n"
            "        signal.raise_signal(signal.SIGINT); time.sleep(5)\n"
            "print('not reached')\n")
    start = time.monotonic()
    proc = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130 and proc.stderr == "pbdr: interrupted\n" and proc.stdout == ""
    assert time.monotonic() - start < 4.5


def test_exit_code_after_an_interrupt_in_string_exec(tmp_path: Path) -> None:
    """Under ``python -m``, CPython ends with SIGINT (exit -2) after a KeyboardInterrupt left an
    exec() of a string, even a caught one, unless something clears its mark: report() does."""
    (tmp_path / "interrupted_in_exec.py").write_text(
        "import signal, sys\n"
        "from pbdr import interrupts\n"
        "with interrupts.sigint_recorded():\n"
        "    try:\n"
        "        exec('signal.raise_signal(signal.SIGINT)')\n"
        "    except KeyboardInterrupt:\n"
        "        code = interrupts.report()\n"
        "sys.exit(code)\n")
    proc = subprocess.run([PYTHON, "-m", "interrupted_in_exec"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 130 and proc.stderr == "pbdr: interrupted\n", proc.stderr


def test_start_up_handler_of_the_command_exits_at_once() -> None:
    """What pbdr/__init__.py can install for Ctrl-C while the command imports Mitsuba."""
    code = ("import signal, sys, time\n"
            "sys.argv[0] = '/venv/bin/pbdr'   # as in the console script\n"
            "from pbdr import interrupts\n"
            "interrupts.exit_on_sigint_while_starting()\n"
            "signal.raise_signal(signal.SIGINT); time.sleep(5)\n")
    proc = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130 and proc.stderr == "pbdr: interrupted\n", proc.stderr


def test_outside_a_command_nothing_changes() -> None:
    interrupts.exit_on_sigint_while_starting()   # this process is not the pbdr command
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not interrupts.interrupted()
    interrupts.raise_if_interrupted()
    interrupts.acknowledge()
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
        spin(0.1)
    assert not interrupts.interrupted()
