"""The learned ranker served by onnxruntime: a :class:`~models.ranking.Scorer`.

One onnxruntime session per model, with the configured providers (CUDA first, CPU
last; see :mod:`models.onnx_session`). One ``score`` call ranks every candidate
pair of a micro-batch. Only numpy and onnxruntime are needed here, never torch.

On a GPU provider the call goes through I/O binding: the item matrix is copied to
the device once and stays there until the catalog changes (the item index's
version), and only the per-call arrays travel. On the CPU the arrays are handed to
onnxruntime directly (no copy). ``io_binding=True`` forces the bound path on the CPU
too, which is how the tests exercise it on machines without a GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from models.candidates import Candidates
from models.onnx_session import CPU_PROVIDER, active_provider, create_session
from models.ranker_features import (
    INPUT_NAMES,
    OUTPUT_NAME,
    FeatureAssembler,
    RankerInputs,
)
from models.ranking import ScoringContext

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]

_DEVICE_TYPES = {"CUDAExecutionProvider": "cuda", CPU_PROVIDER: "cpu"}


class OnnxRanker:
    """Scores candidate pairs with an exported ranker.

    Parameters
    ----------
    model_path
        The ``.onnx`` file (inputs :data:`~models.ranker_features.INPUT_NAMES`).
    version
        Published as ``model_version`` with every list it ranks.
    providers
        onnxruntime providers in order of preference (CPU is always appended).
    io_binding
        None: bind on GPU providers only; True/False: always/never.
    """

    def __init__(
        self,
        model_path: Path,
        version: str,
        providers: Sequence[str] = (CPU_PROVIDER,),
        *,
        intra_op_threads: int | None = None,
        io_binding: bool | None = None,
    ) -> None:
        self._version = version
        self.session = create_session(Path(model_path), providers, intra_op_threads=intra_op_threads)
        names = tuple(i.name for i in self.session.get_inputs())
        if set(names) != set(INPUT_NAMES) or [o.name for o in self.session.get_outputs()] != [OUTPUT_NAME]:
            raise ValueError(
                f"{model_path} is not a streamrec ranker: inputs {names}, outputs "
                f"{[o.name for o in self.session.get_outputs()]} (expected {INPUT_NAMES} -> {OUTPUT_NAME})"
            )
        self.provider = active_provider(self.session)
        self.device_type = _DEVICE_TYPES.get(self.provider, "cpu")
        self.io_binding = self.device_type != "cpu" if io_binding is None else io_binding
        self.assemble = FeatureAssembler()
        self._items_key: tuple[int, int, int] | None = None
        self._items_value: Any = None
        log.info("ranker %s runs on %s (I/O binding %s)", version, self.provider, "on" if self.io_binding else "off")

    @property
    def version(self) -> str:
        """The bundle version, published with every list."""
        return self._version

    def score(self, candidates: Candidates, context: ScoringContext | None = None) -> tuple[FloatArray, IntArray]:
        """(logit per pair, candidate source per pair) for a micro-batch."""
        if context is None:
            raise ValueError("the learned ranker needs the scoring context (users, time, item index)")
        reasons = candidates.source.astype(np.int64)
        if len(candidates) == 0:
            return np.zeros(0, np.float32), reasons
        inputs = self.assemble(candidates, context)
        return self.run(inputs, context.index.matrix, key=(id(context.index), context.index.version,
                                                           context.index.size)), reasons

    def run(self, inputs: RankerInputs, item_vectors: FloatArray, key: tuple[int, int, int] | None = None) -> FloatArray:
        """Run the model on assembled inputs; ``key`` identifies ``item_vectors`` for the device cache."""
        if not self.io_binding:
            (out,) = self.session.run([OUTPUT_NAME], inputs.feeds(item_vectors))
            return np.asarray(out, np.float32)
        binding = self.session.io_binding()
        binding.bind_ortvalue_input("item_vectors", self._resident_items(item_vectors, key))
        for name, value in inputs.feeds(item_vectors).items():
            if name != "item_vectors":
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        binding.bind_output(OUTPUT_NAME, self.device_type)
        self.session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0], np.float32)

    def _resident_items(self, item_vectors: FloatArray, key: tuple[int, int, int] | None) -> Any:
        """The item matrix on the session's device, copied again only when it changed."""
        if key is None or key != self._items_key:
            self._items_value = ort.OrtValue.ortvalue_from_numpy(
                np.ascontiguousarray(item_vectors, np.float32), self.device_type, 0
            )
            self._items_key = key
        return self._items_value
