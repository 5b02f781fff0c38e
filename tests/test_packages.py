"""The four packages of the layout import from this checkout."""

from __future__ import annotations

import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_packages_import_from_this_checkout() -> None:
    for name in ("streams", "agents", "models", "export"):
        module = importlib.import_module(name)
        assert module.__file__ is not None
        assert Path(module.__file__).resolve().parent == ROOT / name, name


def test_layout_has_the_design_card_folders() -> None:
    for path in ("pyproject.toml", "README.md", "streams", "agents", "models", "export", "tests", "deploy"):
        assert (ROOT / path).exists(), path
