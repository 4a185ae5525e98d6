"""A folder MultiQC reads (``multiqc results/report/multiqc``): each run's HISAT2 summary
and each study's featureCounts summary, under names that say which run and study."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

_SUMMARY = re.compile(r"^\d+ reads; of these:.*?overall alignment rate\s*$", re.S | re.M)


def export(results: Path, logs: Path, out_dir: Path) -> int:
    """Write the summaries into ``out_dir`` (replaced); returns how many files."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "hisat2").mkdir(parents=True)
    (out_dir / "featurecounts").mkdir()
    n = 0
    for log in sorted(Path(logs).glob("align/*/*.log")):
        m = _SUMMARY.search(log.read_text(errors="replace"))
        if m:  # the run's summary block, as HISAT2 writes it (MultiQC's hisat2 module)
            (out_dir / "hisat2" / f"{log.parent.name}_{log.stem}.txt").write_text(m.group(0) + "\n")
            n += 1
    for summary in sorted(Path(results).glob("counts/*/counts.tsv.summary")):
        shutil.copyfile(
            summary, out_dir / "featurecounts" / f"{summary.parent.name}.counts.tsv.summary"
        )
        n += 1
    return n
