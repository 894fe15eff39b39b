"""The one model seam. `base`: ModelSpec and the Predictor / InteractiveSegmenter protocols
with their prompts; `registry`: the kind -> plug-in table and the typed loaders;
`manifest` (files + SHA-256 + preprocessing + labels + metrics), `runtime` (ONNX Runtime
providers and threads), `catalogue` (what `models add` installs); one module per kind
(`ocr`, `detect`, `graphcut`, `sam`, `semantic`); `convert/`. Imports the annotation
vocabulary, geometry and errors only."""
