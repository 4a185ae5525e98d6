"""Releases: the frozen, versioned reference (format, publishing, the quality gate, the index, novelty thresholds)."""
