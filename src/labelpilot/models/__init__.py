"""Model plug-ins: a spec and predict(), manifests with checksums, the ONNX runtime layer."""
