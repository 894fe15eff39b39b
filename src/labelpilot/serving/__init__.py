"""The model server: a workspace's models over HTTP with dynamic batching, back-pressure,
hot swap and Prometheus metrics (`labelpilot serve-models`)."""
