"""Free text -> Cell Ontology mapping: accuracy on the Tabula Muris gold standard, and speed.

    .venv/bin/python benchmarks/bench_ontology.py [--verbose] [--n-speed 100000]

Gold standard: ``../shared/data/ontology-gold/`` (Tabula Muris droplet annotations of 7
tissues: per cell the curated ``cell_ontology_id`` for the authors' ``free_annotation`` and
for the ``cell_ontology_class`` text). Over unique (text, tissue) pairs of each text field,
for scatlas and for the peer, a naive exact name/synonym lookup, in the same run:

* coverage: share of texts given an answer;
* exact: the answer is the gold term (gold ids mapped through ``replaced_by`` of the 2022
  snapshot);
* ancestor-tolerant: the answer is the gold term or an ancestor of it;
* wrong: neither (the issue's definition), split into "finer" (a descendant of the gold
  term: more specific than the curators chose, consistent with it) and "unrelated";
* consistent: exact, coarser or finer (the answer lies on the gold term's lineage).

An abstention curve follows: the same figures when scatlas withholds answers below a
confidence (``TermMatcher(min_confidence=...)``), trading coverage for fewer wrong answers;
"precision" is the ancestor-tolerant share of the answers given.

Texts whose gold id is NA are listed apart (an answer there cannot be scored). Tissues are
reported as the development set (Bladder, Liver, Lung, Thymus), the held-out set
(Limb_Muscle, Mammary_Gland, Tongue) and all 7. Other real author labels without gold ids
(Zheng 2017 sorted PBMC, Wang/Xin 2016 pancreas, GEO characteristics of 6 series) are mapped
and printed for inspection.

Speed: 100,000 distinct source texts ("title | source | cell type: ...; tissue: ...; ...")
recombined from real vocabulary (CL names and synonyms, lab shorthand, marker notation,
tissues, free-text frames) with a fixed seed, mapped cold (empty caches), single process.
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
    read_abbreviations,
)
from scatlas.ontology import text as text_normalisation  # noqa: E402
from scatlas.package_data import snapshot_obo  # noqa: E402

DEV = ("Bladder", "Liver", "Lung", "Thymus")
HELD_OUT = ("Limb_Muscle", "Mammary_Gland", "Tongue")
FIELDS = ("cell_ontology_class", "free_annotation")


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

    def __call__(self, text: str, tissue: str | None = None) -> str | None:
        key = " ".join(text.lower().split())
        hits = self.index.get(key, set())
        if len(hits) == 1:
            return next(iter(hits))
        return self.names.get(key) if hits else None


def scatlas_mapper(matcher: TermMatcher, use_tissue: bool = True) -> Callable:
    def run(text: str, tissue: str | None = None) -> str | None:
        res = matcher.annotate(
            [FieldText("cell type", text, "cell type")], tissue=tissue if use_tissue else None
        )
        return res.match.cl_id if res.match else None

    return run


def scatlas_confidence(matcher: TermMatcher) -> Callable:
    """(answer, confidence) for the abstention curve."""

    def run(text: str, tissue: str | None = None) -> tuple[str | None, float]:
        res = matcher.annotate([FieldText("cell type", text, "cell type")], tissue=tissue)
        return (res.match.cl_id, res.match.confidence) if res.match else (None, 0.0)

    return run


# --- gold standard -----------------------------------------------------------------------


def read_gold(folder: Path, onto: CellOntology) -> dict[str, pd.DataFrame]:
    """Per text field: unique (text, tissue) rows with the gold id (current id, "" for NA)."""
    files = sorted(folder.glob("*_annotation.csv"))
    if len(files) != 7:
        raise SystemExit(f"expected 7 gold files in {folder}, found {len(files)}")
    cells = pd.concat(
        [pd.read_csv(f, dtype=str, keep_default_na=False) for f in files], ignore_index=True
    )
    out = {}
    for col in FIELDS:
        df = cells[[col, "tissue", "cell_ontology_id"]].rename(columns={col: "text"})
        df = df[(df["text"] != "NA") & (df["text"].str.strip() != "")]
        n_cells = df.groupby(["text", "tissue"]).size().rename("n_cells")
        gold = df.groupby(["text", "tissue"])["cell_ontology_id"].agg(
            lambda s: Counter(s).most_common(1)[0][0]
        )
        pairs = pd.concat([gold, n_cells], axis=1).reset_index()
        raw = pairs["cell_ontology_id"]
        pairs["gold"] = ["" if g in ("", "NA") else (onto.resolve(g) or "") for g in raw]
        moved = [
            (g, c)
            for g, c in zip(raw, pairs["gold"], strict=True)
            if g not in ("", "NA") and g != c
        ]
        if moved:
            print(f"  {col}: gold ids mapped through replaced_by: {sorted(set(moved))}")
        out[col] = pairs
    return out


def score(pairs: pd.DataFrame, answers: list[str | None], onto: CellOntology) -> dict:
    n = exact = anc = finer = unrelated = answered = 0
    for gold, ans in zip(pairs["gold"], answers, strict=True):
        if not gold:
            continue
        n += 1
        if ans is None:
            continue
        answered += 1
        if ans == gold:
            exact += 1
        elif onto.is_ancestor(ans, gold):
            anc += 1
        elif onto.is_ancestor(gold, ans):
            finer += 1
        else:
            unrelated += 1
    pct = (lambda x: 100.0 * x / n) if n else (lambda x: float("nan"))
    return {
        "n": n,
        "coverage": pct(answered),
        "exact": pct(exact),
        "ancestor_tolerant": pct(exact + anc),
        "wrong": pct(finer + unrelated),
        "finer": pct(finer),
        "unrelated": pct(unrelated),
        "consistent": pct(exact + anc + finer),
    }


THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)


def report_abstention(gold: dict[str, pd.DataFrame], onto: CellOntology, mapper) -> None:
    """Coverage against wrong answers when answers below a confidence are withheld."""
    sets = {"dev": DEV, "held-out": HELD_OUT, "all 7": DEV + HELD_OUT}
    for col, pairs in gold.items():
        got = [mapper(t, ts) for t, ts in zip(pairs["text"], pairs["tissue"], strict=True)]
        print(f"\n== {col}: abstention curve (scatlas answers below the confidence withheld) ==")
        print(
            f"{'set':9} {'min conf':>8} {'n':>3} {'coverage':>9} {'exact':>7} "
            f"{'anc-tol':>8} {'wrong':>7} {'finer':>7} {'unrel.':>7} {'precision':>9}"
        )
        for set_name, tissues in sets.items():
            mask = pairs["tissue"].isin(tissues).to_numpy()
            sub = pairs[mask]
            for t in THRESHOLDS:
                ans = [
                    a if a is not None and c >= t else None
                    for (a, c), m in zip(got, mask, strict=True)
                    if m
                ]
                r = score(sub, ans, onto)
                answered = r["coverage"]
                prec = 100.0 * r["ancestor_tolerant"] / answered if answered else float("nan")
                print(
                    f"{set_name:9} {t:>8.2f} {r['n']:>3} {r['coverage']:>8.1f}% "
                    f"{r['exact']:>6.1f}% {r['ancestor_tolerant']:>7.1f}% {r['wrong']:>6.1f}% "
                    f"{r['finer']:>6.1f}% {r['unrelated']:>6.1f}% {prec:>8.1f}%"
                )


def _ratio(a: float, b: float) -> str:
    if b == 0:
        return "inf" if a > 0 else "-"
    return f"{a / b:.2f}x"


def report_accuracy(gold: dict[str, pd.DataFrame], onto: CellOntology, methods, verbose: bool):
    answers: dict[tuple[str, str], list[str | None]] = {}
    for col, pairs in gold.items():
        for name, fn in methods.items():
            answers[(col, name)] = [
                fn(t, ts) for t, ts in zip(pairs["text"], pairs["tissue"], strict=True)
            ]
    sets = {
        "dev (4 tissues)": DEV,
        "held-out (3 tissues)": HELD_OUT,
        "all 7 tissues": DEV + HELD_OUT,
    }
    cols = ("coverage", "exact", "ancestor_tolerant", "wrong", "finer", "unrelated", "consistent")
    for col, pairs in gold.items():
        print(f"\n== {col}: unique (text, tissue) pairs ==")
        header = f"{'set':22} {'method':22} {'n':>3} " + " ".join(f"{c:>17}" for c in cols)
        print(header)
        for set_name, tissues in sets.items():
            mask = pairs["tissue"].isin(tissues).to_numpy()
            sub = pairs[mask]
            rows = {}
            for name in methods:
                ans = [a for a, m in zip(answers[(col, name)], mask, strict=True) if m]
                rows[name] = score(sub, ans, onto)
                r = rows[name]
                print(
                    f"{set_name:22} {name:22} {r['n']:>3} "
                    + " ".join(f"{r[c]:>16.1f}%" for c in cols)
                )
            base, peer = rows["scatlas"], rows["naive exact lookup"]
            print(
                f"{set_name:22} {'ratio scatlas/naive':22} {'':>3} "
                + " ".join(f"{_ratio(base[c], peer[c]):>17}" for c in cols)
            )
        nogold = pairs[pairs["gold"] == ""]
        if len(nogold):
            print(f"  texts without a gold id ({len(nogold)}): scatlas answers:")
            for t, ts, a in zip(
                nogold["text"],
                nogold["tissue"],
                [a for a, g in zip(answers[(col, "scatlas")], pairs["gold"], strict=True) if not g],
                strict=True,
            ):
                print(f"    [{ts}] {t!r} -> {a or '-'} {onto.label(a) if a else ''}")
        if verbose:
            print("  per text (scatlas | gold):")
            for i, (t, ts, g) in enumerate(
                zip(pairs["text"], pairs["tissue"], pairs["gold"], strict=True)
            ):
                a = answers[(col, "scatlas")][i]
                if not g:
                    continue
                verdict = (
                    "-"
                    if a is None
                    else "exact"
                    if a == g
                    else "coarser"
                    if onto.is_ancestor(a, g)
                    else "finer"
                    if onto.is_ancestor(g, a)
                    else "WRONG"
                )
                print(
                    f"    [{ts}] {t!r:60} -> {a or '-':11} {onto.label(a) if a else '':38} "
                    f"| {g} {onto.label(g)} [{verdict}]"
                )


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
        verdicts = Counter(_verdict(onto, fn(t), g) for t, g in ZHENG_CURATED.items())
        print(f"  {name:22} {dict(sorted(verdicts.items()))}")
    for text, gold in ZHENG_CURATED.items():
        a = methods["scatlas"](text)
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
        n = naive(text)
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
    results = Counter(matcher.explain(t).status for t in texts)
    t_map, c_map = time.perf_counter() - t0, time.process_time() - c0
    naive = NaiveLookup(onto)
    values = [t.split("cell type: ")[1].split(";")[0] for t in texts]  # the peer reads no fields
    t0 = time.perf_counter()
    naive_hits = sum(naive(v) is not None for v in values)
    t_naive = time.perf_counter() - t0
    print(
        f"  scatlas: index {t_build:.2f} s, mapping {t_map:.2f} s wall, {c_map:.2f} s CPU "
        f"({1e6 * t_map / len(texts):.0f} us/text); {dict(results)}"
    )
    print(
        f"  naive exact lookup of the cell-type values: {t_naive:.2f} s ({naive_hits} answers); "
        f"ratio scatlas/naive time {t_map / max(t_naive, 1e-9):.0f}x"
    )
    print(
        f"  target: < 60 s for 100,000 texts -> {'met' if t_map * 100_000 / len(texts) < 60 else 'NOT met'}"
    )
    print(f"  load after: {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verbose", action="store_true", help="print every gold text's answer")
    ap.add_argument(
        "--n-speed", type=int, default=100_000, help="texts for the speed run (0: skip)"
    )
    ap.add_argument("--obo", default=str(snapshot_obo()))
    args = ap.parse_args()
    data = shared_data()
    onto = cached_ontology(args.obo)
    print(f"ontology: {onto.version} ({len(onto.term_ids())} current CL terms)")
    gold = read_gold(data / "ontology-gold", onto)
    matcher = TermMatcher(onto)
    naive = NaiveLookup(onto)
    methods = {
        "scatlas": scatlas_mapper(matcher),
        "scatlas, no tissue": scatlas_mapper(matcher, use_tissue=False),
        "scatlas, specialise": scatlas_mapper(TermMatcher(onto, specialise_by_tissue=True)),
        "naive exact lookup": naive,
    }
    report_accuracy(gold, onto, methods, args.verbose)
    report_abstention(gold, onto, scatlas_confidence(matcher))
    report_curated(onto, {k: methods[k] for k in ("scatlas", "naive exact lookup")})
    report_other(data, matcher, naive)
    if args.n_speed:
        report_speed(onto, args.n_speed)


if __name__ == "__main__":
    main()
