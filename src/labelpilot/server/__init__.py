"""The HTTP API: a thin, typed layer over the service modules."""
