"""One settings layer: the schema's defaults are the Python API's defaults."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from scatlas import settings as S
from scatlas.annotate.reference import QueryOptions
from scatlas.atlas.assemble import assemble_atlas, choose_splits
from scatlas.de.run import run_de
from scatlas.errors import InputError
from scatlas.evaluate.metrics import evaluate
from scatlas.models.trainer import train_model
from scatlas.ontology import map_study
from scatlas.reads.align import align_study
from scatlas.reads.quant import count_study
from scatlas.release.publish import publish_release

# API function -> the config sections whose keys its keyword arguments take
API = [
    (assemble_atlas, ["atlas"]),
    (choose_splits, ["atlas"]),
    (run_de, ["de", "atlas"]),
    (evaluate, ["evaluate"]),
    (publish_release, ["publish"]),
    (align_study, ["align"]),
    (count_study, ["quant", "barcoded"]),
    (map_study, ["ontology"]),
    (train_model, ["train"]),
    (QueryOptions, ["evaluate"]),  # query_file and annotate take these options
]
# parameters that take a parsed object rather than the config value of the same name
PARSED = {("count_study", "chemistries"), ("align_study", "chemistries")}


def test_section_defaults_are_the_schema_defaults():
    defaults = S.schema_defaults()
    for section in S.SECTIONS:
        built = dataclasses.asdict(section())
        assert built == defaults[section.SECTION], section.SECTION
        assert set(built) == set(S.config_schema()["properties"][section.SECTION]["properties"])


@pytest.mark.parametrize("func, sections", API, ids=[f.__name__ for f, _ in API])
def test_api_keyword_defaults_equal_the_schema(func, sections):
    defaults = S.schema_defaults()
    checked = 0
    for name, param in inspect.signature(func).parameters.items():
        if param.default is inspect.Parameter.empty or (func.__name__, name) in PARSED:
            continue
        if "Settings" in str(param.annotation):  # a section object; None = its defaults
            assert param.default is None, f"{func.__name__}({name}=...) defaults to the schema"
            checked += 1
            continue
        for section in sections:
            if name in defaults[section]:
                want = defaults[section][name]
                got = list(param.default) if isinstance(param.default, tuple) else param.default
                assert got == want, f"{func.__name__}({name}={param.default!r}): schema {want!r}"
                checked += 1
                break
    assert checked, f"{func.__name__} takes none of its sections' settings"


def test_settings_from_a_partial_config():
    s = S.Settings.from_config({"atlas": {"min_genes": 20}, "models": ["dense", "triplet"]})
    assert s.atlas.min_genes == 20 and s.atlas.min_counts == S.AtlasSettings.min_counts
    assert s.models == ["dense", "triplet"] and s.de.method == "edger"
    assert s.atlas.kwargs("min_genes", "seed") == {"min_genes": 20, "seed": 0}


def test_settings_refuse_bad_values_with_the_key():
    with pytest.raises(InputError, match="atlas.min_genes"):
        S.Settings.from_config({"atlas": {"min_genes": -1}})
    with pytest.raises(InputError, match="threds"):
        S.AtlasSettings.from_config({"atlas": {"threds": 1}})
