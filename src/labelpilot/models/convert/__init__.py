"""Converting published checkpoints into the ONNX files LabelPilot runs: the SAM
architecture written in PyTorch (`sam_arch`) and `labelpilot models convert` (`sam`).
Needs the [train] extra; imports models' manifest and runtime, never the registry."""
