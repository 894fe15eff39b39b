"""Geometry with no knowledge of annotations or storage: COCO RLE codecs (`rle`), text-line
crops (`crops`), IoU of boxes, polygons and masks (`iou`). Imports only errors."""
