"""Molecule counting: UMI-tools' directional collapsing, read reports, cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scatlas.errors import InputError
from scatlas.reads.barcodes import encode
from scatlas.reads.umi import count_molecules, directional_molecules, read_assignments


def _molecules(groups: list[tuple[str, int]]) -> int:
    """Molecules of one group given as (UMI, reads) pairs."""
    umis = encode([u for u, _ in groups], len(groups[0][0]))
    reads = np.array([r for _, r in groups])
    return int(directional_molecules(np.zeros(len(groups), int), umis, reads, len(groups[0][0]))[0])


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ([("AAAA", 10), ("AAAT", 3)], 1),  # 10 >= 2*3 - 1: the error is absorbed
        ([("AAAA", 4), ("AAAT", 3)], 2),  # too close in counts: two molecules
        ([("AAAA", 1), ("AAAT", 1)], 1),  # singletons absorb each other
        ([("AAAA", 10), ("AAAT", 4), ("AATT", 1)], 1),  # a chain A -> B -> C
        ([("AAAA", 10), ("AAAT", 6), ("AATT", 1)], 2),  # A alone; B absorbs C
        ([("AAAA", 5), ("CCCC", 5), ("GGGG", 5)], 3),  # nothing close
        ([("AAAA", 10), ("AAAT", 2), ("AAAG", 2), ("CCCC", 1)], 2),  # a star, and one apart
        ([("AAAA", 3), ("TTTT", 3), ("AAAT", 1), ("TTTA", 1)], 2),  # two errors, two owners
    ],
)
def test_directional_collapsing(group: list[tuple[str, int]], expected: int) -> None:
    assert _molecules(group) == expected


def test_directional_groups_are_independent() -> None:
    # the same two close UMIs in two groups (cells x genes) and a lone one in a third
    groups = np.array([0, 0, 1, 1, 2])
    umis = encode(["ACGTAC", "ACGTAA", "ACGTAC", "ACGTAA", "ACGTAC"], 6)
    reads = np.array([9, 1, 3, 1, 4])
    assert directional_molecules(groups, umis, reads, 6).tolist() == [1, 1, 1]
    # 3 >= 2*3 - 1 is false: group 1 keeps both
    reads = np.array([9, 1, 3, 3, 4])
    assert directional_molecules(groups, umis, reads, 6).tolist() == [1, 2, 1]


def test_read_report_to_molecules(tmp_path: Path) -> None:
    """A featureCounts -R CORE report of tagged reads (barcode 4 bp, UMI 4 bp)."""
    lines = [
        ("AAAA_CCCC_1", "Assigned", "1", "G1"),
        ("AAAA_CCCC_2", "Assigned", "1", "G1"),  # PCR duplicate
        ("AAAA_CCCA_3", "Assigned", "1", "G1"),  # UMI error
        ("AAAA_GGGG_4", "Assigned", "1", "G1"),
        ("AAAA_GGGG_5", "Assigned", "1", "G2"),  # same UMI, other gene: another molecule
        ("AAAA_TTNT_6", "Assigned", "1", "G2"),  # UMI with an N: dropped
        ("AAAT_TTTT_7", "Assigned", "1", "G2"),  # barcode error, corrected to AAAA
        ("AAAA_ACAC_8", "Unassigned_NoFeatures", "-1", "NA"),
        ("AAAA_ACAC_9", "Unassigned_MultiMapping", "-1", "NA"),
        ("CCCC_ACAC_10", "Assigned", "1", "G1"),  # not a cell
    ]
    core = tmp_path / "r.bam.featureCounts"
    core.write_text("".join("\t".join(x) + "\n" for x in lines))
    assigned = read_assignments(core, 4, 4)
    assert int(assigned["reads"].sum()) == 8
    table, stats = count_molecules(assigned, pd.Series({"AAAA": "AAAA", "AAAT": "AAAA"}), 4)
    got = table.set_index(["cell", "gene"])["umis"].to_dict()
    assert got == {("AAAA", "G1"): 2, ("AAAA", "G2"): 2}
    assert table.set_index(["cell", "gene"])["reads"].to_dict() == {
        ("AAAA", "G1"): 4,
        ("AAAA", "G2"): 2,
    }
    assert stats["reads_with_n_umi"] == 1 and stats["assigned_reads_in_cells"] == 7
    bad = tmp_path / "bad.featureCounts"
    bad.write_text("read1\tAssigned\t1\tG1\n")
    with pytest.raises(InputError, match="not named"):
        read_assignments(bad, 4, 4)
    empty = tmp_path / "empty.featureCounts"
    empty.write_text("")
    assert read_assignments(empty, 4, 4).empty
