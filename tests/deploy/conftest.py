"""Helpers for the deploy/ tests: paths, and the Debian tools they need (never skipped)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def require_tool(name: str, package: str) -> str:
    """The tool's path; a missing tool fails the test with the command that installs it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed; it comes with the Debian package {package}: "
            f"`sudo apt-get install -y --no-install-recommends {package}` (or run `make test`, whose install step does it)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return require_tool("prometheus", "prometheus")
