"""Annotating new cells against a published release (`scatlas query`): loading a release, mapping genes, kNN votes, novelty."""
