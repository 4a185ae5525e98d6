"""Free text -> Cell Ontology terms: normalisation, curated tables, phrase matching, context,
conflicts, tissue, evidence; on the real CL 2022-12-15 release and real author labels."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pandas as pd
import pytest

from scatlas.demo import spec
from scatlas.errors import InputError
from scatlas.ontology import (
    MAX_TEXT_CHARS,
    FieldText,
    TermMatcher,
    cached_matcher,
    cached_ontology,
    field_kind,
    normalise_text,
    parse_source_text,
    plain_words,
    read_abbreviations,
    read_implied_terms,
    read_overrides,
    read_tissue_terms,
    read_tissues,
    split_fields,
    tokenise,
)
from scatlas.ontology.tables import (
    ABBREVIATIONS,
    ANATOMY_ABBREVIATIONS,
    IMPLIED_TERMS,
    TISSUE_TERMS,
    read_texts,
)
from scatlas.package_data import snapshot_obo

B_CELL, T_CELL, NK_CELL = "CL:0000236", "CL:0000084", "CL:0000623"
MONOCYTE, CD14_MONO, MACROPHAGE = "CL:0000576", "CL:0001054", "CL:0000235"
BETA_CELL, PITUITARY_BASOPHIL = "CL:0000169", "CL:0000639"
CD4_AB_T, ENDOTHELIAL = "CL:0000624", "CL:0000115"

GOLD_TSV = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "ontology_gold.tsv"


@pytest.fixture(scope="module")
def obo(repo_root):
    return snapshot_obo()


@pytest.fixture(scope="module")
def onto(obo):
    return cached_ontology(obo)


@pytest.fixture(scope="module")
def matcher(obo):
    return cached_matcher(obo)


def cell_type(matcher, text, tissue=None):
    """The mapping of ``text`` given as an author's cell-type field."""
    return matcher.annotate([FieldText("cell type", text, "cell type")], tissue=tissue)


# --- normalisation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("  T-Cells ", "t cell"),
        ("CD4+ T lymphocytes", "cd4 positive t lymphocyte"),
        ("CD8-positive T cell", "cd8 positive t cell"),
        ("CD8 pos T cell", "cd8 positive t cell"),
        ("CD14hi monocytes", "cd14 high monocyte"),
        ("CD14++ monocytes", "cd14 high monocyte"),
        ("CD16lo", "cd16 low"),
        ("CD56dim NK", "cd56 low nk"),
        ("CD56-bright", "cd56 high"),
        ("CD4-CD8- thymocytes", "cd4 negative cd8 negative thymocyte"),
        ("CD4-CD8+ T cells", "cd4 negative cd8 positive t cell"),
        ("Lin- cells", "lin negative cell"),
        ("Ly6Chi monocytes", "ly6c high monocyte"),
        ("DN3-DN4 thymocytes", "dn3 dn4 thymocyte"),
        ("γδ T cells", "gamma delta t cell"),
        ("gammadelta T", "gamma delta t"),
        ("αβ T-cell", "alpha beta t cell"),
        ("Mφ", "m phi"),
        ("type II pneumocyte", "type 2 pneumocyte"),
        ("alveolar type-2 cells", "alveolar type 2 cell"),
        ("Monocytes/Macrophages", "monocyte macrophage"),
        ("capillaries", "capillary"),
        ("glass", "glass"),
        ("haematopoietic stem cells", "hematopoietic stem cell"),
        ("leucocytes", "leukocyte"),
        ("Tcells", "t cell"),
        ("NKcells", "nk cell"),
        ("CD4\u207a T cell", "cd4 positive t cell"),  # superscript plus
        ("T\u2013cell", "t cell"),  # en dash
        ("CD4-CD8- T cells", "cd4 negative cd8 negative t cell"),
        ("Lin- Sca1+ cKit+ cells", "lin negative sca1 positive ckit positive cell"),
        ("Kit- cells", "kit negative cell"),
        ("CD11bhi monocytes", "cd11b high monocyte"),
        ("x1-y cells", "x1 y cell"),  # a hyphen between words, not a sign
    ],
)
def test_normalise(text, normalised):
    assert normalise_text(text) == normalised


def test_tokens_keep_separators():
    assert tokenise("Monocyte/Macrophage").items == ("monocyte", "|", "macrophage")
    assert tokenise("CD4-positive, alpha-beta T cell").items == (
        "cd4", "~", "positive", ",", "alpha", "~", "beta", "t", "cell",
    )  # fmt: skip
    assert tokenise("B cells (sorted)").items == ("b", "cell", "|", "sorted")
    assert tokenise("").items == ()


@pytest.mark.parametrize(
    "text",
    ["GSM1000123", "sample 12", "BON_1_3", "Sample.3:A#2", "donor 7", "  lane  2 "],
)
def test_plain_words_are_tokenise_words(text):
    assert plain_words(text) == list(tokenise(text).words)


@pytest.mark.parametrize(
    "text",
    ["type II", "CD4 pos", "cd4hi", "Tcells", "alphabeta 2", "CD4+", "B-cells", "x/y", "é 1"],
)
def test_text_that_needs_rewriting_is_not_plain(text):
    assert plain_words(text) is None


@pytest.mark.parametrize(
    ("text", "short"),
    [
        ("GSM1000123", True),
        ("sample 12", True),
        ("LIV_3_17", True),
        ("doublets 3", False),  # names no cell type: said so
        ("memoryT 4", False),  # glued words
        ("ECs 2", False),  # a short plural abbreviation
        ("IFE 3", False),  # an anatomical abbreviation
        ("pericentral 1", False),  # a qualifier implying a type in the liver
        ("5 HT 2", False),  # a number that starts a key, with its words
        ("360 12", True),  # a number of a key ("360 nm cone"), without its words
        ("Plasma", False),
        ("unknown 4", False),
    ],
)
def test_values_naming_nothing_take_the_short_path_to_the_same_result(
    matcher, monkeypatch, text, short
):
    assert matcher._names_nothing(text) is short
    fast = [matcher._value_uncached(text, t) for t in (None, "liver")]
    monkeypatch.setattr(matcher, "_names_nothing", lambda _: False)
    assert fast == [matcher._value_uncached(text, t) for t in (None, "liver")]


# --- fields ------------------------------------------------------------------------------


def test_fields_of_source_text():
    fields = parse_source_text(
        "PB_D1_A01 | PBMC | cell type: T lymphocyte; tissue: peripheral blood; age: 37; "
        "genotype: SETD2-deficient; treatment: T cell depletion"
    )
    assert [(f.field, f.text, f.kind) for f in fields] == [
        ("title", "PB_D1_A01", "title"),
        ("source name", "PBMC", "source name"),
        ("cell type", "T lymphocyte", "cell type"),
        ("tissue", "peripheral blood", "tissue"),
        ("age", "37", "ignored"),
        ("genotype", "SETD2-deficient", "ignored"),
        ("treatment", "T cell depletion", "ignored"),
    ]
    assert [f.kind for f in parse_source_text("CL:0000084")] == ["source name"]
    assert field_kind("Cell_Type") == field_kind("celltype") == "cell type"
    assert field_kind("free_annotation") == field_kind("sorted population") == "cell type"
    assert field_kind("organism part") == "tissue"
    assert field_kind("cell line") == field_kind("disease") == "ignored"
    assert field_kind("activation") == "characteristic"
    assert split_fields("GSM1 | source: PBMC; cell type: B cells") == ["GSM1", "PBMC", "B cells"]


# --- curated tables ----------------------------------------------------------------------


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.mark.parametrize(
    ("path", "min_rows"), [(ABBREVIATIONS, 15), (TISSUE_TERMS, 15), (IMPLIED_TERMS, 5)]
)
def test_table_ids_exist_in_snapshot_with_their_labels(onto, path, min_rows):
    rows = _rows(path)
    assert len(rows) >= min_rows
    for row in rows:
        assert row["cl_id"] in onto, row
        assert not onto.info(row["cl_id"]).obsolete, row
        assert onto.label(row["cl_id"]) == row["cl_label"], row
        assert row["comment"].strip(), row  # every row says where it comes from


def test_a_tissue_within_one_the_table_lacks(tmp_path):
    bad = tmp_path / "tissues.tsv"
    bad.write_text("tissue\tuberon\twords\twithin\ncolon\tUBERON:0001155\tcolon\tgut\n")
    with pytest.raises(InputError, match="within 'gut', which the table lacks") as err:
        read_tissues(bad)
    assert err.value.field == "within" and str(bad) in str(err.value)


def test_tables_load_completely(onto):
    tissues = read_tissues()
    assert {"lung", "liver", "pancreas", "blood", "skeletal muscle"} <= set(tissues)
    assert tissues["lung"].uberon == "UBERON:0002048"
    assert "blood vessel" in tissues["blood"].not_phrases
    assert tissues["intestine"].prefixes == ("entero",)  # "entero-": a combining form
    assert "entero" not in tissues["intestine"].phrases
    assert tissues["colon"].within == "large intestine"  # a tissue within another
    assert tissues["large intestine"].within == "intestine" and not tissues["intestine"].within
    abbreviations = read_abbreviations(onto)
    assert len(abbreviations) == len(_rows(ABBREVIATIONS))  # nothing skipped
    keys = [a.key for a in abbreviations]
    assert len(keys) == len(set(keys))
    assert {a.key: a.cl_id for a in abbreviations}["nk"] == NK_CELL
    tissue_terms = read_tissue_terms(onto, tissues)
    assert len(tissue_terms) == len(_rows(TISSUE_TERMS))
    assert {r["tissue"] for r in _rows(TISSUE_TERMS)} <= set(tissues)
    implied = read_implied_terms(onto, tissues)
    assert len(implied) == len(_rows(IMPLIED_TERMS))
    assert {r.tissue for r in implied} <= set(tissues)


def test_tables_are_not_gold_texts(shared_data):
    """Guard against fitting the benchmark: no curated row is one of the gold free texts."""
    gold = set()
    for f in sorted((shared_data / "ontology-gold").glob("*_annotation.csv")):
        gold |= {normalise_text(t) for t in pd.read_csv(f, dtype=str)["free_annotation"].dropna()}
    assert len(gold) > 30
    rows = _rows(ABBREVIATIONS) + _rows(TISSUE_TERMS) + _rows(IMPLIED_TERMS)
    assert not [r["text"] for r in rows if normalise_text(r["text"]) in gold]
    # the public gold of benchmarks/bench_ontology.py, both splits; rows of round one
    # (commit bf611a3, before that gold was gathered) that happen to equal one of its
    # labels are listed: lab shorthand that NBAtlas and PanglaoDB also use
    public = pd.read_csv(GOLD_TSV, sep="\t", dtype=str, keep_default_na=False)
    texts = {normalise_text(t) for t in public.loc[public["kind"] == "free", "text"]}
    older = {
        "Treg",
        "cDC",
        "pDC",
        "RBC",
        "Microglia",
        "cardiomyocyte",
        "CD4+ T cell",
        "CD8+ T cell",
    }
    # rows written before the CellTypist set was added (b46553d), some citing its paper:
    # that set is dev-only for this reason (benchmarks/make_ontology_gold.py)
    older |= {"ILC", "ILC1", "ILC2", "ILC3", "DC", "CMP", "GMP"}
    # rows written before the celldex set was added (2a7eefb); its texts that a table
    # holds are dev (benchmarks/make_ontology_gold.py)
    older |= {"HSC", "MPP", "MEP", "CLP", "MSC", "OPC", "NPC", "BM"}
    # rows written before the Azimuth set was added (2b05226): the same rule
    older |= {"HSPC", "MAIT", "Mono", "NK", "gdT", "γδT", "cDC2", "Astro", "Oligo", "SMC"}
    older |= {"acinar", "alpha", "beta", "delta", "ductal", "epsilon", "gamma"}
    table_texts = {normalise_text(r["text"]) for r in rows + _rows(ANATOMY_ABBREVIATIONS)}
    for name in ("celldex", "azimuth"):
        held = public[public["set"] == name]
        assert {
            s
            for t, s in zip(held["text"], held["split"], strict=True)
            if normalise_text(t) in table_texts
        } == {"dev"}, name
    # rows added for a dev-split miss, each with a literature source (never a test text)
    dev_misses = {"MNP", "Tgd"}
    test_texts = {normalise_text(t) for t in public.loc[public["split"] == "test", "text"]}
    assert not {normalise_text(t) for t in dev_misses} & test_texts, "a test-split text"
    older |= dev_misses
    rows += _rows(ANATOMY_ABBREVIATIONS)
    assert not [
        r["text"] for r in rows if normalise_text(r["text"]) in texts and r["text"] not in older
    ]


def test_read_texts_gives_a_tables_text_column(tmp_path):
    assert read_texts(ABBREVIATIONS) == [r["text"] for r in _rows(ABBREVIATIONS)]
    bad = tmp_path / "bad.tsv"
    bad.write_text("label\tcl_id\nNK\tCL:0000623\n")
    with pytest.raises(InputError) as err:
        read_texts(bad)
    assert err.value.field == "text" and "bad.tsv" in str(err.value)


def test_table_cells_are_plain_text():
    """No escape debris (a backslash) in any curated table: quotes are written as is."""
    for f in sorted(ABBREVIATIONS.parent.glob("*.tsv")):
        bad = [
            n
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
            if "\\" in line
        ]
        assert not bad, f"{f.name}: lines {bad}"


def test_bad_table_rows(tmp_path, onto):
    bad = tmp_path / "abbr.tsv"
    bad.write_text("text\tcl_id\tcl_label\tsource\nNK\tCL:123\tx\ty\n")
    with pytest.raises(InputError, match="line 2") as err:
        read_abbreviations(onto, bad)
    assert err.value.field == "cl_id"
    bad.write_text("text\tcl_id\tcl_label\tsource\nNK\tCL:0000623\tx\ty\nnk\tCL:0000084\tx\ty\n")
    with pytest.raises(InputError, match="already maps to CL:0000623"):
        read_abbreviations(onto, bad)
    bad.write_text("txt\tcl_id\n")
    with pytest.raises(InputError) as err:
        read_abbreviations(onto, bad)
    assert err.value.field == "text"
    bad.write_text("tissue\ttext\tcl_id\tcl_label\tsource\nmoon\tx\tCL:0000623\tx\ty\n")
    with pytest.raises(InputError, match="unknown tissue 'moon'"):
        read_tissue_terms(onto, read_tissues(), bad)
    with pytest.raises(InputError, match="unknown tissue 'moon'"):
        read_implied_terms(onto, read_tissues(), bad)
    # every abbreviation and tissue-term row names its published source
    bad.write_text("text\tcl_id\tcl_label\tsource\nNK\tCL:0000623\tx\t\n")
    with pytest.raises(InputError, match="no source") as err:
        read_abbreviations(onto, bad)
    assert err.value.field == "source"
    bad.write_text("text\tcl_id\tcl_label\tcomment\nNK\tCL:0000623\tx\ty\n")
    with pytest.raises(InputError, match="missing column") as err:
        read_abbreviations(onto, bad)
    assert err.value.field == "source"


def test_rows_for_terms_missing_from_a_subset_are_skipped_loudly(shared_data, caplog):
    subset = cached_ontology(
        shared_data / "ontology" / "general_cell_types_upper_slim_2026-06-08.obo"
    )
    with caplog.at_level(logging.WARNING):
        rows = read_abbreviations(subset)
    assert 0 < len(rows) < len(_rows(ABBREVIATIONS))
    assert "rows skipped (terms not in the ontology)" in caplog.text
    m = TermMatcher(subset)  # a matcher over a subset works with what it has
    assert m.map_text("fibroblasts").cl_id == "CL:0000057"


# --- matching ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cl_id"),
    [
        ("B lymphocyte", B_CELL),
        ("NK cell", NK_CELL),
        ("NK", NK_CELL),
        ("CD56bright NK", NK_CELL),
        ("natural killer cells", NK_CELL),
        ("Macrophages", MACROPHAGE),
        ("Mφ", MACROPHAGE),
        ("insulin-secreting cell", BETA_CELL),
        ("pancreatic beta cells", BETA_CELL),
        ("Treg", "CL:0000815"),
        ("CD4+CD25+ Tregs", "CL:0000792"),  # the markers name its CD4+ CD25+ alpha-beta kind
        ("HSC", "CL:0000037"),
        ("OPCs", "CL:0002453"),
        ("MSC", "CL:0000134"),
        ("DCs", "CL:0000451"),
        ("pDC", "CL:0000784"),
        ("CD31+ EC", ENDOTHELIAL),
        ("RBC", "CL:0000232"),
        ("CD4+ T cells", CD4_AB_T),
        ("CD4 T cells", CD4_AB_T),
        # CL's "alpha-beta" and "thymus-derived" qualifiers are implied for T cells
        ("CD8+ cytotoxic T cells", "CL:0000794"),
        ("CD4+ memory T cells", "CL:0000897"),
        ("naive CD8+ T cells", "CL:0000900"),
        ("CD8-positive, alpha-beta T cell", "CL:0000625"),
        ("CD14-positive monocyte", CD14_MONO),
        ("CD14+ monocytes", CD14_MONO),
        ("CD14+ Mono", CD14_MONO),  # the abbreviation spelt out: "cd14 positive monocyte"
        ("CD14hi monocytes", MONOCYTE),  # no CD14-high term: the phrase "monocyte"
        ("γδ T cells", "CL:0000798"),
        ("gamma-delta T-cells", "CL:0000798"),
        ("alveolar epithelial type 2 cells", "CL:0002063"),  # words reordered
        ("AT2", "CL:0002063"),
        ("T-cells", T_CELL),
        ("Tcells", T_CELL),
        ("memoryT", "CL:0000813"),  # glued label (Zheng 2017)
        ("regulatoryt", "CL:0000815"),
        ("CL:0000084", T_CELL),  # an id written in the metadata
        ("CL_0000236", B_CELL),
    ],
)
def test_maps_to_term(matcher, text, cl_id):
    res = cell_type(matcher, text)
    assert res.status == "mapped", res
    m = res.match
    assert m.cl_id == cl_id, m
    assert m.cl_label == matcher.ontology.label(cl_id)
    assert 0 < m.confidence <= 1
    assert m.evidence.startswith(f'cell type: "{text}" ~ ')


def test_monocyte_stays_monocyte(matcher):
    # CL lists "monocyte" as a NARROW synonym of CD14-positive monocyte: the name wins
    m = cell_type(matcher, "monocyte").match
    assert (m.cl_id, m.confidence, m.evidence) == (
        MONOCYTE,
        1.0,
        'cell type: "monocyte" ~ "monocyte" (name)',
    )


def test_phrase_inside_longer_text(matcher):
    m = matcher.map_text("Drop-seq of sorted CD19+ B cells from donor 3")
    # "CD19+ B cell" is an EXACT synonym of "B cell, CD19-positive", a B cell
    assert m.cl_id == "CL:0001201" and B_CELL in matcher.ontology.ancestors(m.cl_id)
    assert 'phrase "cd19 positive b cell"' in m.evidence
    m = matcher.map_text("Smart-seq2 of sorted human natural killer cells, donor 4")
    assert m.cl_id == NK_CELL and m.confidence == pytest.approx(0.9)  # partial: 1.0 * 0.9
    # words left out of the phrase count, even when the phrase holds stop words
    m = matcher.map_text("epithelial cells of lung and kidney")
    assert m.cl_id == "CL:0000082" and m.confidence == pytest.approx(0.9)


def test_scopes_give_confidence(matcher):
    assert cell_type(matcher, "T cell").match.confidence == 1.0
    exact = cell_type(matcher, "T lymphocyte").match
    assert exact.confidence == 0.95 and "(EXACT)" in exact.evidence
    assert cell_type(matcher, "NK").match.confidence == 0.9  # curated abbreviation
    broad = cell_type(matcher, "mature luminal cell").match  # BROAD synonym only
    assert broad.cl_id == "CL:0002326" and broad.confidence == 0.6
    hits = {m.cl_id: m for m in matcher.match("beta cell")}
    assert hits[BETA_CELL].evidence.endswith("(BROAD)")
    assert hits[PITUITARY_BASOPHIL].evidence.endswith("(RELATED)")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("non-T cells", "negated"),
        ("B cell-depleted", "does not name a cell"),
        ("T cell receptor", "does not name a cell"),
        ("chondrocyte-like", "does not name a cell"),
        ("stem cell factor", "does not name a cell"),
        ("Jurkat T cell line", "does not name a cell"),
        ("unknown", "names no known cell type"),
        ("doublets", "names no known cell type"),
        ("NA", "names no known cell type"),
    ],
)
def test_context_says_no_cell_type(matcher, text, why):
    res = cell_type(matcher, text)
    assert res.match is None and res.status == "unmatched"
    assert why in res.evidence


@pytest.mark.parametrize(
    "text",
    [
        "peripheral blood",
        "cell",
        "cells",
        "tissue: pancreas | age: 3",
        "periportal male",
        "proliferating",
        "HCT116 cells",
        "Clear cell renal cell carcinoma cells",
        "CD4-PE",
    ],
)
def test_no_cell_type_no_answer(matcher, text):
    assert matcher.map_cell(text) is None


def test_root_and_upper_level_terms_are_never_answers(matcher, onto):
    for text in (
        "cell",
        "native cell",
        "animal cell",
        "somatic cell",
        "eukaryotic cell",
        "CL:0000000",
        "CL:0000548",
    ):
        assert matcher.map_cell(text) is None, text
    assert matcher.match("native cell") == []


def test_clauses_and_negation_keep_the_named_cell(matcher):
    assert matcher.map_text("B cell depleted PBMC").cl_id == "CL:2000001"
    assert matcher.map_text("Primary B cells infected with EBV").cl_id == B_CELL
    assert matcher.map_text("T cells co-cultured with dendritic cells").cl_id == T_CELL
    assert matcher.map_text("macrophages derived from monocytes").cl_id == MACROPHAGE
    assert matcher.map_text("monocyte-derived macrophages").cl_id == MACROPHAGE


def test_most_specific_wins(matcher):
    m = matcher.map_cell("CD4+ T cells sorted | blood | cell type: T cell")
    assert m.cl_id == CD4_AB_T and 'refines cell type: "T cell"' in m.evidence
    assert matcher.map_cell("leukocyte; cell type: B cells").cl_id == B_CELL


def test_lists_map_to_the_common_ancestor(matcher):
    m = matcher.map_text("Monocyte/Macrophage")
    assert m.cl_id == "CL:0000766"  # myeloid leukocyte
    # two phrases of the value (0.9 each), as a mixture (x 0.8)
    assert "(mixture)" in m.evidence and m.confidence == pytest.approx(0.72)
    assert matcher.map_text("B and T lymphocytes").cl_id == "CL:0000542"  # lymphocyte
    assert matcher.map_text("DN3-DN4 thymocytes").cl_id == "CL:0002489"  # DN thymocyte
    for text in ("CD4+/CD8+ T cells", "CD4+ and CD8+ T cells"):  # the head "T cell" shared
        assert matcher.map_text(text).cl_id == "CL:0000791", text  # mature alpha-beta T cell
    # several minimal common ancestors: the closest, then the narrowest
    assert matcher.map_text("alpha and beta cells", tissue="pancreas").cl_id == "CL:0008024"
    # too far apart to be a useful answer: nothing
    res = cell_type(matcher, "T cells and neurons")
    assert res.match is None and res.status == "ambiguous"
    assert T_CELL in res.evidence and "CL:0000540" in res.evidence


def test_conflicts_without_a_list_are_ambiguous(matcher):
    res = matcher.explain("cell type: T cell | sorted: B cell")
    assert res.match is None and res.status == "ambiguous"
    assert B_CELL in res.evidence and T_CELL in res.evidence
    res = cell_type(matcher, "Bm2 B lymphocyte")  # EXACT synonym of two unrelated terms
    assert res.match is None and res.status == "ambiguous"
    assert "CL:0000962" in res.evidence and "CL:0000964" in res.evidence


def test_synonym_scopes_are_ranked(matcher):
    # "beta cell": BROAD synonym of the pancreatic beta cell, RELATED synonym of a pituitary
    # basophil: EXACT > NARROW > BROAD > RELATED decides, the other stays a candidate
    res = cell_type(matcher, "beta cell")
    assert res.match.cl_id == BETA_CELL and res.match.confidence == 0.6
    assert [m.cl_id for m in res.candidates][:2] == [BETA_CELL, PITUITARY_BASOPHIL]
    assert res.candidates[1].confidence == 0.5


def test_more_trusted_field_wins(matcher):
    # the author's cell-type column beats the source name
    m = matcher.map_cell("S1 | PBMC | cell type: T lymphocyte; tissue: peripheral blood")
    assert m.cl_id == T_CELL
    assert "ignored less trusted: source name -> CL:2000001" in m.evidence


def test_tissue_decides_between_terms(matcher):
    assert matcher.map_text("beta cell", tissue="pancreas").cl_id == BETA_CELL
    assert matcher.map_cell("islets | cell type: beta cell; tissue: pancreatic islet").cl_id == (
        BETA_CELL
    )
    # words whose meaning depends on the tissue
    assert matcher.map_text("beta", tissue="pancreas").cl_id == BETA_CELL
    assert matcher.map_text("beta") is None
    # "alpha cell" is also an EXACT synonym of a retinal ganglion cell type
    assert matcher.map_text("alpha cells", tissue="pancreas").cl_id == "CL:0000171"
    # with no tissue, a word with a tissue-specific sense elsewhere makes it ambiguous
    res = cell_type(matcher, "alpha cells")
    assert res.status == "ambiguous" and "CL:0004117" in res.evidence
    assert {m.cl_id for m in res.candidates} >= {"CL:0004117", "CL:0000171"}
    # a term named in full stays, even if its name places it elsewhere
    assert matcher.map_text("basal cell of epidermis", tissue="tongue").cl_id == "CL:0002187"
    assert matcher.map_text("HSC", tissue="liver").cl_id == "CL:0000632"  # hepatic stellate
    assert matcher.map_text("HSC", tissue="bone marrow").cl_id == "CL:0000037"
    assert matcher.map_text("KC", tissue="Liver").cl_id == "CL:0000091"  # Kupffer cell
    assert matcher.map_text("KC", tissue="skin").cl_id == "CL:0000312"  # keratinocyte
    assert matcher.tissue_of_text("Limb_Muscle") == "skeletal muscle"
    assert matcher.tissue_of_text("Mammary_Gland") == "mammary gland"
    assert matcher.tissue_of_text("blood vessel") is None
    assert matcher.term_tissues("CL:1001567") == {"lung"}  # lung endothelial cell


def test_anatomy_in_the_text_composes_with_the_cell_type(matcher, onto):
    """ "<anatomy> <cell type>" -> CL's term named for both, only when CL has exactly one
    such term and the anatomy modifies the phrase."""
    cases = {
        "Murine renal tubular epithelial cells": "CL:0002518",  # kidney epithelial cell
        "pulmonary epithelial cells": "CL:0000082",  # epithelial cell of lung
        "dermal fibroblasts": "CL:0002620",  # skin fibroblast
        "macrophages from the lung": "CL:1001603",  # lung macrophage
        # several qualified terms (bladder urothelial cell, urothelial cell of trigone, ...)
        # and none named just "bladder epithelial cell": the author's type stays
        "bladder epithelial cells": "CL:0000066",
        "brain endothelial cells": ENDOTHELIAL,
        # the only B cell CL places in the spleen is the marginal zone B cell: not implied
        "splenic B cells": B_CELL,
        # the anatomy modifies another phrase, or two anatomies are named
        "T cells co-cultured with lung fibroblasts": T_CELL,
        "renal and hepatic epithelial cells": "CL:0000066",
    }
    for text, cl_id in cases.items():
        m = matcher.map_text(text)
        assert (m.cl_id if m else None) == cl_id, (text, m)
    m = matcher.map_text("pulmonary epithelial cells")
    assert 'with anatomy "pulmonary"' in m.evidence and m.confidence == pytest.approx(0.855)
    # the sample's tissue alone does not compose (that is the opt-in specialisation)
    # the kidney's own variant of the named type (the tissue chooses it, by default)
    assert matcher.map_text("epithelial cells", tissue="kidney").cl_id == "CL:0002518"
    generic = TermMatcher(onto, specialise_by_tissue=False)
    assert generic.map_text("epithelial cells", tissue="kidney").cl_id == "CL:0000066"


def test_qualifiers_implying_a_cell_type_in_a_tissue(matcher):
    """Liver zonation words used alone name the hepatocytes of that zone, in the liver
    only, and only when the value names no cell type itself."""
    m = matcher.map_text("pericentral", tissue="liver")
    assert m.cl_id == "CL:0019029" and m.confidence == pytest.approx(0.8)
    assert "(implied; implied in liver; implied_terms.tsv:" in m.evidence
    m = matcher.map_text("periportal male", tissue="Liver")  # a qualifier left over: 0.8 * 0.9
    assert m.cl_id == "CL:0019026" and m.confidence == pytest.approx(0.72)
    assert matcher.map_text("midlobular", tissue="liver").cl_id == "CL:0019028"
    assert matcher.map_text("pericentral hepatocytes").cl_id == "CL:0019029"  # curated synonym
    for text, tissue in [
        ("pericentral", None),
        ("pericentral", "lung"),
        ("non-periportal", "liver"),
        ("periportal and pericentral", "liver"),  # two zones: no single answer
    ]:
        assert matcher.map_text(text, tissue=tissue) is None, (text, tissue)
    # in a title or source name a zone may be a dissected region of every cell type
    res = matcher.explain("periportal region 3 | liver lobe | tissue: liver")
    assert res.match is None and "implies a cell type only in a cell-type field" in res.evidence
    m = matcher.explain("S3 | liver | cell type: periportal; tissue: liver").match
    assert m.cl_id == "CL:0019026"
    # a cell noun in the value decides
    assert matcher.map_text("pericentral LSEC", tissue="liver").cl_id == "CL:0019022"
    assert matcher.map_text("pericentral endothelial cells", tissue="liver").cl_id == ENDOTHELIAL


def test_abstention_threshold(onto):
    strict = TermMatcher(onto, min_confidence=0.75)
    res = strict.annotate([FieldText("cell type", "Monocyte/Macrophage", "cell type")])
    assert res.match is None and res.status == "withheld"  # a mixture: 0.72
    assert "confidence 0.72 < 0.75" in res.evidence and "CL:0000766" in res.evidence
    assert strict.map_text("T cells").cl_id == T_CELL
    with pytest.raises(ValueError, match="min_confidence"):
        TermMatcher(onto, min_confidence=1.5)


def test_tissue_specialisation_is_the_default(obo, onto):
    plain = cached_matcher(obo, specialise_by_tissue=False)
    special = cached_matcher(obo)
    assert plain.map_text("endothelial cell", tissue="lung").cl_id == ENDOTHELIAL
    m = special.map_text("endothelial cell", tissue="lung")
    assert m.cl_id == "CL:1001567" and "specialised by tissue lung" in m.evidence
    assert special.map_text("epithelial cell", tissue="lung").cl_id == "CL:0000082"
    assert special.map_text("epithelial cell", tissue="kidney").cl_id == "CL:0002518"
    assert special.map_text("endothelial cell", tissue="tongue").cl_id == ENDOTHELIAL


def test_overrides_come_first(matcher, tmp_path, onto):
    path = tmp_path / "overrides.tsv"
    path.write_text("text\tcl_id\tcomment\nCD14+ Mono\tCL:0000576\tdemo curator\n")
    table = read_overrides(path, onto)
    assert table == {"cd14 positive mono": MONOCYTE}
    res = matcher.explain("S1 | whole blood | celltype: CD14+ Mono", table)
    assert res.match.cl_id == MONOCYTE and "(override)" in res.match.evidence
    assert matcher.explain("S1 | whole blood | celltype: CD14+ Mono").match.cl_id == CD14_MONO


# --- bad input ---------------------------------------------------------------------------


def test_empty_text(matcher):
    for text in ("", "   ", " | "):
        res = matcher.explain(text)
        assert res.match is None and res.status in ("empty", "unmatched")
    assert matcher.explain("").status == "empty" and matcher.explain("").evidence == "no text"
    assert matcher.annotate([]).status == "empty"


def test_very_long_text_is_cut_and_logged(matcher, caplog):
    long = "cell type: B cells; note: " + "x" * (3 * MAX_TEXT_CHARS)
    before = matcher.n_truncated
    with caplog.at_level(logging.WARNING):
        m = matcher.map_cell(long)
    assert m.cl_id == B_CELL
    assert matcher.n_truncated > before
    assert f"cut to {MAX_TEXT_CHARS}" in caplog.text
    late = "x " * MAX_TEXT_CHARS + "| cell type: B cells"  # the cell type is cut off
    assert matcher.map_cell(late) is None


def test_replacement_characters_do_not_break_matching(matcher):
    assert matcher.map_text("B cells \ufffd\ufffd").cl_id == B_CELL
    assert matcher.map_text("\x00\x07 NK cells").cl_id == NK_CELL


# --- the demo world and real author labels -----------------------------------------------


def _demo_groups():
    for study in spec.STUDIES:
        for g in study.groups:
            yield study, g


def test_demo_world_texts_map_to_their_truth(matcher, repo_root, onto):
    overrides = read_overrides(repo_root / "config" / "demo_ontology_overrides.tsv", onto)
    generic = TermMatcher(onto, specialise_by_tissue=False)
    seen = 0
    for study, g in _demo_groups():
        truth = spec.CELL_TYPES[g.type_key].cl_id
        text = f"X_1 | {g.source_name} | {study.ct_key}: {g.text}; tissue: {g.tissue}"
        plain = matcher.map_cell(text)
        assert plain is not None, text
        # without the demo's curation a text may name a more specific type ("CD14+ Mono")
        assert plain.cl_id == truth or onto.is_ancestor(truth, plain.cl_id), (text, plain)
        curated = generic.explain(text, overrides).match  # as config/demo.yaml maps them
        assert curated.cl_id == truth, (text, curated)
        seen += 1
    assert seen >= 30


def test_real_author_labels(matcher, shared_data):
    zheng = pd.read_csv(
        shared_data / "expression" / "pbmc-zheng-sorted" / "zheng_sorted_reference.labels.csv"
    )
    got = {lab: matcher.map_text(lab, tissue="blood") for lab in sorted(set(zheng["label"]))}
    assert {k: (v.cl_id if v else None) for k, v in got.items()} == {
        "bcells": B_CELL,
        "cytotoxict": "CL:0000910",
        "memoryt": "CL:0000813",
        "monocytes": MONOCYTE,
        "naivecytotoxic": None,
        "naivet": "CL:0000898",
        "nk": NK_CELL,
        "regulatoryt": "CL:0000815",
        "thelper": "CL:0000912",
    }
    wang = pd.read_csv(shared_data / "expression" / "pancreas-wang-xin" / "wang.obs.csv")
    got = {lab: matcher.map_text(lab, tissue="pancreas").cl_id for lab in set(wang["cell_type"])}
    assert got == {
        "alpha": "CL:0000171",
        "beta": BETA_CELL,
        "delta": "CL:0000173",
        "gamma": "CL:0002275",
        "acinar": "CL:0002064",
        "ductal": "CL:0002079",
        "stellate": "CL:0002410",
    }


def test_gold_standard_tabula_muris(matcher, onto, shared_data):
    """The benchmark's figures, as a floor: class texts exact; free text without unrelated
    answers beyond the three measured (see benchmarks/bench_ontology.py)."""
    cells = pd.concat(
        pd.read_csv(f, dtype=str, keep_default_na=False)
        for f in sorted((shared_data / "ontology-gold").glob("*_annotation.csv"))
    )
    classes = cells[cells["cell_ontology_class"] != "NA"]
    pairs = classes[["cell_ontology_class", "tissue", "cell_ontology_id"]].drop_duplicates()
    exact = [
        (m := matcher.map_text(t, tissue=ts)) is not None and m.cl_id == onto.resolve(g)
        for t, ts, g in pairs.itertuples(index=False)
    ]
    assert len(pairs) == 40 and sum(exact) / len(exact) >= 0.98
    free = cells[(cells["free_annotation"] != "NA") & (cells["cell_ontology_id"] != "NA")]
    pairs = free[["free_annotation", "tissue", "cell_ontology_id"]].drop_duplicates()
    verdicts = []
    for t, ts, g in pairs.itertuples(index=False):
        m = matcher.map_text(t, tissue=ts)
        gold = onto.resolve(g)
        if m is None:
            verdicts.append("none")
        elif m.cl_id == gold or onto.is_ancestor(m.cl_id, gold):
            verdicts.append("ancestor-tolerant")
        elif onto.is_ancestor(gold, m.cl_id):
            verdicts.append("finer")
        else:
            verdicts.append("unrelated")
    counts = {v: verdicts.count(v) for v in set(verdicts)}
    assert len(pairs) == 33
    assert counts.get("ancestor-tolerant", 0) >= 9
    assert counts.get("unrelated", 0) <= 3
    assert counts.get("none", 0) <= 7
    # answers on the gold term's lineage (exact, coarser or finer)
    assert counts.get("ancestor-tolerant", 0) + counts.get("finer", 0) >= 24


def _windows_by_brute_force(matcher, words, hard, coord, tissue):
    """Every window joined and looked up, as the tree walk must find them: keys up to a
    hard break, reordered bags within one list item of known words, never ending on a
    marker whose level follows."""
    from scatlas.ontology.evidence import _LEVELS, _STOP

    out = set()
    n = len(words)
    for i in range(n):
        if words[i] not in matcher._vocab or words[i] in _STOP:
            continue
        for j in range(i + 1, n + 1):
            if j - i > matcher._max_window or any(hard[k] for k in range(i + 1, j)):
                break
            if words[j - 1] in _STOP and words[j - 1] != "a":
                continue
            window = words[i:j]
            if matcher._lookup(" ".join(window), tissue):
                out.add((i, j, False))
                continue
            in_item = not any(coord[k] for k in range(i + 1, j))
            known = all(w in matcher._vocab or w in _STOP for w in window)
            level_next = j < n and words[j] in _LEVELS
            # a reordered window with "of" never stops short of a known word of its item
            cut = (
                "of" in window
                and j < n
                and j - i < matcher._max_window
                and not hard[j]
                and not coord[j]
                and words[j] in matcher._vocab
                and words[j] not in _STOP
            )
            if j - i >= 2 and in_item and known and words[i] not in _LEVELS and not level_next:
                if cut:
                    continue
                content = set(window) - _STOP
                if "a" in window:  # a letter where the bags pair it with the words before
                    before = set(window[: window.index("a")]) - _STOP
                    if all(tuple(sorted((w, "a"))) in matcher._bag_pairs for w in before):
                        content.add("a")
                bag = " ".join(sorted(content))
                found = matcher._bags.get(bag, [])
                if [e for e in found if not e.tissue or e.tissue == tissue]:
                    out.add((i, j, True))
    return out


def test_phrase_windows_are_every_window_a_key_or_bag(matcher):
    from scatlas.ontology.matching import _words_and_breaks

    gold = pd.read_csv(GOLD_TSV, sep="\t", dtype=str).fillna("")
    texts = [
        *gold["text"],
        "cell T naive CD4-positive, alpha-beta",
        "cell epithelial alveolar type 2; B and T lymphocytes",
        "endothelial cell of lung, lung endothelial cell / cell endothelial",
    ]
    for text in texts:
        words, hard, coord = _words_and_breaks(text)
        for tissue in (None, "lung"):
            found = {(i, j, r) for i, j, _, r in matcher._windows(words, hard, coord, tissue)}
            assert found == _windows_by_brute_force(matcher, words, hard, coord, tissue), text
