"""Loading this repository's modules as they were at another revision, next to the current ones.

The benchmark scripts beside this file compare an export of an earlier commit with this
checkout's in one process. ``module_at`` reads a file with ``git show`` and executes it
under a name of its own; ``dependencies`` are modules of the same revision that it must
import instead of the checkout's (bound in ``sys.modules`` only while it loads).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType


def module_at(revision: str, path: str, tmp: Path, dependencies: Mapping[str, ModuleType] | None = None) -> ModuleType:
    """The module at ``path`` (``export/ranker_export.py``) as it was at ``revision``."""
    source = subprocess.run(["git", "show", f"{revision}:{path}"], check=True, capture_output=True,
                            text=True).stdout
    name = f"{Path(path).stem}_at_{revision}"
    file = tmp / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = {k: sys.modules.get(k) for k in dependencies or {}}
    sys.modules.update(dependencies or {})
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return module


def export_at(revision: str, tmp: Path) -> ModuleType:
    """``export/ranker_export.py`` at ``revision`` with the ``export/quantize.py`` of its time."""
    quantize = module_at(revision, "export/quantize.py", tmp)
    return module_at(revision, "export/ranker_export.py", tmp, {"export.quantize": quantize})
