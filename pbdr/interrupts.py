"""Ctrl-C for the ``pbdr`` command: ``pbdr: interrupted``, exit code 130, wherever it lands.

Python turns SIGINT into a KeyboardInterrupt at the next bytecode the main
thread runs. In pbdr that bytecode is often Python code that Dr.Jit's C++
called back (a ``dr.while_loop`` / ``dr.if_stmt`` body traced by
``@dr.syntax``, ``mi.render``'s ``dr.custom`` operation), and the exception
comes back as a RuntimeError ("dr.while_loop(): encountered an exception");
or it lands in a Python call whose error C++ code throws away (Dr.Jit asks an
``enum`` class for an attribute while it traces a loop, and a failed look-up
just means "no such attribute"), and it is gone.

So, while :func:`sigint_recorded` is active (``pbdr.cli.main`` runs every
command inside it), Ctrl-C is recorded before the KeyboardInterrupt is raised:

* :func:`interrupted` tells ``main()`` to read any exception, or a command
  that returns as if nothing happened, as the interrupt;
* :func:`raise_if_interrupted` re-raises a swallowed interrupt where a loop
  regains control (after each optimization step);
* a watchdog re-delivers a swallowed interrupt every :data:`REDELIVER_S`
  seconds until code that handles it calls :func:`acknowledge` (the
  optimizer, before it saves its checkpoint) or the command ends;
* a second Ctrl-C ends the process at once: ``pbdr: interrupted``, exit 130;
* errors of ``__del__`` methods are not printed from the interrupt on (in
  the pbdr command, to its end): an object whose ``__init__`` the
  KeyboardInterrupt cut short fails in its ``__del__`` (imageio's
  PillowPlugin does), after ``pbdr: interrupted``.

Outside it (pbdr used as a library) nothing changes: no handler is installed
and :func:`raise_if_interrupted` / :func:`acknowledge` do nothing.
"""
from __future__ import annotations

import _thread
import gc
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from types import FrameType
from typing import Any, Iterator

from .errors import stderr_line

EXIT_INTERRUPTED = 130   # what shells report for a command ended by SIGINT
MESSAGE = "pbdr: interrupted"
REDELIVER_S = 0.5        # how often a swallowed interrupt is raised again


class _State:
    """The one interrupt of the running command."""

    def __init__(self) -> None:
        self.active = False                      # inside sigint_recorded()
        self.at: float | None = None             # time.monotonic() of the first Ctrl-C
        self.acknowledged = False                # code that handles it has seen it
        self.redelivering = False                # the watchdog raised the pending SIGINT
        self.unraisablehook: Any = None          # sys.unraisablehook before the interrupt
        self.lock = threading.RLock()            # re-entrant: the handler may run inside a `with lock`
        self.stop = threading.Event()


_state = _State()


def interrupted() -> bool:
    """Whether Ctrl-C arrived during the running command."""
    return _state.at is not None


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if Ctrl-C arrived but its exception was swallowed."""
    if _state.at is not None:
        raise KeyboardInterrupt


def acknowledge() -> None:
    """Code that handles the interrupt (cleans up, then re-raises) has seen it:
    stop re-delivering it, so the clean-up runs to its end. No-op without one."""
    with _state.lock:
        if _state.at is not None:
            _state.acknowledged = True


def report() -> int:
    """Print the one line of an interrupted command; return its exit code."""
    acknowledge()
    # CPython marks a KeyboardInterrupt that leaves code run by exec()/eval() of a string (a
    # dataclass's generated __init__, ...) as unhandled even when it is caught later, and under
    # `python -m` then ends the process with SIGINT instead of its exit code. Running a string
    # clears the mark.
    exec("")  # noqa: S102
    stderr_line(MESSAGE)
    return EXIT_INTERRUPTED


def end_command(code: int) -> None:
    """End the pbdr command with ``code``. After Ctrl-C, at once (streams
    flushed, no interpreter clean-up): what the interrupt cut short inside a
    Dr.Jit trace can leave its variables inconsistent, and their destructors
    at shutdown then abort the process ("jit_var(...): unknown variable!",
    SIGABRT) instead of exiting with 130. Outputs are already written (each
    atomically), so nothing is lost."""
    if code == EXIT_INTERRUPTED:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a broken stream must not keep us here
                pass
        os._exit(code)
    sys.exit(code)


def _exit_now() -> None:
    """Leave at once, without clean-up: the user pressed Ctrl-C twice."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a broken stream must not keep us here
            pass
    os.write(2, (MESSAGE + "\n").encode())
    os._exit(EXIT_INTERRUPTED)


def _watchdog(state: _State) -> None:
    """Raise the interrupt in the main thread again until it is acknowledged."""
    while not state.stop.wait(REDELIVER_S):
        with state.lock:
            if state.acknowledged or not state.active:
                return
            state.redelivering = True
            _thread.interrupt_main(signal.SIGINT)


def _ignore_unraisable(unraisable: Any) -> None:
    """sys.unraisablehook after Ctrl-C: say nothing (see the module's docstring)."""


def _on_sigint(signum: int, frame: FrameType | None) -> Any:
    """SIGINT handler: record the first, re-raise a re-delivery, exit on a second."""
    with _state.lock:
        redelivered, _state.redelivering = _state.redelivering, False
        if _state.at is None:
            _state.at = time.monotonic()
            _state.unraisablehook, sys.unraisablehook = sys.unraisablehook, _ignore_unraisable
            try:
                threading.Thread(target=_watchdog, args=(_state,), name="pbdr-sigint-watchdog",
                                 daemon=True).start()
            except RuntimeError:   # at interpreter shutdown: nothing left to re-deliver to
                pass
        elif redelivered:
            if _state.acknowledged:   # raced with acknowledge(): already being handled
                return None
        else:
            _exit_now()
    raise KeyboardInterrupt


def _exit_on_sigint(signum: int, frame: FrameType | None) -> Any:
    """SIGINT handler of the pbdr command outside main() (starting up, shutting
    down): nothing to clean up, so the one line and exit 130 at once."""
    _exit_now()


def _is_command() -> bool:
    """Whether this process is the pbdr command: ``pbdr ...`` or ``python -m pbdr ...``."""
    options = list(getattr(sys, "orig_argv", []))[1:]
    while options and options[0].startswith("-") and options[0] != "-c":   # the interpreter's
        option = options.pop(0)
        if option == "-m":
            return options[:1] == ["pbdr"]
        if option in ("-X", "-W"):
            del options[:1]
    return os.path.basename(sys.argv[0] if sys.argv else "") == "pbdr"


def exit_on_sigint_while_starting() -> None:
    """For the first lines of ``pbdr/__init__.py``: in the pbdr command, Ctrl-C
    before ``main()`` takes over (importing Mitsuba and Dr.Jit takes tenths of
    a second) prints the one line and exits with 130 instead of a traceback of
    the import. ``import pbdr`` anywhere else, or under a handler of its own, is left alone."""
    if (_is_command() and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        signal.signal(signal.SIGINT, _exit_on_sigint)


@contextmanager
def sigint_recorded() -> Iterator[None]:
    """Within: Ctrl-C is recorded, re-delivered while swallowed, and a second
    one exits; on leaving, the record is cleared and the previous SIGINT
    handler is back, except in the pbdr command itself, where Ctrl-C while the
    interpreter shuts down exits with the one line too. Does nothing outside
    the main thread (where signals can't be caught)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _state
    state = _state = _State()
    state.active = True
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        with state.lock:
            state.active = False
            state.stop.set()
        command = _is_command()
        signal.signal(signal.SIGINT, _exit_on_sigint if command else previous)
        if state.unraisablehook is not None and not command:
            gc.collect()   # what the interrupt left half-built goes now, quietly
            # (the command itself ends at once instead: end_command)
            if sys.unraisablehook is _ignore_unraisable:
                sys.unraisablehook = state.unraisablehook
        _state = _State()
