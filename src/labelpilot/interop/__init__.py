"""Adapters that let other labeling tools run LabelPilot's models (CVAT's auto-annotation
functions; Label Studio's ML backend lives with the model server, `serving.labelstudio`)."""
