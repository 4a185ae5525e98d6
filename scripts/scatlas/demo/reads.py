"""Simulated sequencing reads and FASTQ files, laid out as ENA lays them out.

Fragments come from spliced transcripts (unstranded: either strand), from gene bodies
(pre-mRNA, intronic), from intergenic sequence, and a few from non-genomic contaminants
that cannot align. Paired-end: R1 forward and R2 reverse complement of the same fragment.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np

from scatlas.demo import spec
from scatlas.demo.expression import ExpressionModel
from scatlas.demo.genome import BASES, Genome, revcomp

_CODE = np.zeros(256, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i


def ena_fastq_dir(run: str) -> str:
    """ENA's directory for a run's FASTQ files (``vol1/fastq/<dir1>[/<dir2>]/<run>``).

    <dir1> is the first six characters; <dir2> is absent for 6-digit accessions, ``00`` + the
    last digit for 7 digits, ``0`` + the last two digits for 8, the last three digits for 9.
    """
    digits = len(run) - 3
    dir1 = run[:6]
    if digits <= 6:
        return f"vol1/fastq/{dir1}/{run}"
    if digits == 7:
        return f"vol1/fastq/{dir1}/00{run[-1]}/{run}"
    if digits == 8:
        return f"vol1/fastq/{dir1}/0{run[-2:]}/{run}"
    return f"vol1/fastq/{dir1}/{run[-3:]}/{run}"


def fastq_names(run: str, layout: str) -> list[str]:
    if layout == "PAIRED":
        return [f"{run}_1.fastq.gz", f"{run}_2.fastq.gz"]
    return [f"{run}.fastq.gz"]


@dataclass
class Library:
    mates: list[np.ndarray]  # one (n, L) uint8 array per mate
    quals: list[np.ndarray]


class ReadSimulator:
    """Draws fragments from a genome and its transcripts; all randomness comes from ``rng``."""

    def __init__(self, genome: Genome, model: ExpressionModel):
        self.L = spec.READ_LENGTH
        seqs, tx_off, tx_len, first, cut = [], [], [], [], []
        pos = 0
        for gi, g in enumerate(genome.genes):
            first.append(len(tx_len))
            w = model.isoform_weights[gi]
            cut.append(float(w[0]) if len(w) > 1 else 2.0)
            for tx in g.transcripts:
                s = genome.transcript_seq(g, tx)
                seqs.append(s)
                tx_off.append(pos)
                tx_len.append(len(s))
                pos += len(s)
        self.tx_seq = np.concatenate(seqs)
        self.tx_off = np.array(tx_off, dtype=np.int64)
        self.tx_len = np.array(tx_len, dtype=np.int64)
        self.gene_first_tx = np.array(first, dtype=np.int64)
        self.gene_iso_cut = np.array(cut)

        names = list(genome.chroms)
        self.g_seq = np.concatenate([genome.chroms[c] for c in names])
        lens = np.array([len(genome.chroms[c]) for c in names], dtype=np.int64)
        self.chrom_off = np.concatenate([[0], np.cumsum(lens)[:-1]])
        self.chrom_len = lens
        cidx = {c: i for i, c in enumerate(names)}
        self.gene_span = np.array(
            [
                (self.chrom_off[cidx[g.chrom]] + g.start, self.chrom_off[cidx[g.chrom]] + g.end)
                for g in genome.genes
            ],
            dtype=np.int64,
        )

    # -- fragments -------------------------------------------------------------------------------
    def _frag_len(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(spec.FRAGMENT_MIN, spec.FRAGMENT_MAX + 1, size=n)

    def _transcript_fragments(self, counts: np.ndarray, rng: np.random.Generator):
        g = np.repeat(np.arange(len(counts)), counts)
        t = self.gene_first_tx[g] + (rng.random(len(g)) > self.gene_iso_cut[g])
        tl = self.tx_len[t]
        fl = np.minimum(self._frag_len(len(g), rng), tl)
        start = (rng.random(len(g)) * (tl - fl + 1)).astype(np.int64)
        a = self.tx_off[t] + start
        return self.tx_seq, a, a + fl - self.L

    def _genomic_fragments(self, n_intronic: int, n_intergenic: int, rng: np.random.Generator):
        gi = rng.integers(0, len(self.gene_span), size=n_intronic)
        lo, hi = self.gene_span[gi, 0], self.gene_span[gi, 1]
        fl1 = np.minimum(self._frag_len(n_intronic, rng), hi - lo)
        a1 = lo + (rng.random(n_intronic) * (hi - lo - fl1 + 1)).astype(np.int64)
        ci = rng.choice(
            len(self.chrom_len), size=n_intergenic, p=self.chrom_len / self.chrom_len.sum()
        )
        fl2 = self._frag_len(n_intergenic, rng)
        a2 = self.chrom_off[ci] + (
            rng.random(n_intergenic) * (self.chrom_len[ci] - fl2 + 1)
        ).astype(np.int64)
        a = np.concatenate([a1, a2])
        fl = np.concatenate([fl1, fl2])
        return self.g_seq, a, a + fl - self.L

    def _gather(self, seq: np.ndarray, a: np.ndarray, b: np.ndarray, rng: np.random.Generator):
        """R1/R2 for fragments [a, b + L): the forward end and the reverse-complemented far end."""
        cols = np.arange(self.L)
        fwd = seq[a[:, None] + cols]
        rev = revcomp(seq[b[:, None] + cols])
        sense = rng.random(len(a)) < 0.5  # unstranded library: either strand
        r1 = np.where(sense[:, None], fwd, rev)
        r2 = np.where(sense[:, None], rev, fwd)
        return r1, r2

    def library(
        self,
        counts: np.ndarray,
        n_intronic: int,
        n_intergenic: int,
        n_contaminant: int,
        paired: bool,
        rng: np.random.Generator,
    ) -> Library:
        parts1, parts2 = [], []
        seq, a, b = self._transcript_fragments(counts, rng)
        r1, r2 = self._gather(seq, a, b, rng)
        parts1.append(r1)
        parts2.append(r2)
        if n_intronic or n_intergenic:
            seq, a, b = self._genomic_fragments(n_intronic, n_intergenic, rng)
            r1, r2 = self._gather(seq, a, b, rng)
            parts1.append(r1)
            parts2.append(r2)
        if n_contaminant:
            parts1.append(BASES[rng.integers(0, 4, size=(n_contaminant, self.L))])
            parts2.append(BASES[rng.integers(0, 4, size=(n_contaminant, self.L))])
        r1 = np.concatenate(parts1)
        r2 = np.concatenate(parts2)
        order = rng.permutation(len(r1))
        mates = [r1[order]] + ([r2[order]] if paired else [])
        out_m, out_q = [], []
        for m in mates:
            seqs, quals = _sequencing_errors(m, rng)
            out_m.append(seqs)
            out_q.append(quals)
        return Library(out_m, out_q)

    def droplet_library(
        self,
        barcodes: np.ndarray,
        mol_barcode: np.ndarray,
        mol_gene: np.ndarray,
        umi_length: int,
        rng: np.random.Generator,
    ) -> Library:
        """Reads of a barcoded (3' tag) run: read 1 = cell barcode + UMI, read 2 = 50 bp of
        the molecule's cDNA in sense orientation, starting a fragment length (200-350 bp)
        upstream of the transcript's 3' end.

        ``barcodes`` (n_barcodes, Lc) uint8; per molecule, the index of its barcode and its
        gene (``mol_gene`` >= 0), or a non-genic origin: -1 intronic, -2 intergenic,
        -3 contaminant. Each molecule gets a random UMI and 1 + Poisson(2) reads (PCR
        copies, each fragmented on its own).
        """
        n_mol = len(mol_gene)
        umis = BASES[rng.integers(0, 4, size=(n_mol, umi_length))]
        copies = 1 + rng.poisson(spec.READS_PER_MOLECULE - 1.0, size=n_mol)
        read_mol = np.repeat(np.arange(n_mol), copies)
        r2 = np.empty((len(read_mol), self.L), dtype=np.uint8)
        cols = np.arange(self.L)
        genic = mol_gene[read_mol] >= 0
        if genic.any():
            g = mol_gene[read_mol[genic]]
            # the transcript is chosen per molecule, the fragment per read
            iso = rng.random(n_mol) > self.gene_iso_cut[np.maximum(mol_gene, 0)]
            t = self.gene_first_tx[g] + iso[read_mol[genic]]
            tl = self.tx_len[t]
            start = np.clip(tl - self._frag_len(len(g), rng), 0, tl - self.L)
            r2[genic] = self.tx_seq[(self.tx_off[t] + start)[:, None] + cols]
        for code, kind in ((-1, "intronic"), (-2, "intergenic")):
            mols = np.flatnonzero(mol_gene == code)
            if not len(mols):
                continue
            n = len(mols)
            _, a, _ = self._genomic_fragments(
                n if kind == "intronic" else 0, n if kind == "intergenic" else 0, rng
            )
            first = np.full(n_mol, -1, dtype=np.int64)
            first[mols] = a
            sel = mol_gene[read_mol] == code
            r2[sel] = self.g_seq[first[read_mol[sel]][:, None] + cols]
        cont = mol_gene[read_mol] == -3
        r2[cont] = BASES[rng.integers(0, 4, size=(int(cont.sum()), self.L))]
        r1 = np.concatenate([barcodes[mol_barcode[read_mol]], umis[read_mol]], axis=1)
        order = rng.permutation(len(read_mol))
        out_m, out_q = [], []
        for m in (r1[order], r2[order]):
            seqs, quals = _sequencing_errors(m, rng)
            out_m.append(seqs)
            out_q.append(quals)
        return Library(out_m, out_q)

    def genomic_library(self, n: int, paired: bool, rng: np.random.Generator) -> Library:
        """Reads of genomic fragments only (ATAC-like libraries)."""
        return self.library(np.zeros(len(self.gene_span), dtype=np.int64), 0, n, 0, paired, rng)


def _sequencing_errors(
    reads: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """~0.3% substitutions, a few N calls, Phred+33 qualities that decay along the read."""
    n, L = reads.shape
    pos = np.arange(L)[None, :]
    q = 37.0 - 0.07 * pos + rng.normal(0.0, 2.0, size=(n, L))
    tail = rng.random(n) < 0.06  # a few reads lose quality towards the 3' end
    q[tail] -= np.clip(pos - L * 0.6, 0, None)[0] * 1.2
    q = np.clip(np.rint(q), 2, 41)
    out = reads.copy()
    err = rng.random((n, L)) < spec.SUBSTITUTION_RATE
    shift = rng.integers(1, 4, size=int(err.sum()))
    out[err] = BASES[(_CODE[out[err]] + shift) % 4]
    q[err] = np.minimum(q[err], 14)
    ncall = rng.random((n, L)) < 0.0004
    out[ncall] = ord("N")
    q[ncall] = 2
    return out, (q + 33).astype(np.uint8)


def fastq_bytes(run: str, reads: np.ndarray, quals: np.ndarray) -> bytes:
    """FASTQ as ENA/fastq-dump writes it: ``@RUN.i i length=L``, sequence, ``+``, qualities."""
    n, L = reads.shape
    body = np.empty((n, 2 * L + 4), dtype=np.uint8)
    body[:, :L] = reads
    body[:, L] = 10
    body[:, L + 1] = ord("+")
    body[:, L + 2] = 10
    body[:, L + 3 : 2 * L + 3] = quals
    body[:, -1] = 10
    raw = body.tobytes()
    w = 2 * L + 4
    parts: list[bytes] = []
    for i in range(n):
        parts.append(f"@{run}.{i + 1} {i + 1} length={L}\n".encode())
        parts.append(raw[i * w : (i + 1) * w])
    return b"".join(parts)


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip (mtime 0, no file name)."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def restamp_gzip(data: bytes, mtime: int) -> bytes:
    """The same gzip member with another header mtime: same size and content, different md5."""
    return data[:4] + int(mtime).to_bytes(4, "little") + data[8:]
