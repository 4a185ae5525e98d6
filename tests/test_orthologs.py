import pandas as pd
import pytest

from scatlas.annotate.inputs import map_genes
from scatlas.annotate.orthologs import load_gene_names, load_orthologs
from scatlas.errors import InputError

HUMAN = {
    "ENSG00000198851": "CD3E",
    "ENSG00000177455": "CD19",
    "ENSG00000156738": "MS4A1",
    "ENSG00000081237": "PTPRC",
    "ENSG00000170458": "CD14",
}


def test_tables_load_with_first_partner_and_blanks_skipped():
    orth = load_orthologs()
    assert orth.human_to_mouse["CD3E"] == "Cd3e"
    assert orth.mouse_to_human["Cd19"] == "CD19"
    assert orth.human_to_mouse["PTPRC"] == "Ptprc"  # a blank first row is no ortholog
    assert "" not in orth.human_to_mouse.values()
    assert len(orth.human_to_mouse) > 15000
    names = load_gene_names()
    assert names["ENSG00000198851"] == "CD3E"


def test_mouse_query_on_human_reference():
    ids, symbols = list(HUMAN), list(HUMAN.values())
    var = pd.DataFrame(index=["Cd3e", "Cd19", "Ms4a1", "Ptprc", "Gm12345"])
    m = map_genes(var, ids, symbols)
    assert m.translation == "mouse->human" and m.key == "gene_symbol"
    assert m.n_matched == 4
    assert m.names == [
        "ENSG00000198851",
        "ENSG00000177455",
        "ENSG00000156738",
        "ENSG00000081237",
        "",
    ]
    off = map_genes(var, ids, symbols, orthologs=False)
    assert off.n_matched == 0 and off.translation == ""


def test_human_ids_on_mouse_reference():
    mouse_ids = ["ENSMUSG00000032093", "ENSMUSG00000030724", "ENSMUSG00000024673"]
    mouse_symbols = ["Cd3e", "Cd19", "Ms4a1"]
    var = pd.DataFrame(index=["ENSG00000198851.5", "ENSG00000177455", "ENSG00000170458"])
    m = map_genes(var, mouse_ids, mouse_symbols)
    assert m.translation == "ensembl_id->symbol->mouse"
    assert m.names == ["ENSMUSG00000032093", "ENSMUSG00000030724", ""]


def test_direct_match_preferred_over_translation():
    ids, symbols = list(HUMAN), list(HUMAN.values())
    var = pd.DataFrame(index=list(HUMAN.values()))
    m = map_genes(var, ids, symbols)
    assert m.translation == "" and m.n_matched == 5


def test_missing_table_is_a_clear_error(tmp_path, monkeypatch):
    from scatlas.annotate import orthologs

    with pytest.raises(InputError, match="ortholog table is missing"):
        orthologs.load_orthologs(str(tmp_path / "nope.csv"))


def test_without_tables_no_translation_but_a_warning(tmp_path, monkeypatch, caplog):
    from scatlas.annotate import orthologs

    monkeypatch.setenv("SCATLAS_ORTHOLOGS", str(tmp_path))
    orthologs.load_orthologs.cache_clear()
    try:
        var = pd.DataFrame(index=["Cd3e", "CD19"])
        m = map_genes(var, list(HUMAN), list(HUMAN.values()))
        assert m.n_matched == 1 and m.translation == ""
        assert "not translated" in caplog.text
    finally:
        orthologs.load_orthologs.cache_clear()
