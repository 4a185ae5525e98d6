"""The chemistry a sample's free text names (title, characteristics, protocols): 10x 3′ and
5′ kits with their version, Drop-seq, inDrop, Seq-Well, CEL-seq2, Smart-seq2/3 and other
plate-based protocols. Read by ``scatlas.sources.sample_kind`` (what a sample is) and by
``scatlas.reads.barcodes`` (which barcoded chemistry scatlas counts itself).
"""

from __future__ import annotations

import re

_TENX = re.compile(r"\b10x\b|\b10x ?genomics\b|\bchromium\b|\bsc[35]pv\d", re.I)
_FLEX = re.compile(r"\bflex\b|\bfixed rna profiling\b", re.I)
_THREE = re.compile(r"\b3['′’]|\bthree[- ]prime\b|\bsc3p", re.I)
_FIVE = re.compile(r"\b5['′’]|\bfive[- ]prime\b|\bsc5p", re.I)
_TENX_VERSION = re.compile(
    r"\b(?:v|version |chemistry v|sc[35]pv)\s?([1-4])(?:\.\d)?\b|\bv([1-4])(?:\.\d)? chemistry\b",
    re.I,
)
#: (name, pattern) of the non-10x protocols, first match wins
PROTOCOLS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(p, re.I))
    for name, p in (
        ("dropseq", r"\bdrop-?seq\b"),
        ("indrop", r"\bin-?drops?\b"),
        ("seqwell", r"\bseq-?well\b"),
        ("celseq2", r"\bcel-?seq ?2\b"),
        ("smartseq3", r"\bsmart-?seq ?3\b"),
        ("smartseq2", r"\bsmart-?seq ?2\b"),
        ("splitseq", r"\bsplit-?seq\b|\bparse biosciences\b|\bevercode\b"),
        ("plate", r"\bmars-?seq\b|\bscrb-?seq\b|\bquartz-?seq\b|\bfluidigm c1\b"),
    )
)


#: spatial capture (spots of several cells, not single cells): the chemistry is the platform
SPATIAL = re.compile(
    r"\bvisium\b|\bslide-?seq(v2)?\b|\bstereo-?seq\b|\bgeomx\b|\bspatial[_ ]barcodes?\b", re.I
)


def chemistry_of(text: str, *, spatial: bool = True) -> str:
    """The chemistry the text names: ``10x_3p_v1``..``v4``, ``10x_5p_v1``..``v3``,
    ``10x_flex`` (Chromium Fixed RNA Profiling), ``10x`` (version unstated), ``dropseq``,
    ``indrop``, ``seqwell``, ``celseq2``, ``smartseq2``, ``smartseq3``, ``splitseq``
    (SPLiT-seq / Parse Evercode), ``plate`` (other plate-based protocols), ``spatial``
    (Visium, Slide-seq, Stereo-seq, GeoMx), or "" (none; two 10x versions, or 10x and
    another droplet protocol: ambiguous). ``spatial=False`` reads past
    spatial platforms (a single-cell sample whose shared protocol also describes Visium)."""
    if spatial and SPATIAL.search(text):
        return "spatial"
    others = [name for name, pattern in PROTOCOLS if pattern.search(text)]
    if _TENX.search(text) and set(others) & {"dropseq", "indrop", "seqwell"}:
        return ""  # two droplet protocols named: ambiguous
    if _TENX.search(text) and _FLEX.search(text):
        return "10x_flex"  # probe-based, whatever the kit version
    if _TENX.search(text):
        versions = {a or b for a, b in _TENX_VERSION.findall(text)}
        end = "5p" if _FIVE.search(text) else "3p"
        return (
            f"10x_{end}_v{versions.pop()}"
            if len(versions) == 1
            else ("10x" if not versions else "")
        )
    return others[0] if others else ""


def tenx_end(text: str) -> str:
    """Which end of the transcript the 10x kits a text names capture: ``3p``, ``5p``,
    ``both``, or "" (no 10x named). A 10x text naming neither end is a 3′ kit."""
    if not _TENX.search(text):
        return ""
    three, five = bool(_THREE.search(text)), bool(_FIVE.search(text))
    return "both" if three and five else ("5p" if five else "3p")
