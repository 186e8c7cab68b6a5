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
