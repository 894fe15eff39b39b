"""Scoring models against accepted labels: OCR (`ocr`), detection with the COCO protocol
(`detect`), interactive segmentation with RITM's click simulator (`clicker`,
`interactive`), and the runners over a workspace (`run`). May import models, proposals,
store and workspace; never jobs, assist or the shells."""
