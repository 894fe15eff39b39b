"""Active learning: which images to label next (uncertainty, diversity, both)."""
