"""The session's encoder exports, shared with tests/models.

Same fixture as tests/models/conftest.py, defined again rather than imported: importing
``tests.models.conftest`` only works when the repository root is on sys.path (true for
``python -m pytest``, not for the ``pytest`` script). Both fixtures export into the same
``<session basetemp>/models`` directory (also tests/conftest.py's ``model_dir``), so
whichever runs second finds the manifests up to date and exports nothing.
"""

from __future__ import annotations

import pytest

from export.encoders import EncoderPaths, ensure_encoders


@pytest.fixture(scope="session")
def encoder_paths(tmp_path_factory: pytest.TempPathFactory) -> EncoderPaths:
    """ONNX exports of both towers (shared with tests/models/conftest.py)."""
    return ensure_encoders(tmp_path_factory.getbasetemp() / "models")


# With --doctest-modules pytest would also import this file as a test module named
# "conftest", clashing with other directories' conftest.py files; it has no doctests.
collect_ignore = ["conftest.py"]
