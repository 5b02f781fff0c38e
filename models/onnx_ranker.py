"""The learned ranker served by onnxruntime: a :class:`~models.ranking.Scorer`.

One onnxruntime session per model, with the configured providers (CUDA first, CPU
last; see :mod:`models.onnx_session`). One ``score`` call ranks every candidate
pair of a micro-batch. Only numpy and onnxruntime are needed here, never torch.

A bundle holds two graphs: the item model turns the item index's matrix into item
features (``3 * rank + 1`` numbers per item) and the pair scorer ranks pairs from them.
The item features are computed once per catalog version (the item index's
``version``; every upsert or delete bumps it) and reused by every micro-batch until
then, so a pair costs a gather of a few numbers instead of a 512-d item row. When the
catalog changes, only the rows changed since (``ItemIndex.changed_since``) go through
the item model again -- the item model works row by row -- unless more than a quarter
of the catalog changed, which is recomputed whole. (A
bundle with one graph reading ``item_vectors`` itself is still served as it is.)

On a GPU provider the call goes through I/O binding: the item features are copied
to the device once and stay there until the catalog changes, and only the per-call
arrays travel. On the CPU the arrays are handed to onnxruntime directly (no copy).
``io_binding=True`` forces the bound path on the CPU too, which is how the tests
exercise it on machines without a GPU.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from models.candidates import Candidates
from models.item_index import ItemIndex
from models.onnx_session import CPU_PROVIDER, active_provider, create_session, device_type
from models.ranker_features import (
    INPUT_NAMES,
    ITEM_MODEL_FILE,
    ITEM_OUTPUT_NAME,
    OUTPUT_NAME,
    PAIR_INPUT_NAMES,
    FeatureAssembler,
    RankerInputs,
)
from models.ranking import ScoringContext

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]


class OnnxRanker:
    """Scores candidate pairs with an exported ranker.

    Parameters
    ----------
    model_path
        The pair scorer (inputs :data:`~models.ranker_features.PAIR_INPUT_NAMES`), or a
        single graph reading the item matrix (:data:`~models.ranker_features.INPUT_NAMES`).
    version
        Published as ``model_version`` with every list it ranks.
    providers
        onnxruntime providers in order of preference (CPU is always appended).
    io_binding
        None: bind on GPU providers only; True/False: always/never.
    item_model_path
        The item model (``item_vectors`` -> ``item_features``) of a pair scorer; by default
        :data:`~models.ranker_features.ITEM_MODEL_FILE` next to ``model_path`` (a bundle's layout).
    """

    def __init__(
        self,
        model_path: Path,
        version: str,
        providers: Sequence[str] = (CPU_PROVIDER,),
        *,
        intra_op_threads: int | None = None,
        io_binding: bool | None = None,
        item_model_path: Path | None = None,
    ) -> None:
        self._version = version
        self.session = create_session(Path(model_path), providers, intra_op_threads=intra_op_threads)
        names = tuple(i.name for i in self.session.get_inputs())
        outputs = [o.name for o in self.session.get_outputs()]
        if set(names) not in (set(INPUT_NAMES), set(PAIR_INPUT_NAMES)) or outputs != [OUTPUT_NAME]:
            raise ValueError(
                f"{model_path} is not a streamrec ranker: inputs {names}, outputs {outputs} "
                f"(expected {PAIR_INPUT_NAMES} or {INPUT_NAMES} -> {OUTPUT_NAME})"
            )
        self.item_session: ort.InferenceSession | None = None
        self._item_input = "item_vectors"
        if set(names) == set(PAIR_INPUT_NAMES):
            item_model_path = Path(model_path).with_name(ITEM_MODEL_FILE) if item_model_path is None else item_model_path
            if not Path(item_model_path).is_file():
                raise ValueError(f"{model_path} scores precomputed item features: its item model "
                                 f"{item_model_path} is missing")
            self.item_session = create_session(Path(item_model_path), providers, intra_op_threads=intra_op_threads)
            item_io = ([i.name for i in self.item_session.get_inputs()],
                       [o.name for o in self.item_session.get_outputs()])
            if item_io != (["item_vectors"], [ITEM_OUTPUT_NAME]):
                raise ValueError(f"{item_model_path} is not a streamrec item model: {item_io}")
            self._item_input = "item_features"
        self._features_key: tuple[int, int, int] | None = None
        self._features: FloatArray | None = None
        self._features_index: weakref.ReferenceType[ItemIndex] | None = None  # the index they belong to
        self.provider = active_provider(self.session)
        self.device_type = device_type(self.provider)
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
        index = context.index
        key = (id(index), index.version, index.size)
        if self.item_session is None:
            return self.run(inputs, index.matrix, key), reasons
        return self.run_items(inputs, self.index_features(index), key), reasons

    def index_features(self, index: ItemIndex) -> FloatArray:
        """The item features of every row of ``index``, kept up to date incrementally: rows
        changed since the last call are recomputed, the rest reused."""
        key = (id(index), index.version, index.size)
        cached = self._features
        same_index = self._features_index is not None and self._features_index() is index
        if cached is not None and same_index and self._features_key == key:
            return cached
        if cached is not None and same_index and self._features_key is not None:
            rows = index.changed_since(self._features_key[1])
            if 4 * len(rows) <= index.size:
                if index.size > cached.shape[0]:
                    grown = np.zeros((index.size, cached.shape[1]), np.float32)
                    grown[: cached.shape[0]] = cached
                    cached = grown
                else:
                    cached = cached.copy()  # an array handed out before stays as it was
                if len(rows):
                    cached[rows] = self._run_item_model(index.matrix[rows])
                self._features, self._features_key = cached, key
                return cached
        features = self.item_features(index.matrix, key)
        self._features_index = weakref.ref(index)
        return features

    def item_features(self, item_vectors: FloatArray, key: tuple[int, int, int] | None = None) -> FloatArray:
        """The item model's output for ``item_vectors``, reused while ``key`` (the catalog version) holds."""
        if self.item_session is None:
            raise ValueError(f"ranker {self._version} has no item model: it reads item vectors itself")
        if key is None or key != self._features_key or self._features is None:
            self._features = self._run_item_model(item_vectors)
            self._features_key = key
            self._features_index = None
        return self._features

    def _run_item_model(self, item_vectors: FloatArray) -> FloatArray:
        assert self.item_session is not None
        (out,) = self.item_session.run([ITEM_OUTPUT_NAME], {"item_vectors": np.asarray(item_vectors, np.float32)})
        return np.asarray(out, np.float32)

    def run(self, inputs: RankerInputs, item_vectors: FloatArray, key: tuple[int, int, int] | None = None) -> FloatArray:
        """Run the model on assembled inputs; ``key`` identifies ``item_vectors`` (the catalog version)
        for the item-features and device caches (None: nothing is reused)."""
        items = item_vectors if self.item_session is None else self.item_features(item_vectors, key)
        return self.run_items(inputs, items, key)

    def run_items(self, inputs: RankerInputs, items: FloatArray, key: tuple[int, int, int] | None = None) -> FloatArray:
        """Run the pair scorer on precomputed item features (or a one-graph ranker on item vectors)."""
        if not self.io_binding:
            (out,) = self.session.run([OUTPUT_NAME], inputs.feeds(items, self._item_input))
            return np.asarray(out, np.float32)
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self._item_input, self._resident_items(items, key))
        for name, value in inputs.feeds(items, self._item_input).items():
            if name != self._item_input:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        binding.bind_output(OUTPUT_NAME, self.device_type)
        self.session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0], np.float32)

    def _resident_items(self, item_vectors: FloatArray, key: tuple[int, int, int] | None) -> Any:
        """The item matrix (or features) on the session's device, copied again only when it changed."""
        if key is None or key != self._items_key:
            self._items_value = ort.OrtValue.ortvalue_from_numpy(
                np.ascontiguousarray(item_vectors, np.float32), self.device_type, 0
            )
            self._items_key = key
        return self._items_value
