"""GEO's MINiML (XML) sample records, read into the sample records of family SOFT files.

GEO serves every record both as SOFT and as MINiML; the two carry the same fields. Each
``<Sample>`` element is mapped to the SOFT keys (``Title`` -> ``!Sample_title``,
``Characteristics tag="x"`` -> ``!Sample_characteristics_ch1 = x: value``, ...) and read by
the same code as a SOFT sample (``scatlas.sources.geo``), so both formats give the same
record: text repaired, accessions checked, relations parsed.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from scatlas.errors import InputError

#: MINiML element (under a Sample) -> SOFT key (without ``!Sample_``)
_SAMPLE_FIELDS = {
    "Title": "title",
    "Accession": "geo_accession",
    "Type": "type",
    "Description": "description",
    "Library-Strategy": "library_strategy",
    "Library-Source": "library_source",
    "Library-Selection": "library_selection",
    "Instrument-Model/Predefined": "instrument_model",
    "Status/Submission-Date": "submission_date",
    "Status/Last-Update-Date": "last_update_date",
}
#: MINiML element (under a Channel) -> SOFT key without the ``_ch{n}`` suffix
_CHANNEL_FIELDS = {
    "Source": "source_name",
    "Organism": "organism",
    "Molecule": "molecule",
    "Extract-Protocol": "extract_protocol",
    "Growth-Protocol": "growth_protocol",
    "Treatment-Protocol": "treatment_protocol",
}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find_all(node: ET.Element, path: str) -> list[ET.Element]:
    """Children along a ``a/b`` path of local names (any namespace)."""
    found = [node]
    for step in path.split("/"):
        found = [c for n in found for c in n if _local(c.tag) == step]
    return found


def _text(node: ET.Element) -> str:
    return " ".join((node.text or "").split())


def _channel_meta(channel: ET.Element, n: str, meta: dict[str, list[str]]) -> None:
    for name, key in _CHANNEL_FIELDS.items():
        for node in _find_all(channel, name):
            meta.setdefault(f"{key}_ch{n}", []).append(_text(node))
            if name == "Organism" and node.get("taxid"):
                meta.setdefault(f"taxid_ch{n}", []).append(node.get("taxid", ""))
    for node in _find_all(channel, "Characteristics"):
        tag = node.get("tag", "").strip()
        value = _text(node)
        meta.setdefault(f"characteristics_ch{n}", []).append(f"{tag}: {value}" if tag else value)


def sample_meta(sample: ET.Element) -> dict[str, list[str]]:
    """A ``<Sample>`` element as SOFT metadata (key -> values, keys without ``!Sample_``)."""
    meta: dict[str, list[str]] = {}
    for path, key in _SAMPLE_FIELDS.items():
        for node in _find_all(sample, path):
            meta.setdefault(key, []).append(_text(node))
    if "geo_accession" not in meta and sample.get("iid"):
        meta["geo_accession"] = [sample.get("iid", "")]
    for channel in _find_all(sample, "Channel"):
        _channel_meta(channel, channel.get("position", "1"), meta)
    for node in _find_all(sample, "Relation"):
        meta.setdefault("relation", []).append(f"{node.get('type', '')}: {node.get('target', '')}")
    for node in _find_all(sample, "Supplementary-Data"):
        meta.setdefault("supplementary_file", []).append(_text(node))
    for node in _find_all(sample, "Platform-Ref"):
        meta.setdefault("platform_id", []).append(node.get("ref", ""))
    for node in _find_all(sample, "Series-Ref"):
        meta.setdefault("series_id", []).append(node.get("ref", ""))
    return meta


def parse_miniml_samples(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The sample records of a MINiML file, as :func:`scatlas.sources.geo.parse_family_soft`
    returns them."""
    from scatlas.sources.geo import _sample_record  # the SOFT reader of one sample

    where = str(path)
    try:
        root = ET.fromstring(Path(path).read_bytes())
    except ET.ParseError as exc:
        raise InputError(f"MINiML is not well-formed XML: {exc}", path=where) from exc
    if _local(root.tag) != "MINiML":
        raise InputError(f"root element is {_local(root.tag)!r}, not MINiML", path=where)
    samples = _find_all(root, "Sample")
    return [_sample_record(s.get("iid", ""), sample_meta(s), where) for s in samples]
