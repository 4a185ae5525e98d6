"""A synthetic genome with Ensembl-style gene models.

Random sequence (~42% GC) on three chromosomes; genes with 2-8 exons on both strands,
canonical GT..AG introns, and for some genes two isoforms that use different exon
subsets, so the union-of-exons gene length differs from every single transcript.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scatlas.demo import spec
from scatlas.fileio import atomic_path

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
_COMP = np.zeros(256, dtype=np.uint8)
for _a, _b in zip(b"ACGTN", b"TGCAN", strict=True):
    _COMP[_a] = _b

CHROMOSOMES = ("chr1", "chr2", "chr3")
GENES_PER_CHROM = (150, 130, 100)
N_LNCRNA_EXTRA = 12  # unnamed genes given the lncRNA biotype


def revcomp(seq: np.ndarray) -> np.ndarray:
    """Reverse complement of a uint8 ASCII array (1-d) or of every row (2-d)."""
    return _COMP[seq[..., ::-1]]


@dataclass
class Transcript:
    transcript_id: str
    exons: list[tuple[int, int]]  # 0-based half-open genome intervals, genome order

    @property
    def length(self) -> int:
        return sum(e - s for s, e in self.exons)


@dataclass
class Gene:
    gene_id: str
    symbol: str
    biotype: str
    chrom: str
    strand: str
    exons: list[tuple[int, int]]  # all exons of the gene (union), genome order
    transcripts: list[Transcript]

    @property
    def start(self) -> int:
        return self.exons[0][0]

    @property
    def end(self) -> int:
        return self.exons[-1][1]

    @property
    def union_length(self) -> int:
        return sum(e - s for s, e in self.exons)


@dataclass
class Genome:
    chroms: dict[str, np.ndarray]  # name -> uint8 ASCII sequence
    genes: list[Gene]

    @property
    def size(self) -> int:
        return sum(len(s) for s in self.chroms.values())

    def transcript_seq(self, gene: Gene, tx: Transcript) -> np.ndarray:
        """Spliced sequence in transcript orientation (reverse complement on the minus strand)."""
        chrom = self.chroms[gene.chrom]
        seq = np.concatenate([chrom[s:e] for s, e in tx.exons])
        return revcomp(seq) if gene.strand == "-" else seq


def _gene_symbols(n: int) -> list[str]:
    named = spec.named_genes()
    if n < len(named):
        raise ValueError(f"need at least {len(named)} genes for the named symbols")
    return named + [f"DMG{i:04d}" for i in range(1, n - len(named) + 1)]


def build_genome(rng: np.random.Generator) -> Genome:
    """Lay out genes on three chromosomes, then draw the sequence around them."""
    n_genes = sum(GENES_PER_CHROM)
    symbols = _gene_symbols(n_genes)
    order = rng.permutation(n_genes)  # which symbol lands where along the genome
    layouts: list[tuple[str, str, list[tuple[int, int]]]] = []
    chrom_len: dict[str, int] = {}
    for chrom, n_here in zip(CHROMOSOMES, GENES_PER_CHROM, strict=True):
        cursor = int(rng.integers(3000, 8000))
        for _ in range(n_here):
            n_exons = int(rng.integers(2, 9))
            exon_lens = rng.integers(100, 401, size=n_exons)
            intron_lens = np.exp(rng.uniform(np.log(150), np.log(3000), size=n_exons - 1)).astype(
                int
            )
            exons = []
            pos = cursor
            for k in range(n_exons):
                exons.append((pos, pos + int(exon_lens[k])))
                pos += int(exon_lens[k])
                if k < n_exons - 1:
                    pos += int(intron_lens[k])
            strand = "+" if rng.random() < 0.5 else "-"
            layouts.append((chrom, strand, exons))
            cursor = pos + int(rng.integers(1000, 4001))
        chrom_len[chrom] = cursor + int(rng.integers(2000, 5000))

    gc = 0.42
    probs = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    chroms = {c: BASES[rng.choice(4, size=n, p=probs)] for c, n in chrom_len.items()}

    lnc_pool = {symbols[i] for i in range(len(spec.named_genes()), n_genes)}
    lnc_extra = set(sorted(lnc_pool)[:: max(1, len(lnc_pool) // N_LNCRNA_EXTRA)][:N_LNCRNA_EXTRA])
    genes: list[Gene] = []
    tx_counter = 0
    for idx, (chrom, strand, exons) in enumerate(layouts):
        symbol = symbols[order[idx]]
        biotype = (
            "lncRNA" if symbol in spec.LNCRNA_SYMBOLS or symbol in lnc_extra else "protein_coding"
        )
        gene_id = f"DEMOG{idx + 1:011d}"
        _canonical_splice_sites(chroms[chrom], exons, strand)
        n = len(exons)
        subsets: list[list[int]]
        if n >= 3 and rng.random() < 0.3:
            # two isoforms, each skipping a different exon: neither holds every exon
            skip_a = int(rng.integers(1, n - 1))  # an internal exon
            skip_b = int(rng.choice([0, n - 1]))  # the first or the last exon
            subsets = [[k for k in range(n) if k != skip_a], [k for k in range(n) if k != skip_b]]
        else:
            subsets = [list(range(n))]
        txs = []
        for sub in subsets:
            tx_counter += 1
            txs.append(Transcript(f"DEMOT{tx_counter:011d}", [exons[k] for k in sub]))
        genes.append(Gene(gene_id, symbol, biotype, chrom, strand, exons, txs))
    return Genome(chroms, genes)


def _canonical_splice_sites(seq: np.ndarray, exons: list[tuple[int, int]], strand: str) -> None:
    """Write GT..AG (plus strand) or CT..AC (minus strand, i.e. GT..AG on the gene's strand)."""
    donor, acceptor = (b"GT", b"AG") if strand == "+" else (b"CT", b"AC")
    for (_, e1), (s2, _) in zip(exons[:-1], exons[1:], strict=True):
        seq[e1 : e1 + 2] = np.frombuffer(donor, dtype=np.uint8)
        seq[s2 - 2 : s2] = np.frombuffer(acceptor, dtype=np.uint8)


def write_fasta(genome: Genome, path: Path, width: int = 60) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        for name, seq in genome.chroms.items():
            fh.write(f">{name}\n".encode())
            n = len(seq)
            full = n // width
            if full:
                block = np.concatenate(
                    [
                        seq[: full * width].reshape(full, width),
                        np.full((full, 1), ord("\n"), np.uint8),
                    ],
                    axis=1,
                )
                fh.write(block.tobytes())
            if n % width:
                fh.write(seq[full * width :].tobytes() + b"\n")


def write_gtf(genome: Genome, path: Path) -> None:
    """Ensembl-style GTF: gene, transcript and exon lines (1-based, closed intervals)."""
    lines = ["#!genome-build DEMO1", "#!genome-version DEMO1", "#!genebuild-last-updated 2024-01"]
    for g in sorted(genome.genes, key=lambda g: (g.chrom, g.start)):
        gattr = (
            f'gene_id "{g.gene_id}"; gene_version "1"; gene_name "{g.symbol}"; '
            f'gene_source "demo"; gene_biotype "{g.biotype}";'
        )
        lines.append(f"{g.chrom}\tdemo\tgene\t{g.start + 1}\t{g.end}\t.\t{g.strand}\t.\t{gattr}")
        for t_i, tx in enumerate(g.transcripts, start=1):
            tattr = (
                f'{gattr} transcript_id "{tx.transcript_id}"; transcript_version "1"; '
                f'transcript_name "{g.symbol}-{200 + t_i}"; transcript_source "demo"; '
                f'transcript_biotype "{g.biotype}";'
            )
            lines.append(
                f"{g.chrom}\tdemo\ttranscript\t{tx.exons[0][0] + 1}\t{tx.exons[-1][1]}\t.\t{g.strand}\t.\t{tattr}"
            )
            ordered = tx.exons if g.strand == "+" else tx.exons[::-1]
            for e_i, (s, e) in enumerate(ordered, start=1):
                exon_id = f"DEMOE{int(tx.transcript_id[5:]):08d}{e_i:03d}"
                eattr = f'{tattr} exon_number "{e_i}"; exon_id "{exon_id}"; exon_version "1";'
                lines.append(f"{g.chrom}\tdemo\texon\t{s + 1}\t{e}\t.\t{g.strand}\t.\t{eattr}")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
