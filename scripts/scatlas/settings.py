"""One typed settings layer: a frozen dataclass per config section, whose defaults are read
from the config schema (``scatlas/data/schemas/config.schema.yaml``), the one place they are
written. Rule scripts build :class:`Settings` from the workflow config; the Python API's
keyword defaults point at the same fields (``AtlasSettings.min_genes``), so a user of the API
gets the atlas a user of the workflow gets. ``tests/test_settings.py`` checks both.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import yaml

from scatlas.errors import InputError
from scatlas.package_data import schema_dir


@functools.cache
def config_schema() -> dict[str, Any]:
    with open(schema_dir() / "config.schema.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _fill_defaults(schema: Mapping[str, Any], data: dict[str, Any]) -> None:
    """Set every absent property that has a ``default`` (recursively), as Snakemake does."""
    for key, prop in (schema.get("properties") or {}).items():
        if key not in data and "default" in prop:
            data[key] = copy.deepcopy(prop["default"])
        if isinstance(data.get(key), dict) and prop.get("properties"):
            _fill_defaults(prop, data[key])


@functools.cache
def _defaults() -> dict[str, Any]:
    data: dict[str, Any] = {}
    _fill_defaults(config_schema(), data)
    return data


def schema_defaults() -> dict[str, Any]:
    """The config an empty config file becomes: every default of the schema (a copy)."""
    return copy.deepcopy(_defaults())


def _default(section: str, key: str) -> Any:
    value = _defaults()[section][key]
    if isinstance(value, list | dict):
        return field(default_factory=lambda: copy.deepcopy(value))
    return value


class _Section:
    """Behaviour shared by the section dataclasses."""

    SECTION = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]):
        """This section of a (validated or partial) config; absent keys take the defaults."""
        given = copy.deepcopy(dict(config.get(cls.SECTION) or {}))
        _fill_defaults(config_schema()["properties"][cls.SECTION], given)  # nested ones too
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(given) - names)
        if unknown:
            raise InputError(
                f"unknown key(s) {', '.join(unknown)} in config section {cls.SECTION!r}; "
                f"known: {', '.join(sorted(names))}",
                field=f"{cls.SECTION}.{unknown[0]}",
            )
        return cls(**given)

    def kwargs(self, *names: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
        """The named fields (all when none are named, less ``exclude``) as keyword arguments."""
        values = dataclasses.asdict(self)
        chosen = names or tuple(values)
        return {n: values[n] for n in chosen if n not in exclude}


@dataclass(frozen=True)
class ServicesSettings(_Section):
    SECTION = "services"
    eutils: str = _default("services", "eutils")
    geo: str = _default("services", "geo")
    ena_portal: str = _default("services", "ena_portal")
    ena_files: str = _default("services", "ena_files")
    biostudies: str = _default("services", "biostudies")
    timeout_s: float = _default("services", "timeout_s")
    retries: int = _default("services", "retries")
    backoff_s: float = _default("services", "backoff_s")
    ncbi_requests_per_s: float | None = _default("services", "ncbi_requests_per_s")
    other_requests_per_s: float = _default("services", "other_requests_per_s")


@dataclass(frozen=True)
class DiscoverSettings(_Section):
    SECTION = "discover"
    sources: list[str] = _default("discover", "sources")
    term: str = _default("discover", "term")
    date_type: str = _default("discover", "date_type")
    recheck_known: bool = _default("discover", "recheck_known")
    arrayexpress_query: str = _default("discover", "arrayexpress_query")
    organisms: list[str] = _default("discover", "organisms")
    date_from: Any = _default("discover", "date_from")
    date_to: Any = _default("discover", "date_to")
    max_studies: int | None = _default("discover", "max_studies")
    page_size: int = _default("discover", "page_size")
    studies: list[str] = _default("discover", "studies")
    exclude: list[str] = _default("discover", "exclude")


@dataclass(frozen=True)
class DownloadSettings(_Section):
    SECTION = "download"
    method: str = _default("download", "method")
    parallel: int = _default("download", "parallel")
    fasterq_dump: str = _default("download", "fasterq_dump")
    threads: int = _default("download", "threads")
    tool_timeout_s: float = _default("download", "tool_timeout_s")
    on_submit_host: bool = _default("download", "on_submit_host")


@dataclass(frozen=True)
class AlignSettings(_Section):
    SECTION = "align"
    threads: int = _default("align", "threads")
    min_alignment_rate: float = _default("align", "min_alignment_rate")
    index_threads: int = _default("align", "index_threads")


@dataclass(frozen=True)
class QuantSettings(_Section):
    SECTION = "quant"
    threads: int = _default("quant", "threads")
    strandedness: int = _default("quant", "strandedness")


@dataclass(frozen=True)
class BarcodedSettings(_Section):
    SECTION = "barcoded"
    cell_calling: str = _default("barcoded", "cell_calling")
    min_reads_per_cell: int = _default("barcoded", "min_reads_per_cell")
    chemistries: dict[str, Any] = _default("barcoded", "chemistries")


@dataclass(frozen=True)
class OntologySettings(_Section):
    SECTION = "ontology"
    obo: str | None = _default("ontology", "obo")
    url: str | None = _default("ontology", "url")
    sha256: str | None = _default("ontology", "sha256")
    overrides: str | None = _default("ontology", "overrides")
    specialise_by_tissue: bool = _default("ontology", "specialise_by_tissue")
    min_confidence: float = _default("ontology", "min_confidence")


@dataclass(frozen=True)
class AtlasSettings(_Section):
    SECTION = "atlas"
    organism: str = _default("atlas", "organism")
    min_genes: int = _default("atlas", "min_genes")
    min_counts: int = _default("atlas", "min_counts")
    min_cells_per_type: int = _default("atlas", "min_cells_per_type")
    n_top_genes: int = _default("atlas", "n_top_genes")
    n_query_studies: int = _default("atlas", "n_query_studies")
    n_validation_studies: int = _default("atlas", "n_validation_studies")
    query_studies: list[str] = _default("atlas", "query_studies")
    validation_studies: list[str] = _default("atlas", "validation_studies")
    seed: int = _default("atlas", "seed")


@dataclass(frozen=True)
class TrainSettings(_Section):
    """Top-level training settings; each model's own (``train.dense`` ...) stay a mapping
    checked by the model's class (:mod:`scatlas.models`)."""

    SECTION = "train"
    seed: int = _default("train", "seed")
    device: str = _default("train", "device")
    threads: int = _default("train", "threads")
    gpus: int = _default("train", "gpus")
    dense: dict[str, Any] = _default("train", "dense")
    siamese: dict[str, Any] = _default("train", "siamese")
    triplet: dict[str, Any] = _default("train", "triplet")
    deephash: dict[str, Any] = _default("train", "deephash")
    sclstm: dict[str, Any] = _default("train", "sclstm")


@dataclass(frozen=True)
class EvaluateSettings(_Section):
    SECTION = "evaluate"
    k: int = _default("evaluate", "k")
    novelty_holdout: Any = _default("evaluate", "novelty_holdout")
    celltypist: bool = _default("evaluate", "celltypist")
    plot: str = _default("evaluate", "plot")


@dataclass(frozen=True)
class DESettings(_Section):
    SECTION = "de"
    min_cells: int = _default("de", "min_cells")
    fdr: float = _default("de", "fdr")
    min_studies: int = _default("de", "min_studies")
    method: str = _default("de", "method")
    fallback: bool = _default("de", "fallback")
    gene_filter: str = _default("de", "gene_filter")
    siblings: bool = _default("de", "siblings")
    go: bool = _default("de", "go")


@dataclass(frozen=True)
class PublishSettings(_Section):
    SECTION = "publish"
    model: str = _default("publish", "model")
    select_by: str = _default("publish", "select_by")
    version: str | None = _default("publish", "version")
    keep: int = _default("publish", "keep")
    flat_max: int = _default("publish", "flat_max")
    index: str = _default("publish", "index")
    large_index: str = _default("publish", "large_index")
    target_recall: float = _default("publish", "target_recall")
    novelty_quantile: float = _default("publish", "novelty_quantile")
    gate: dict[str, Any] = _default("publish", "gate")


@dataclass(frozen=True)
class DemoSettings(_Section):
    SECTION = "demo"
    query_input: str | None = _default("demo", "query_input")
    truth_column: str = _default("demo", "truth_column")


SECTIONS: tuple[type[_Section], ...] = (
    ServicesSettings,
    DiscoverSettings,
    DownloadSettings,
    AlignSettings,
    QuantSettings,
    BarcodedSettings,
    OntologySettings,
    AtlasSettings,
    TrainSettings,
    EvaluateSettings,
    DESettings,
    PublishSettings,
    DemoSettings,
)


@dataclass(frozen=True)
class Settings:
    """Every section of a workflow config, typed."""

    publish_dir: str
    models: list[str]
    local_studies: list[dict[str, Any]]
    reference: dict[str, Any]
    services: ServicesSettings
    discover: DiscoverSettings
    download: DownloadSettings
    align: AlignSettings
    quant: QuantSettings
    barcoded: BarcodedSettings
    ontology: OntologySettings
    atlas: AtlasSettings
    train: TrainSettings
    evaluate: EvaluateSettings
    de: DESettings
    publish: PublishSettings
    demo: DemoSettings

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, validate: bool = True) -> Settings:
        """Settings of ``config`` (the workflow's, or a partial one: absent keys take the
        schema's defaults). ``validate`` checks it against the schema first."""
        data = copy.deepcopy(dict(config))
        if validate:
            _fill_defaults(config_schema(), data)
            try:
                jsonschema.validate(data, config_schema())
            except jsonschema.ValidationError as exc:
                where = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
                raise InputError(f"config {where}: {_message(exc)}", field=where) from None
        defaults = _defaults()
        return cls(
            publish_dir=data.get("publish_dir", defaults["publish_dir"]),
            models=list(data.get("models", defaults["models"])),
            local_studies=[dict(e) for e in data.get("local_studies", defaults["local_studies"])],
            reference=dict(data.get("reference", defaults["reference"])),
            **{section.SECTION: section.from_config(data) for section in SECTIONS},
        )


def _message(exc: jsonschema.ValidationError) -> str:
    """jsonschema's message in a line: the allowed values of an enum, the keys a section
    allows (and the nearest one) for an unknown key, the schema itself never."""
    if exc.validator == "enum":
        allowed = ", ".join(str(v) for v in exc.validator_value)
        return f"{exc.instance!r} is not one of {allowed}"
    if exc.validator == "additionalProperties" and isinstance(exc.instance, Mapping):
        known = list((exc.schema.get("properties") or {}).keys())
        unknown = [k for k in exc.instance if k not in known]
        hints = []
        for key in unknown:
            near = difflib.get_close_matches(str(key), known, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        return f"unknown key {', '.join(hints)}; allowed: {', '.join(known)}"
    text = exc.message
    return text if len(text) <= 300 else text[:297] + "..."


def config_error(config: Mapping[str, Any]) -> str | None:
    """The first problem of a workflow config, in a few lines (the key's path, what is
    wrong, the allowed values), or None: the Snakefile checks this before Snakemake's own
    validation, whose message prints the whole schema and config."""
    data = copy.deepcopy(dict(config))
    _fill_defaults(config_schema(), data)
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(config_schema()).iter_errors(data)
    )
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"config {where}: {_message(error)}"


def as_settings(config: Settings | Mapping[str, Any]) -> Settings:
    """``config`` as :class:`Settings`: the API's functions that take the workflow config
    accept the mapping (as Snakemake holds it) or Settings built once."""
    return config if isinstance(config, Settings) else Settings.from_config(config)
