"""Session fixtures: the encoders exported once per test session, and their PyTorch sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.encoders import EncoderPaths, ensure_encoders
from models.image_encoder import OnnxImageEncoder, load_image_encoder
from models.image_tower import ImageTower, load_image_tower
from models.text_encoder import OnnxTextEncoder, load_text_encoder
from models.text_tower import TextTower, load_text_tower


@pytest.fixture(scope="session")
def encoder_paths(tmp_path_factory: pytest.TempPathFactory) -> EncoderPaths:
    """ONNX exports of both towers in a per-session directory.

    The directory is fixed, ``<session basetemp>/models`` (the same as the ``model_dir``
    fixture of tests/conftest.py), so every other user of it in the session (the copy of
    this fixture in tests/export, the integration tests' settings) finds the manifests up
    to date and exports nothing.
    """
    model_dir: Path = tmp_path_factory.getbasetemp() / "models"
    return ensure_encoders(model_dir)


@pytest.fixture(scope="session")
def text_encoder(encoder_paths: EncoderPaths) -> OnnxTextEncoder:
    """The ONNX text encoder on CPU."""
    return load_text_encoder(encoder_paths.text_onnx, encoder_paths.tokenizer_dir, ["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def image_encoder(encoder_paths: EncoderPaths) -> OnnxImageEncoder:
    """The ONNX image encoder on CPU."""
    return load_image_encoder(encoder_paths.image_onnx, ["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def text_tower() -> TextTower:
    """The PyTorch text tower the export was made from."""
    return load_text_tower()


@pytest.fixture(scope="session")
def image_tower() -> ImageTower:
    """The PyTorch image tower the export was made from."""
    return load_image_tower()


# With --doctest-modules pytest would also import this file as a test module named
# "conftest", clashing with other directories' conftest.py files; it has no doctests.
collect_ignore = ["conftest.py"]
