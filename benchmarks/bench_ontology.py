"""Free text -> Cell Ontology mapping: lineage scores on curated gold sets, on two Cell
Ontology releases, beside a naive lookup; and speed.

    .venv/bin/python benchmarks/bench_ontology.py [--verbose] [--n-speed 100000]
        [--ontology PATH|cellxgene-ontology-guide[:vYYYY-MM-DD] ...] [--plain-json]
        [--against REV]

Gold (``benchmarks/data/ontology_gold.tsv``, built by ``make_ontology_gold.py``; sources
and licences in ``benchmarks/data/README.md``): Tabula Muris (droplet + FACS, every tissue:
authors' free text and the curated class texts, with the curators' CL ids), PanglaoDB's
cell-type names as curated by ScPCA, and NBAtlas labels as curated by OpenScPCA, each with
a dev and a test split (nothing is tuned to the test split); the reference labels of
SingleR's celldex package (mouse ImmGen and RNA-seq, five human references) with the
celldex authors' CL ids, dev and test; the Azimuth references' labels (kidney, lung,
pancreas, PBMC, motor cortex, mouse brain) with their curators' CL ids and the reference's
tissue, dev and test; and the Pan-Immune CellTypist labels with their authors' CL ids, dev
only.

Scoring, on the gold term's lineage (the team's decision): **on-lineage** = the answer is the
gold term (exact), an ancestor of it (coarser) or a descendant of it (finer); **off** = any
other answer; **no answer** = unmatched, ambiguous, withheld or naming none. Percentages of
the texts whose gold id is current in the release (ids through ``replaced_by``; a gold id the
release lacks is counted in ``nogold`` and not scored). Targets on each test split: free
text on-lineage >= 85%, off <= 3%, no answer <= 12%; class texts 100% exact.

The peer, in the same run: a naive exact (case-insensitive) lookup of the whole text among
term names and synonyms of any scope. Ontology releases: the pinned 2022-12-15 snapshot and
the newest CL in the PyPI package cellxgene-ontology-guide (JSON: EXACT synonyms and is_a
only), read as scatlas reads it: completed from the snapshot with the other synonyms,
subsets and develops_from links of the terms both hold (``--plain-json``: the JSON alone).

Without gold: every informative CL name "<X> cell" rewritten as authors write labels
(plural, without "cell", markers as signs, the place first, "<X>-like cells"), its own term
the answer (for a likeness, none). And the names of the terms the newer release added,
mapped with the older one: right on the new term's lineage in the newer release; and the
names and synonyms it added for terms the older one has, right on the term's lineage.

Speed: 100,000 distinct source texts ("title | source | cell type: ...; tissue: ...; ...")
recombined from real vocabulary (CL names and synonyms, lab shorthand, marker notation,
tissues, free-text frames) with a fixed seed, mapped cold (empty caches), single process.
With ``--against REV`` the same texts are also mapped by that git revision's matcher, the
two alternated in fresh processes, and the CPU ratio printed.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))  # realdata: the real labelled sets

from realdata import PBMC_CURATED_TERMS  # noqa: E402

from scatlas.ontology import (  # noqa: E402
    CellOntology,
    FieldText,
    TermMatcher,
    cached_ontology,
    field_kind,
    load_ontology,
    map_texts,
    read_abbreviations,
)
from scatlas.ontology import text as text_normalisation  # noqa: E402
from scatlas.ontology.releases import CELLXGENE, ontology_file  # noqa: E402
from scatlas.package_data import snapshot_obo  # noqa: E402


def shared_data() -> Path:
    env = os.environ.get("SCATLAS_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


# --- the peer ----------------------------------------------------------------------------


class NaiveLookup:
    """Exact (case-insensitive) lookup of the whole text among term names and synonyms of
    any scope: one term -> it; several -> the one whose name it is, else no answer."""

    def __init__(self, onto: CellOntology):
        self.onto = onto
        self.index: dict[str, set[str]] = {}
        self.names: dict[str, str] = {}
        for cl_id in onto.term_ids():
            info = onto.info(cl_id)
            self.names[info.name.lower()] = cl_id
            for text in [info.name, *(s for s, _ in info.synonyms)]:
                self.index.setdefault(text.lower().strip(), set()).add(cl_id)

    def lookup(self, text: str) -> str | None:
        key = " ".join(text.lower().split())
        hits = self.index.get(key, set())
        if len(hits) == 1:
            return next(iter(hits))
        return self.names.get(key) if hits else None

    def __call__(
        self, text: str, tissue: str | None = None, field: str = ""
    ) -> tuple[str | None, str]:
        hit = self.lookup(text)
        return hit, "mapped" if hit else "unmatched"


def scatlas_mapper(matcher: TermMatcher) -> Callable:
    """(answer, status) of one label in its tissue, read as a value of the gold's column
    (``free_annotation``: an author's cell-type label; ``cell_ontology_class``: a curated
    ontology class, kept as named)."""

    def run(
        text: str, tissue: str | None = None, field: str = "free_annotation"
    ) -> tuple[str | None, str]:
        res = matcher.annotate([FieldText(field, text, field_kind(field))], tissue=tissue)
        return (res.match.cl_id if res.match else None), res.status

    return run


# --- gold standard -----------------------------------------------------------------------

GOLD = REPO / "benchmarks" / "data" / "ontology_gold.tsv"
KINDS = {"free": "free text", "class": "class texts"}
TARGETS = {"on": 85.0, "off": 3.0, "none": 12.0}  # the issue's targets on each test split
NO_ANSWER = ("unmatched", "ambiguous", "withheld", "none")


def read_gold(path: Path = GOLD) -> pd.DataFrame:
    """The curated pairs (see make_ontology_gold.py): set, split, kind, tissue, text, gold_id."""
    if not path.is_file():
        raise SystemExit(f"gold standard not found: {path}")
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def lineage(onto: CellOntology, answer: str | None, gold: str) -> str:
    """exact / coarser / finer (on the gold term's lineage) or off."""
    if answer == gold:
        return "exact"
    if onto.is_ancestor(answer, gold):
        return "coarser"
    return "finer" if onto.is_ancestor(gold, answer) else "off"


def score(rows: pd.DataFrame, answers: list[tuple[str | None, str]], onto: CellOntology) -> dict:
    """Lineage scoring of (answer, status) against the gold ids current in ``onto``."""
    counts: Counter = Counter()
    for gold, (ans, status) in zip(rows["gold_id"], answers, strict=True):
        current = onto.resolve(gold) if gold and gold in onto else None
        if not gold:
            continue
        if current is None:
            counts["gold not in release"] += 1
            continue
        counts["n"] += 1
        counts[lineage(onto, ans, current) if ans else status] += 1
    n = counts["n"]
    pct = {k: 100.0 * v / n if n else float("nan") for k, v in counts.items() if k != "n"}
    on = sum(pct.get(k, 0.0) for k in ("exact", "coarser", "finer"))
    none = sum(pct.get(k, 0.0) for k in NO_ANSWER)
    return {"n": n, "on": on, "off": pct.get("off", 0.0), "none": none, **pct,
            "missing": counts["gold not in release"]}  # fmt: skip


FIELDS = {"free": "free_annotation", "class": "cell_ontology_class"}  # the gold's columns


def run_mapper(rows: pd.DataFrame, fn) -> list[tuple[str | None, str]]:
    return [
        fn(t, ts or None, FIELDS[k])
        for t, ts, k in zip(rows["text"], rows["tissue"], rows["kind"], strict=True)
    ]


COLS = ("on", "exact", "coarser", "finer", "off", "none", "unmatched", "ambiguous", "withheld")


def _line(label: str, method: str, r: dict) -> str:
    vals = " ".join(f"{r.get(c, 0.0):>8.1f}%" for c in COLS)
    return f"{label:34} {method:8} {r['n']:>4} {vals} {r['missing']:>5}"


def _target_check(r: dict, kind: str) -> str:
    if kind == "class":
        return "met" if r.get("exact", 0.0) == 100.0 else "NOT met"
    ok = r["on"] >= TARGETS["on"] and r["off"] <= TARGETS["off"] and r["none"] <= TARGETS["none"]
    return "met" if ok else "NOT met"


def report_lineage(gold: pd.DataFrame, onto: CellOntology, methods: dict, verbose: bool) -> dict:
    """Per gold set, text kind and split: lineage scores of every method, their ratio, and
    the targets on test splits. Returns the scatlas scores by (set, kind, split)."""
    print(
        f"{'set / kind / split':34} {'method':8} {'n':>4} "
        + " ".join(f"{c[:8]:>9}" for c in COLS)
        + " nogold"
    )
    out = {}
    for (name, kind, split), rows in gold.groupby(["set", "kind", "split"], sort=True):
        label = f"{name} / {KINDS[kind]} / {split}"
        scores = {m: score(rows, run_mapper(rows, fn), onto) for m, fn in methods.items()}
        for m, r in scores.items():
            print(_line(label, m, r))
        a, b = scores["scatlas"], scores["naive"]
        ratio = f"{a['on'] / b['on']:.2f}x" if b["on"] else "inf"
        verdict = f"; target {_target_check(a, kind)}" if split == "test" else ""
        print(f"{'':34} on-lineage ratio scatlas/naive {ratio}{verdict}")
        out[(name, kind, split)] = a
        if verbose:
            print_answers(rows, methods["scatlas"], onto)
    return out


def print_answers(rows: pd.DataFrame, fn, onto: CellOntology) -> None:
    for t, ts, g, k in zip(
        rows["text"], rows["tissue"], rows["gold_id"], rows["kind"], strict=True
    ):
        ans, status = fn(t, ts or None, FIELDS[k])
        cur = onto.resolve(g) if g and g in onto else None
        v = lineage(onto, ans, cur) if ans and cur else status if not ans else "-"
        shown = f"{ans} {onto.label(ans)}" if ans else f"- ({status})"
        print(f"    [{ts}] {t[:55]!r:57} -> {shown[:50]:50} | {g} [{v}]")


def report_pooled(gold: pd.DataFrame, onto: CellOntology, methods: dict) -> None:
    """Free text of every set pooled, per split."""
    free = gold[gold["kind"] == "free"]
    for split, rows in free.groupby("split"):
        for m, fn in methods.items():
            print(
                _line(f"all sets / free text / {split}", m, score(rows, run_mapper(rows, fn), onto))
            )


THRESHOLDS = (0.0, 0.6, 0.7, 0.8, 0.9)


def report_abstention(gold: pd.DataFrame, onto: CellOntology, matcher: TermMatcher) -> None:
    """Free text, dev split: the same scores when answers below a confidence are withheld."""
    rows = gold[(gold["kind"] == "free") & (gold["split"] == "dev")]
    got = [
        matcher.annotate([FieldText("free_annotation", t, "cell type")], tissue=ts or None)
        for t, ts in zip(rows["text"], rows["tissue"], strict=True)
    ]
    print("\n== free text, dev split of every set: answers below a confidence withheld ==")
    for t in THRESHOLDS:
        ans = [
            (r.match.cl_id, r.status)
            if r.match is not None and r.match.confidence >= t
            else (None, r.status if r.match is None else "withheld")
            for r in got
        ]
        print(_line(f"min confidence {t:.2f}", "scatlas", score(rows, ans, onto)))


# --- CL's own names as authors write them (no gold: each name's term is the answer) ------

_SIGNS = (("-positive", "+"), ("-negative", "-"))


def _with_signs(name: str, short: bool) -> str:
    """ "CD4-positive, alpha-beta memory T cell" -> "CD4+ alpha-beta memory T cell"; short:
    "CD4+ memory T cell" (no "alpha-beta", no commas)."""
    if short:
        name = re.sub(r",? alpha-beta", "", name)
    for word, sign in _SIGNS:
        name = name.replace(word, sign)
    return name.replace(",", "") if short else name.replace(", ", " ")


def written_names(onto: CellOntology) -> pd.DataFrame:
    """Informative names rewritten as authors write labels: plural, without the noun
    "cell", markers as signs (also without "alpha-beta" and commas), the place first
    ("<place> <X> cell" for "<X> cell of <place>"), and "<X>-like cells" (a likeness:
    no answer is right)."""
    rows = []
    for cl_id in onto.term_ids():
        name = onto.label(cl_id)
        if not onto.is_informative(cl_id):
            continue
        forms = {}
        if name.endswith(" cell"):
            stem = name[: -len(" cell")]
            forms = {"plural": f"{name}s", "without noun": stem, "likeness": f"{stem}-like cells"}
        if re.search("-(?:posi|nega)tive", name):
            forms["signs"] = _with_signs(name, short=False)
            forms["signs, short"] = _with_signs(name, short=True)
        place = re.match(r"^(.+ cell) of (?:the )?(.+)$", name)
        if place:
            forms["place first"] = f"{place.group(2)} {place.group(1)}s"
        rows += [(form, text, cl_id) for form, text in forms.items()]
    out = pd.DataFrame(rows, columns=["form", "text", "gold_id"])
    return out.assign(kind="free", tissue="")


def report_written_names(onto: CellOntology, methods: dict) -> None:
    """Lineage scores of each rewriting of CL's names, the name's term as gold."""
    print("\n== CL's names as authors write them (no gold: the name's own term is the answer;")
    print("   for a likeness no answer is right) ==")
    names = written_names(onto)
    for form, rows in names.groupby("form", sort=False):
        for m, fn in methods.items():
            print(_line(f"{form}", m, score(rows, run_mapper(rows, fn), onto)))


# --- names a newer CL added, read with an older one (no gold: the newer CL's lineage) ----


def _known_parents(old: CellOntology, new: CellOntology, cl_id: str) -> set[str]:
    """The nearest ancestors of a term of ``new`` that ``old`` has as current terms."""
    out: set[str] = set()
    todo, seen = [cl_id], {cl_id}
    while todo:
        for p in new.parents(todo.pop()):
            if p in seen:
                continue
            seen.add(p)
            if p in old and old.resolve(p) == p:
                out.add(p)
            else:
                todo.append(p)
    return out


def new_name_verdict(
    old: CellOntology, new: CellOntology, cl_id: str, answer: str | None, known: set[str]
) -> str:
    """coarser / finer / off for an answer (a term of ``old``) to the name of ``cl_id``, a
    term ``old`` lacks: coarser when the answer is an ancestor of it in ``new`` or of its
    nearest ancestors ``old`` has (``known``, `_known_parents`); finer when a descendant of
    it in ``new``."""
    current = new.resolve(answer) if answer in new else None
    if current and new.is_ancestor(current, cl_id):
        return "coarser"
    if any(answer == p or old.is_ancestor(answer, p) for p in known):
        return "coarser"
    return "finer" if current and new.is_ancestor(cl_id, current) else "off"


def report_new_names(old: CellOntology, new: CellOntology, methods: dict) -> None:
    """The names of the terms ``new`` added (cell types named since ``old``: authors'
    labels often name types the pinned CL lacks) mapped with ``old``: on the new term's
    lineage (coarser: an ancestor; finer), off it, or no answer. CL's newer parents do not
    list every true ancestor ("interneuron of myenteric plexus" is filed under enteric
    neuron only), so a few "off" answers are right: a check, not gold."""
    parents = {t: _known_parents(old, new, t) for t in new.term_ids() if t not in old}
    added = [t for t, known in parents.items() if known]
    print(
        f"\n== names of the {len(added)} terms CL {new.version} added, mapped with CL "
        f"{old.version} (no gold: the new term's lineage in the newer release) =="
    )
    for m, fn in methods.items():
        counts: Counter = Counter()
        for t in added:
            ans, status = fn(new.label(t), None, "free_annotation")
            counts[new_name_verdict(old, new, t, ans, parents[t]) if ans else status] += 1
        pct = {k: 100.0 * v / len(added) for k, v in counts.items()}
        r = {"n": len(added), "missing": 0, **pct}
        r["on"] = pct.get("coarser", 0.0) + pct.get("finer", 0.0)
        r["none"] = sum(pct.get(k, 0.0) for k in NO_ANSWER)
        print(_line("new names", m, r))


def new_synonyms(old: CellOntology, new: CellOntology) -> pd.DataFrame:
    """Names and synonyms the newer release gives terms the older one has, written in no
    way the older one knows (after normalisation): text, gold_id (the term)."""
    known = {
        text_normalisation.normalise_text(x)
        for t in old.term_ids()
        for x in [old.label(t), *(s for s, _ in old.info(t).synonyms)]
    }
    rows = {
        (text, t)
        for t in new.term_ids()
        if t in old and old.resolve(t) == t
        for text in [new.label(t), *(s for s, _ in new.info(t).synonyms)]
        if text_normalisation.normalise_text(text) not in known
    }
    out = pd.DataFrame(sorted(rows), columns=["text", "gold_id"])
    return out.assign(kind="free", tissue="")


def report_new_synonyms(old: CellOntology, new: CellOntology, methods: dict) -> None:
    """The names and synonyms CL added for terms it already had, mapped with ``old`` and
    scored on the term's lineage there."""
    rows = new_synonyms(old, new)
    print(
        f"\n== {len(rows)} names and synonyms CL {new.version} added for terms CL "
        f"{old.version} has, mapped with the older (no gold: the term's lineage) =="
    )
    for m, fn in methods.items():
        print(_line("new synonyms", m, score(rows, run_mapper(rows, fn), old)))


# --- other real labels (no gold) ---------------------------------------------------------


def other_labels(data: Path) -> list[tuple[str, str, str | None]]:
    """(source, text, tissue) of real author labels and GEO characteristics."""
    out: list[tuple[str, str, str | None]] = []
    zheng = data / "expression" / "pbmc-zheng-sorted" / "zheng_sorted_reference.labels.csv"
    if zheng.exists():
        for lab in sorted(set(pd.read_csv(zheng)["label"])):
            out.append(("Zheng 2017 PBMC", lab, "blood"))
    for name in ("wang", "xin"):
        f = data / "expression" / "pancreas-wang-xin" / f"{name}.obs.csv"
        if f.exists():
            for lab in sorted(set(pd.read_csv(f)["cell_type"])):
                out.append((f"{name} 2016 pancreas", lab, "pancreas"))
    texts: set[str] = set()
    for soft in sorted((data / "geo").glob("*_GSM.soft")):
        for line in soft.read_text(errors="replace").splitlines():
            m = re.match(r"!Sample_(source_name_ch1|characteristics_ch1) = (.*)", line)
            if m:
                texts.add(m.group(2).strip())
    for t in sorted(texts):
        out.append(("GEO characteristics", t, None))
    return out


# 10x Genomics' descriptions of the Zheng 2017 sorted populations, with the terms curated
# by hand before this matcher existed (an independent small check)
ZHENG_CURATED = PBMC_CURATED_TERMS


def _verdict(onto: CellOntology, answer: str | None, gold: str) -> str:
    if answer is None:
        return "-"
    if answer == gold:
        return "exact"
    if onto.is_ancestor(answer, gold):
        return "coarser"
    return "finer" if onto.is_ancestor(gold, answer) else "unrelated"


def report_curated(onto: CellOntology, methods) -> None:
    print("\n== Zheng 2017 sorted-population descriptions vs terms curated in round one ==")
    for name, fn in methods.items():
        verdicts = Counter(_verdict(onto, fn(t)[0], g) for t, g in ZHENG_CURATED.items())
        print(f"  {name:22} {dict(sorted(verdicts.items()))}")
    for text, gold in ZHENG_CURATED.items():
        a = methods["scatlas"](text)[0]
        print(
            f"    {text!r:42} -> {a or '-':11} {onto.label(a) if a else '':45} "
            f"| {gold} [{_verdict(onto, a, gold)}]"
        )


def report_other(data: Path, matcher: TermMatcher, naive: NaiveLookup) -> None:
    rows = other_labels(data)
    if not rows:
        return
    print("\n== other real labels (no gold ids): answers for inspection ==")
    mapped = Counter()
    for source, text, tissue in rows:
        fields = [FieldText("cell type", text, "cell type")]
        if source == "GEO characteristics":
            from scatlas.ontology import parse_source_text

            fields = parse_source_text(text)
        res = matcher.annotate(fields, tissue=tissue)
        n = naive.lookup(text)
        mapped[(source, "scatlas")] += res.match is not None
        mapped[(source, "naive")] += n is not None
        mapped[(source, "n")] += 1
        ans = f"{res.match.cl_id} {res.match.cl_label}" if res.match else f"- ({res.status})"
        print(f"  [{source}] {text[:60]!r:62} -> {ans}")
    for source in dict.fromkeys(s for s, _, _ in rows):
        n = mapped[(source, "n")]
        print(
            f"  {source}: scatlas answers {mapped[(source, 'scatlas')]}/{n}, "
            f"naive {mapped[(source, 'naive')]}/{n}"
        )


# --- speed -------------------------------------------------------------------------------


# the pieces the synthetic source texts are recombined from
MARKERS = [
    "CD4+",
    "CD8+",
    "CD14hi",
    "CD16lo",
    "CD45RA+ CCR7-",
    "Ly6Chi",
    "Lin- Sca1+ cKit+",
    "CD4-CD8-",
    "CD56bright",
    "CD19+",
    "EpCAM+",
    "CD31+",
    "GFP+",
    "Lgr5-high",
    "",
]
FRAMES = [
    "{}",
    "{}",
    "{}",
    "sorted {}",
    "{} from donor {d}",
    "Drop-seq of {} rep {d}",
    "{} (batch {d})",
    "{} and {}",
    "{}/{}",
    "non-{}",
    "{}-like cells",
    "{} treated with LPS",
    "activated {}",
    "resting {}",
    "{} cluster {d}",
]
TISSUES = [
    "lung",
    "liver",
    "peripheral blood",
    "pancreatic islet",
    "bone marrow",
    "skin",
    "kidney",
    "brain cortex",
    "thymus",
    "spleen",
    "Limb_Muscle",
    "tumour",
    "",
]


def synthetic_texts(onto: CellOntology, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct source texts recombined from real vocabulary (fixed seed)."""
    rng = random.Random(seed)
    names = []
    for cl_id in onto.term_ids():
        info = onto.info(cl_id)
        names.append(info.name)
        names.extend(s for s, scope in info.synonyms if scope in ("EXACT", "RELATED"))
    names += [r.text for r in read_abbreviations(onto)]
    names += ["cells", "unknown", "doublets", "proliferating", "sorted population 3", "mixed"]
    out: set[str] = set()
    k = 0
    while len(out) < n:
        k += 1
        frame = rng.choice(FRAMES)
        words = [
            f"{rng.choice(MARKERS)} {rng.choice(names)}".strip() for _ in range(frame.count("{}"))
        ]
        value = frame.replace("{d}", str(rng.randint(1, 40))).format(*words)
        tissue = rng.choice(TISSUES)
        title = rng.choice(
            [f"GSM{1000000 + k}", f"{tissue[:3].upper()}_{rng.randint(1, 9)}_{k}", f"sample {k}"]
        )
        chars = [
            f"cell type: {value}",
            f"tissue: {tissue}" if tissue else "",
            f"donor: D{rng.randint(1, 20)}",
            f"age: {rng.randint(1, 90)}",
        ]
        out.add(
            " | ".join(
                [
                    title,
                    rng.choice(["PBMC", tissue or "cells", "sorted cells"]),
                    "; ".join(c for c in chars if c),
                ]
            )
        )
    return sorted(out)


def report_speed(onto: CellOntology, n: int) -> None:
    texts = synthetic_texts(onto, n)
    distinct_values = len({t.split("cell type: ")[1].split(";")[0] for t in texts})
    print(
        f"\n== speed: {len(texts)} distinct source texts ({distinct_values} distinct cell-type "
        f"values), 1 process =="
    )
    print(f"  load before: {os.getloadavg()}")
    text_normalisation._word.cache_clear()  # cold: no word normalised yet
    t0 = time.perf_counter()
    matcher = TermMatcher(onto)
    t_build = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    _, results = map_texts(matcher, texts)  # the workflow's path (rule cell_types)
    t_map, c_map = time.perf_counter() - t0, time.process_time() - c0
    text_normalisation._word.cache_clear()
    loop = TermMatcher(onto)
    c0 = time.process_time()
    for t in texts:  # the same, one call per text, the garbage collector on
        loop.explain(t)
    c_loop = time.process_time() - c0
    naive = NaiveLookup(onto)
    values = [t.split("cell type: ")[1].split(";")[0] for t in texts]  # the peer reads no fields
    t0 = time.perf_counter()
    naive_hits = sum(naive.lookup(v) is not None for v in values)
    t_naive = time.perf_counter() - t0
    print(
        f"  scatlas map_texts: index {t_build:.2f} s, mapping {t_map:.2f} s wall, "
        f"{c_map:.2f} s CPU ({1e6 * t_map / len(texts):.0f} us/text); {dict(results)}"
    )
    print(f"  scatlas TermMatcher.explain per text, collector on: {c_loop:.2f} s CPU")
    print(
        f"  naive exact lookup of the cell-type values: {t_naive:.2f} s ({naive_hits} answers); "
        f"ratio scatlas/naive time {t_map / max(t_naive, 1e-9):.0f}x"
    )
    print(
        f"  target: < 30 s CPU for 100,000 texts -> "
        f"{'met' if c_map * 100_000 / len(texts) < 30 else 'NOT met'}"
    )
    print(f"  load after: {os.getloadavg()}")


# one timed mapping in a fresh process: the matcher of the tree at argv[1] (its scripts/),
# the texts of the JSON file argv[2]; prints the CPU seconds of map_texts
_TIME_ONE = """
import json, sys, time
sys.path.insert(0, sys.argv[1] + "/scripts")
from scatlas.ontology import TermMatcher, cached_ontology, map_texts
from scatlas.package_data import snapshot_obo
texts = json.load(open(sys.argv[2]))
matcher = TermMatcher(cached_ontology(snapshot_obo()))
c0 = time.process_time()
map_texts(matcher, texts)
print(time.process_time() - c0)
"""


def report_speed_against(rev: str, onto: CellOntology, n: int, rounds: int) -> None:
    """The same ``n`` texts mapped by this tree and by git revision ``rev`` (its
    ``scripts/`` taken from git), each run in a fresh process, the two alternated
    ``rounds`` times: the best CPU of each and the ratio (this machine's speed drifts by
    tens of percent within minutes; alternating keeps both sides under the same drift)."""
    import json
    import subprocess
    import tempfile

    texts = synthetic_texts(onto, n)
    print(f"\n== speed beside {rev}: {len(texts)} texts, {rounds} alternated rounds ==")
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        old.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", rev, "scripts"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        data = Path(tmp) / "texts.json"
        data.write_text(json.dumps(texts))
        cpu: dict[str, list[float]] = {"this tree": [], rev: []}
        for _ in range(rounds):
            for label, root in (("this tree", REPO), (rev, old)):
                out = subprocess.run(
                    [sys.executable, "-c", _TIME_ONE, str(root), str(data)],
                    capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
                cpu[label].append(float(out.split()[-1]))
    for label, runs in cpu.items():
        print(
            f"  {label:12s} map_texts CPU {min(runs):6.2f} s (runs: {', '.join(f'{r:.2f}' for r in runs)})"
        )
    print(f"  ratio this tree / {rev}: {min(cpu['this tree']) / min(cpu[rev]):.2f}")


def report_release(path: str, gold: pd.DataFrame, args: argparse.Namespace) -> CellOntology:
    onto = load_ontology(ontology_file(path), supplement=not args.plain_json)
    print(
        f"\n#### ontology {onto.version} ({len(onto.term_ids())} current CL terms): {onto.source}"
    )
    if onto.supplemented_from:
        print(f"  completed from {onto.supplemented_from}")
    matcher = TermMatcher(onto)
    methods = {"scatlas": scatlas_mapper(matcher), "naive": NaiveLookup(onto)}
    report_lineage(gold, onto, methods, args.verbose)
    report_pooled(gold, onto, methods)
    report_abstention(gold, onto, matcher)
    report_written_names(onto, methods)
    report_curated(onto, methods)
    return onto


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verbose", action="store_true", help="print every gold text's answer")
    ap.add_argument(
        "--n-speed", type=int, default=100_000, help="texts for the speed run (0: skip)"
    )
    ap.add_argument(
        "--ontology",
        nargs="+",
        default=[str(snapshot_obo()), CELLXGENE],
        help="releases to score on (OBO/JSON files or cellxgene-ontology-guide[:version])",
    )
    ap.add_argument(
        "--plain-json",
        action="store_true",
        help="read JSON releases alone, not completed from the snapshot",
    )
    ap.add_argument("--other", action="store_true", help="also map other real labels")
    ap.add_argument(
        "--against",
        metavar="REV",
        help="also time a git revision's matcher on the same texts, alternated (e.g. a release)",
    )
    ap.add_argument("--rounds", type=int, default=2, help="alternated rounds for --against")
    args = ap.parse_args()
    gold = read_gold()
    print(f"gold: {GOLD} ({len(gold)} rows)")
    print(gold.groupby(["set", "kind", "split"]).size().to_string())
    releases = [report_release(path, gold, args) for path in args.ontology]
    if len(releases) > 1:
        old = releases[0]  # the older release's mappers, for both checks
        methods = {"scatlas": scatlas_mapper(TermMatcher(old)), "naive": NaiveLookup(old)}
        report_new_names(old, releases[-1], methods)
        report_new_synonyms(old, releases[-1], methods)
    onto = cached_ontology(snapshot_obo())
    if args.other:
        report_other(shared_data(), TermMatcher(onto), NaiveLookup(onto))
    if args.n_speed:
        report_speed(onto, args.n_speed)
        if args.against:
            report_speed_against(args.against, onto, args.n_speed, args.rounds)


if __name__ == "__main__":
    main()
