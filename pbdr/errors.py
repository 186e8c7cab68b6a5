"""The one exception type the CLI turns into a one-line message and exit code 2,
one-line warnings and notes, and whether progress is shown."""
from __future__ import annotations

import sys


class PbdrError(Exception):
    """A user-facing error: bad input, a missing dependency, a non-finite result.

    Its message is a single line that says what is wrong and, where there is
    one, how to fix it.
    """


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """Collapse a (possibly multi-line, C++-decorated) message to one line."""
    text = str(exc)
    # A Python plugin's error reaches us wrapped, with its traceback: keep the
    # context before it and the exception's own last line.
    head, sep, tail = text.partition("Traceback (most recent call last):")
    if sep:
        last = [line for line in tail.strip().splitlines() if line.strip()][-1:]
        text = head + (last[0] if last else "")
    text = " ".join(text.split())
    # Mitsuba prefixes messages with "[file.cpp:123] "; users don't need that.
    while text.startswith("[") and "]" in text[:80]:
        text = text[text.index("]") + 1:].strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def stderr_line(text: str) -> None:
    """Write ``text`` and its newline to stderr in one call: a Ctrl-C handled
    between two writes (``print`` makes two) would glue the next line to it."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def warn(message: str | None) -> None:
    """Print a one-line warning to stderr (nothing for None)."""
    if message:
        stderr_line(f"pbdr: warning: {message}")


_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence notes and progress bars (the CLI's ``--quiet``); warnings and errors still print."""
    global _quiet
    _quiet = quiet


def note(message: str) -> None:
    """Print a one-line note to stderr (``pbdr: ...``), unless quiet."""
    if not _quiet:
        stderr_line(f"pbdr: {message}")


def show_progress(requested: bool = True) -> bool:
    """Whether to draw a progress bar: asked for, not quiet, and stderr is a
    terminal (bars written into a log file are noise)."""
    if not requested or _quiet:
        return False
    return sys.stderr.isatty()
