"""Interactive segmentation: click/box -> mask with any segmenter, cached per image."""
