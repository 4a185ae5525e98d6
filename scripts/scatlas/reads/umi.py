"""Counting molecules: unique UMIs per cell and gene, with UMI sequencing errors collapsed.

Reads come from featureCounts' per-read report (``-R CORE``: read name, status, number of
targets, gene) on BAM files whose read names carry ``{CB}_{UMI}_{n}``
(:func:`scatlas.reads.barcodes.tag_reads`). Only reads assigned to exactly one gene count (the
featureCounts defaults leave multi-mapping and ambiguous reads unassigned). UMIs holding
an N are dropped.

Collapsing follows UMI-tools' *directional* method (Smith, Heger & Sudbery, Genome Res
2017): within one cell and gene, UMI a absorbs UMI b when they differ at exactly one base
and count(a) >= 2 * count(b) - 1 (reads); every group of UMIs reachable from a most
abundant one is one molecule. UMIs that no other UMI of their cell and gene is one base
away from are molecules on their own, so only the few groups with close UMIs go through the
graph search.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd

from scatlas.errors import InputError
from scatlas.reads.barcodes import encode, has_n

log = logging.getLogger(__name__)

_CHUNK_LINES = 2_000_000
_BITS = 3


def _pairs_within_one(groups: np.ndarray, umis: np.ndarray, length: int) -> np.ndarray:
    """Row pairs (i, j), i < j, of the same group whose UMIs differ at exactly one base."""
    pairs = []
    for i in range(length):
        masked = umis | (np.uint64(7) << np.uint64(_BITS * i))
        order = np.lexsort((masked, groups))
        g, m = groups[order], masked[order]
        same = (g[1:] == g[:-1]) & (m[1:] == m[:-1])
        if not same.any():
            continue
        # runs of equal (group, masked UMI): every pair inside a run differs at position i
        starts = np.flatnonzero(np.concatenate([[True], ~same]))
        ends = np.concatenate([starts[1:], [len(order)]])
        for s, e in zip(starts[ends - starts > 1], ends[ends - starts > 1], strict=True):
            members = order[s:e]
            for a in range(len(members)):
                for b in range(a + 1, len(members)):
                    pairs.append((members[a], members[b]))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    out = np.sort(np.array(pairs, dtype=np.int64), axis=1)
    return np.unique(out, axis=0)


def directional_molecules(
    groups: np.ndarray, umis: np.ndarray, reads: np.ndarray, length: int
) -> np.ndarray:
    """Molecules per group (index = group id, ``groups.max() + 1`` entries).

    ``groups[k]``, ``umis[k]`` (codes of :func:`scatlas.reads.barcodes.encode`), ``reads[k]``:
    one row per distinct UMI of a group (cell x gene) with its read count.
    """
    groups = np.asarray(groups, dtype=np.int64)
    umis = np.asarray(umis, dtype=np.uint64)
    reads = np.asarray(reads, dtype=np.int64)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    molecules = np.bincount(groups, minlength=n_groups).astype(np.int64)
    pairs = _pairs_within_one(groups, umis, length)
    if not len(pairs):
        return molecules
    a, b = pairs[:, 0], pairs[:, 1]
    ca, cb = reads[a], reads[b]
    edges = [(x, y) for x, y in zip(a[ca >= 2 * cb - 1], b[ca >= 2 * cb - 1], strict=True)]
    edges += [(y, x) for x, y in zip(a[cb >= 2 * ca - 1], b[cb >= 2 * ca - 1], strict=True)]
    adjacency: dict[int, list[int]] = {}
    for x, y in edges:
        adjacency.setdefault(int(x), []).append(int(y))
    rows_of: dict[int, list[int]] = {}
    for row in np.unique(pairs):
        rows_of.setdefault(int(groups[row]), []).append(int(row))
    for group, rows in rows_of.items():
        in_graph = set(rows)
        # UMIs of the group with a close neighbour: count the components the directional
        # search finds among them; the group's other UMIs stay one molecule each
        found: set[int] = set()
        components = 0
        for node in sorted(rows, key=lambda r: (-reads[r], umis[r])):
            if node in found:
                continue
            components += 1
            queue = deque([node])
            found.add(node)
            while queue:
                cur = queue.popleft()
                for nxt in adjacency.get(cur, ()):
                    if nxt in in_graph and nxt not in found:
                        found.add(nxt)
                        queue.append(nxt)
        molecules[group] -= len(rows) - components
    return molecules


def read_assignments(core: str | os.PathLike, barcode_length: int, umi_length: int) -> pd.DataFrame:
    """Reads assigned to one gene in a featureCounts ``-R CORE`` report, as distinct
    (barcode, UMI, gene) rows with their read counts: columns ``barcode`` (str), ``umi``
    (code), ``gene`` (str), ``reads``."""
    core = Path(core)
    parts = []
    n_lines = 0
    end_cb, start_umi = barcode_length, barcode_length + 1
    try:
        reader = pd.read_csv(
            core,
            sep="\t",
            header=None,
            usecols=[0, 1, 3],
            names=["name", "status", "n", "gene"],
            dtype=str,
            chunksize=_CHUNK_LINES,
            keep_default_na=False,
            engine="c",
        )
        for chunk in reader:
            n_lines += len(chunk)
            chunk = chunk[chunk["status"] == "Assigned"]
            if chunk.empty:
                continue
            names = chunk["name"]
            bad = names.str[end_cb : end_cb + 1] != "_"
            if bad.any():
                raise InputError(
                    f"read {names[bad].iloc[0]!r} is not named {{barcode}}_{{UMI}}_{{n}}",
                    path=str(core),
                    field="name",
                )
            frame = pd.DataFrame(
                {
                    "barcode": names.str[:end_cb].to_numpy(),
                    "umi": encode(
                        names.str[start_umi : start_umi + umi_length].to_numpy(), umi_length
                    ),
                    "gene": chunk["gene"].to_numpy(),
                }
            )
            parts.append(frame.groupby(["barcode", "umi", "gene"], sort=False).size())
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"cannot read featureCounts read report: {exc}", path=str(core)) from exc
    except pd.errors.EmptyDataError:
        parts = []
    if not parts:
        return pd.DataFrame(
            {"barcode": [], "umi": np.zeros(0, np.uint64), "gene": [], "reads": np.zeros(0, int)}
        )
    counts = pd.concat(parts).groupby(level=[0, 1, 2], sort=False).sum()
    out = counts.rename("reads").reset_index()
    log.info("%s: %d lines, %d distinct assigned (barcode, UMI, gene)", core, n_lines, len(out))
    return out


def count_molecules(
    assignments: pd.DataFrame, cell_of: pd.Series, umi_length: int
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Molecules per (cell, gene) from :func:`read_assignments` rows.

    ``cell_of`` maps a raw barcode to its cell (barcodes not in it, or mapped to "", are
    not cells). Returns (a frame ``cell, gene, umis, reads``, statistics).
    """
    a = assignments.assign(cell=assignments["barcode"].map(cell_of).fillna("").to_numpy())
    in_cells = a[a["cell"] != ""]
    with_n = has_n(in_cells["umi"].to_numpy(dtype=np.uint64), umi_length)
    kept = in_cells[~with_n]
    per_umi = kept.groupby(["cell", "gene", "umi"], sort=True)["reads"].sum().reset_index()
    group_ids, uniques = pd.factorize(
        pd.MultiIndex.from_frame(per_umi[["cell", "gene"]]), sort=False
    )
    molecules = directional_molecules(
        group_ids,
        per_umi["umi"].to_numpy(dtype=np.uint64),
        per_umi["reads"].to_numpy(),
        umi_length,
    )
    reads = np.bincount(group_ids, weights=per_umi["reads"].to_numpy(), minlength=len(uniques))
    table = pd.DataFrame(
        {
            "cell": uniques.get_level_values(0),
            "gene": uniques.get_level_values(1),
            "umis": molecules,
            "reads": reads.astype(np.int64),
        }
    )
    stats = {
        "assigned_reads": int(assignments["reads"].sum()),
        "assigned_reads_in_cells": int(in_cells["reads"].sum()),
        "reads_with_n_umi": int(in_cells["reads"][with_n].sum()),
        "distinct_umis": int(len(per_umi)),
        "molecules": int(molecules.sum()),
    }
    return table, stats
