"""streamrec export: ONNX export of the encoders and rankers, with parity validation."""
