"""Evaluation of the embeddings on held-out studies: metrics, the CellTypist peer and the HTML report."""
