"""Shared fixtures: the variant, bundled scenes, and the FD-agreement assertion."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import pbdr

ROOT = Path(__file__).resolve().parents[1]
SCENES = ROOT / "scenes"


@pytest.fixture(scope="session", autouse=True)
def variant() -> str:
    return pbdr.set_variant(os.environ.get("PBDR_VARIANT"))


def scene_path(name: str) -> str:
    return str(SCENES / name)


def assert_agrees(result: "pbdr.CheckResult") -> None:
    """Fail with the whole report when a derivative disagrees with FD."""
    assert result.report.passed, "\n" + result.report.summary()


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the pbdr command in this process: (exit code, stdout, stderr)."""
    from pbdr.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    """Exit code 2, one ``pbdr: error:`` line holding every fragment, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("pbdr: error:"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
