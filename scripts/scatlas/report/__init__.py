"""The workflow's report: one self-contained HTML page of the whole run (what was found,
kept and why not; alignment and assignment; the atlas; the evaluation; DE; the release)
and a MultiQC-readable export of the aligner's and counter's logs."""
