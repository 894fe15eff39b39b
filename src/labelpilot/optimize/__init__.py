"""Model optimization: quantized variants of a workspace's models, kept only when they
pass an accuracy and speed gate on the workspace's own data."""
