"""scatlas: build a searchable single-cell RNA-seq reference atlas and query it."""

__version__ = "0.1.0"
