"""Metadata records of the demo world in the real services' formats.

GEO SOFT family files and E-utilities esummary documents, ENA read_run filereport rows,
ArrayExpress MAGE-TAB (IDF/SDRF) and BioStudies PageTab JSON and search hits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from scatlas.demo import spec
from scatlas.demo.spec import StudySpec

GEO_FTP = "ftp://ftp.ncbi.nlm.nih.gov/geo"
ENA_FTP_HOST = "ftp.sra.ebi.ac.uk"

PLATFORM_INFO = {
    "GPL16791": ("Illumina HiSeq 2500 (Homo sapiens)", date(2013, 3, 14)),
    "GPL18573": ("Illumina NextSeq 500 (Homo sapiens)", date(2014, 1, 21)),
    "GPL24676": ("Illumina NovaSeq 6000 (Homo sapiens)", date(2018, 3, 14)),
}
EFO_STUDY_TYPES = {
    "RNA-seq of coding RNA from single cells": "EFO_0005684",
    "transcription profiling by array": "EFO_0002768",
}

# Fictional submitters (no real person is named).
CONTACTS = {
    1: ("Ana,,Rivera", "Demo Institute of Immunology"),
    2: ("Tomas,J,Lindqvist", "Northern Demo University"),
    3: ("Mei,,Tanaka", "Demo Diabetes Center"),
    4: ("Oskar,,Brandt", "Demo Liver Institute"),
    5: ("Priya,,Nair", "Demo Pancreas Lab"),
    6: ("Lucas,,Moreau", "Demo Hepatology Unit"),
    7: ("Sara,,Okafor", "Demo Genomics Core"),
    8: ("Jonas,,Weber", "Demo Chromatin Lab"),
    9: ("Elena,,Rossi", "Demo ENT Research"),
    10: ("Kofi,,Mensah", "Demo Single Cell Platform"),
}
AE_CONTACTS = {
    1: ("Hanna,,Virtanen", "Demo Skin Biology Group"),
    2: ("Marco,,Bianchi", "Demo Innate Immunity Lab"),
}


def contact_of(study: StudySpec) -> tuple[str, str]:
    """(GEO-style "First,Middle,Last", institute) of a study's fictional submitter."""
    return (CONTACTS if study.source == "geo" else AE_CONTACTS)[study.number]


@dataclass
class SampleRecord:
    """One sample (= one cell for single-cell studies) with its accessions and files."""

    study: str
    sample: str  # GSM accession, or the ArrayExpress source name
    title: str
    type_key: str
    text: str  # the study's own words for the cell type
    source_name: str
    characteristics: list[tuple[str, str]]
    biosample: str = ""
    secondary_sample: str = ""  # SRS / ERS
    experiment: str = ""  # SRX / ERX
    run: str = ""  # SRR / ERR; empty for samples without reads
    files: list[str] = field(default_factory=list)  # mirror-relative paths, mate order
    md5: list[str] = field(default_factory=list)  # as published by ENA
    sizes: list[int] = field(default_factory=list)  # as published by ENA
    read_count: int = 0
    submitted_names: list[str] = field(default_factory=list)


def geo_date(d: date) -> str:
    return d.strftime("%b %d %Y")


def gse_folder(accession: str) -> str:
    """GEO's folder for a series: GSE900001 -> series/GSE900nnn/GSE900001."""
    return f"series/{accession[:-3]}nnn/{accession}"


def gds_uid(accession: str) -> str:
    """E-utilities GDS uid of a series: 200000000 + the series number."""
    return str(200_000_000 + int(accession[3:]))


def platform_of(study: StudySpec) -> str:
    return spec.PLATFORMS[study.instrument]


def soft_family(
    study: StudySpec,
    samples: list[SampleRecord],
    supplementary: list[str],
    sra_study: str,
    bioproject: str,
) -> str:
    """A GEO SOFT family file (^DATABASE, ^SERIES, ^PLATFORM, ^SAMPLE sections)."""
    gpl = platform_of(study)
    contact, institute = contact_of(study)
    out = [
        "^DATABASE = GeoMiame",
        "!Database_name = Gene Expression Omnibus (GEO)",
        "!Database_institute = NCBI NLM NIH",
        "!Database_web_link = http://www.ncbi.nlm.nih.gov/geo",
        "!Database_email = geo@ncbi.nlm.nih.gov",
        f"^SERIES = {study.accession}",
        f"!Series_title = {study.title}",
        f"!Series_geo_accession = {study.accession}",
        f"!Series_status = Public on {geo_date(study.released)}",
        f"!Series_submission_date = {geo_date(study.submitted)}",
        f"!Series_last_update_date = {geo_date(study.updated)}",
        f"!Series_summary = {study.summary}",
        f"!Series_overall_design = {study.design}",
        f"!Series_type = {study.gds_type}",
        f"!Series_contributor = {contact}",
    ]
    out += [f"!Series_sample_id = {s.sample}" for s in samples]
    out += [
        f"!Series_contact_name = {contact}",
        f"!Series_contact_institute = {institute}",
        "!Series_contact_address = 1 Example Road",
        "!Series_contact_city = Demo City",
        "!Series_contact_zip/postal_code = 00000",
        "!Series_contact_country = USA",
    ]
    out += [f"!Series_supplementary_file = {u}" for u in supplementary]
    out += [
        f"!Series_platform_id = {gpl}",
        f"!Series_platform_organism = {spec.ORGANISM}",
        f"!Series_platform_taxid = {spec.TAXID}",
        f"!Series_sample_organism = {spec.ORGANISM}",
        f"!Series_sample_taxid = {spec.TAXID}",
    ]
    if bioproject:
        out.append(
            f"!Series_relation = BioProject: https://www.ncbi.nlm.nih.gov/bioproject/{bioproject}"
        )
    if sra_study:
        out.append(f"!Series_relation = SRA: https://www.ncbi.nlm.nih.gov/sra?term={sra_study}")
    title, public = PLATFORM_INFO[gpl]
    out += [
        f"^PLATFORM = {gpl}",
        f"!Platform_title = {title}",
        f"!Platform_geo_accession = {gpl}",
        f"!Platform_status = Public on {geo_date(public)}",
        f"!Platform_submission_date = {geo_date(public)}",
        "!Platform_last_update_date = Mar 27 2019",
        "!Platform_technology = high-throughput sequencing",
        "!Platform_distribution = virtual",
        f"!Platform_organism = {spec.ORGANISM}",
        f"!Platform_taxid = {spec.TAXID}",
        "!Platform_contact_name = ,,GEO",
        "!Platform_contact_country = USA",
        "!Platform_data_row_count = 0",
    ]
    for s in samples:
        out += _soft_sample(study, s, gpl, contact, institute)
    return "\n".join(out) + "\n"


def _soft_sample(
    study: StudySpec, s: SampleRecord, gpl: str, contact: str, institute: str
) -> list[str]:
    out = [
        f"^SAMPLE = {s.sample}",
        f"!Sample_title = {s.title}",
        f"!Sample_geo_accession = {s.sample}",
        f"!Sample_status = Public on {geo_date(study.released)}",
        f"!Sample_submission_date = {geo_date(study.submitted)}",
        f"!Sample_last_update_date = {geo_date(study.updated)}",
        "!Sample_type = SRA",
        "!Sample_channel_count = 1",
        f"!Sample_source_name_ch1 = {s.source_name}",
        f"!Sample_organism_ch1 = {spec.ORGANISM}",
        f"!Sample_taxid_ch1 = {spec.TAXID}",
    ]
    out += [f"!Sample_characteristics_ch1 = {k}: {v}" for k, v in s.characteristics]
    out += [
        f"!Sample_molecule_ch1 = {study.molecule}",
        f"!Sample_extract_protocol_ch1 = {study.design}",
        f"!Sample_description = {s.title}",
    ]
    if study.kind == "matrix":
        out.append(
            f"!Sample_data_processing = Counts per gene are in {study.accession}_counts.csv.gz"
        )
    elif study.library_strategy == "ATAC-seq":
        out.append(
            "!Sample_data_processing = Reads were aligned with bowtie2; peaks were called with MACS2"
        )
    else:
        out.append(
            "!Sample_data_processing = Reads were aligned with HISAT2 and counted with featureCounts"
        )
    out += [
        "!Sample_data_processing = Genome_build: DEMO1 (synthetic)",
        f"!Sample_platform_id = {gpl}",
        f"!Sample_contact_name = {contact}",
        f"!Sample_contact_institute = {institute}",
        "!Sample_contact_country = USA",
        f"!Sample_instrument_model = {study.instrument}",
        f"!Sample_library_selection = {study.library_selection}",
        f"!Sample_library_source = {study.library_source}",
        f"!Sample_library_strategy = {study.library_strategy}",
    ]
    if s.experiment:
        out.append(
            f"!Sample_relation = BioSample: https://www.ncbi.nlm.nih.gov/biosample/{s.biosample}"
        )
        out.append(f"!Sample_relation = SRA: https://www.ncbi.nlm.nih.gov/sra?term={s.experiment}")
    out += [
        "!Sample_supplementary_file_1 = NONE",
        f"!Sample_series_id = {study.accession}",
        "!Sample_data_row_count = 0",
    ]
    return out


def gds_summary(
    study: StudySpec, samples: list[SampleRecord], suppfile: str, sra_study: str, bioproject: str
) -> dict:
    """An E-utilities esummary document (db=gds) for a series, as the JSON API returns it."""
    ext = []
    if sra_study:
        ext.append(
            {
                "relationtype": "SRA",
                "targetobject": sra_study,
                "targetftplink": (
                    "ftp://ftp-trace.ncbi.nlm.nih.gov/sra/sra-instant/reads/ByStudy/sra/"
                    f"SRP/{sra_study[:6]}/{sra_study}/"
                ),
            }
        )
    return SeriesSummary(
        accession=study.accession,
        title=study.title,
        summary=study.summary,
        gpl=platform_of(study)[3:],
        taxon=spec.ORGANISM,
        gdstype=study.gds_type,
        released=study.released,
        suppfile=suppfile,
        samples=[(s.sample, s.title) for s in samples],
        relations=[],
        extrelations=ext,
        bioproject=bioproject,
    ).document()


@dataclass(frozen=True)
class SeriesSummary:
    """What a series' esummary (db=gds) document says."""

    accession: str
    title: str
    summary: str
    gpl: str
    taxon: str
    gdstype: str
    released: date
    suppfile: str
    samples: list[tuple[str, str]]
    relations: list[dict]
    extrelations: list[dict]
    bioproject: str

    def document(self) -> dict:
        """The esummary document, every field in the API's order."""
        return _esummary(self)


def _esummary(s: SeriesSummary) -> dict:
    accession, samples = s.accession, s.samples
    return {
        "uid": gds_uid(accession),
        "accession": accession,
        "gds": "",
        "title": s.title,
        "summary": s.summary,
        "gpl": s.gpl,
        "gse": accession[3:],
        "taxon": s.taxon,
        "entrytype": "GSE",
        "gdstype": s.gdstype,
        "ptechtype": "",
        "valtype": "",
        "ssinfo": "",
        "subsetinfo": "",
        "pdat": s.released.strftime("%Y/%m/%d"),
        "suppfile": s.suppfile,
        "samples": [{"accession": a, "title": t} for a, t in samples],
        "relations": s.relations,
        "extrelations": s.extrelations,
        "n_samples": len(samples),
        "seriestitle": "",
        "platformtitle": "",
        "platformtaxa": "",
        "samplestaxa": "",
        "pubmedids": [],
        "projects": [],
        "ftplink": f"{GEO_FTP}/{gse_folder(accession)}/",
        "geo2r": "no",
        "bioproject": s.bioproject,
    }


ENA_FIELDS = (
    "run_accession",
    "experiment_accession",
    "sample_accession",
    "secondary_sample_accession",
    "study_accession",
    "secondary_study_accession",
    "sample_alias",
    "experiment_alias",
    "run_alias",
    "sample_title",
    "experiment_title",
    "study_title",
    "library_name",
    "library_layout",
    "library_strategy",
    "library_source",
    "library_selection",
    "instrument_platform",
    "instrument_model",
    "nominal_length",
    "tax_id",
    "scientific_name",
    "read_count",
    "base_count",
    "fastq_ftp",
    "fastq_md5",
    "fastq_bytes",
    "submitted_ftp",
    "submitted_md5",
    "submitted_bytes",
    "submitted_format",
    "first_public",
    "last_updated",
)


def _bases_per_spot(study: StudySpec) -> int:
    if study.chemistry:  # read 1 = barcode + UMI, read 2 = cDNA
        return sum(spec.DROPLET_LAYOUT[study.chemistry]) + spec.READ_LENGTH
    return spec.READ_LENGTH * (2 if study.layout == "PAIRED" else 1)


def ena_row(
    study: StudySpec, s: SampleRecord, study_acc: str, secondary_study: str
) -> dict[str, str]:
    """One ENA read_run record (what filereport?result=read_run returns for this run)."""
    paired = study.layout == "PAIRED"
    source = study.library_source.upper()
    ftp = [f"{ENA_FTP_HOST}/{p}" for p in s.files]
    alias = s.sample if study.source == "geo" else f"{study.accession}:{s.sample}"
    submitted_ftp = submitted_md5 = submitted_bytes = submitted_format = ""
    if study.source == "arrayexpress":
        submitted_ftp = ";".join(
            f"{ENA_FTP_HOST}/vol1/run/{s.run[:6]}/{s.run}/{n}" for n in s.submitted_names
        )
        submitted_md5 = ";".join(s.md5)
        submitted_bytes = ";".join(str(b) for b in s.sizes)
        submitted_format = "FASTQ;FASTQ" if paired else "FASTQ"
    return {
        "run_accession": s.run,
        "experiment_accession": s.experiment,
        "sample_accession": s.biosample,
        "secondary_sample_accession": s.secondary_sample,
        "study_accession": study_acc,
        "secondary_study_accession": secondary_study,
        "sample_alias": alias,
        "experiment_alias": alias,
        "run_alias": f"{alias}_r1"
        if study.source == "geo"
        else f"{study.accession}:{s.submitted_names[0]}",
        "sample_title": s.title,
        "experiment_title": f"{study.instrument} sequencing; {s.sample}: {s.title}",
        "study_title": study.title,
        "library_name": s.title,
        "library_layout": study.layout,
        "library_strategy": study.library_strategy,
        "library_source": source,
        "library_selection": study.library_selection,
        "instrument_platform": "ILLUMINA",
        "instrument_model": study.instrument,
        "nominal_length": str((spec.FRAGMENT_MIN + spec.FRAGMENT_MAX) // 2) if paired else "",
        "tax_id": spec.TAXID,
        "scientific_name": spec.ORGANISM,
        "read_count": str(s.read_count),
        "base_count": str(s.read_count * _bases_per_spot(study)),
        "fastq_ftp": ";".join(ftp),
        "fastq_md5": ";".join(s.md5),
        "fastq_bytes": ";".join(str(b) for b in s.sizes),
        "submitted_ftp": submitted_ftp,
        "submitted_md5": submitted_md5,
        "submitted_bytes": submitted_bytes,
        "submitted_format": submitted_format,
        "first_public": study.released.isoformat(),
        "last_updated": study.updated.isoformat(),
    }


# -- ArrayExpress / BioStudies ----------------------------------------------------------------

AE_STUDY_TYPE = {
    "reads": "RNA-seq of coding RNA from single cells",
    "not-scrna": "transcription profiling by array",
}


def _protocols(study: StudySpec) -> list[tuple[str, str, str]]:
    base = 990000 + 10 * study.number
    if study.kind == "reads":
        return [
            (
                f"P-MTAB-{base + 1}",
                "sample collection protocol",
                "Tissue was dissociated and single cells were sorted by FACS.",
            ),
            (
                f"P-MTAB-{base + 2}",
                "nucleic acid extraction protocol",
                "Cells were lysed in the well; RNA was reverse transcribed with Smart-seq2.",
            ),
            (
                f"P-MTAB-{base + 3}",
                "nucleic acid library construction protocol",
                "Libraries were prepared with Nextera XT.",
            ),
            (
                f"P-MTAB-{base + 4}",
                "nucleic acid sequencing protocol",
                f"{study.instrument}, paired-end 2x50 bp.",
            ),
        ]
    return [
        (
            f"P-MTAB-{base + 1}",
            "sample collection protocol",
            "Monocytes were isolated by CD14 selection.",
        ),
        (
            f"P-MTAB-{base + 2}",
            "nucleic acid extraction protocol",
            "Total RNA was extracted with a column kit.",
        ),
        (f"P-MTAB-{base + 3}", "labelling protocol", "RNA was labelled with biotin."),
        (
            f"P-MTAB-{base + 4}",
            "hybridization protocol",
            "Labelled cRNA was hybridised to the array.",
        ),
        (f"P-MTAB-{base + 5}", "array scanning protocol", "Arrays were scanned."),
    ]


def idf_text(study: StudySpec, secondary_study: str) -> str:
    contact, institute = contact_of(study)
    first, _, last = contact.split(",")
    protos = _protocols(study)
    stype = AE_STUDY_TYPE[study.kind]
    rows = [
        ["MAGE-TAB Version", "1.1"],
        ["Investigation Title", study.title],
        ["Comment[Submitted Name]", study.title],
        ["Experimental Design", study.design],
        ["Experimental Design Term Source REF", "EFO"],
        ["Experimental Factor Name", "cell type" if study.kind == "reads" else "stimulus"],
        ["Experimental Factor Type", "cell type" if study.kind == "reads" else "stimulus"],
        ["Person Last Name", last],
        ["Person First Name", first],
        ["Person Email", f"{first.lower()}.{last.lower()}@example.org"],
        ["Person Affiliation", institute],
        ["Person Roles", "submitter"],
        ["Public Release Date", study.released.isoformat()],
        ["Protocol Name"] + [p[0] for p in protos],
        ["Protocol Type"] + [p[1] for p in protos],
        ["Protocol Description"] + [p[2] for p in protos],
        ["Protocol Term Source REF"] + ["EFO"] * len(protos),
        ["Term Source Name", "EFO", "ArrayExpress"],
        [
            "Term Source File",
            "http://www.ebi.ac.uk/efo/efo.owl",
            "http://www.ebi.ac.uk/arrayexpress/",
        ],
        ["Comment[AEExperimentType]", stype],
        ["Comment[ArrayExpressAccession]", study.accession],
    ]
    if secondary_study:
        rows.append(["Comment[SecondaryAccession]", secondary_study])
        rows.append(
            [
                "Comment[SequenceDataURI]",
                f"https://www.ebi.ac.uk/ena/browser/view/{secondary_study}",
            ]
        )
    rows.append(["SDRF File", f"{study.accession}.sdrf.txt"])
    return "\n".join("\t".join(r) for r in rows) + "\n"


SDRF_READ_COLUMNS = (
    "Source Name",
    "Comment[ENA_SAMPLE]",
    "Comment[BioSD_SAMPLE]",
    "Characteristics[organism]",
    "Characteristics[individual]",
    "Characteristics[sex]",
    "Characteristics[organism part]",
    "Characteristics[cell type]",
    "Material Type",
    "Protocol REF",
    "Protocol REF",
    "Extract Name",
    "Comment[LIBRARY_LAYOUT]",
    "Comment[LIBRARY_SELECTION]",
    "Comment[LIBRARY_SOURCE]",
    "Comment[LIBRARY_STRATEGY]",
    "Comment[NOMINAL_LENGTH]",
    "Comment[single cell isolation]",
    "Comment[library construction]",
    "Protocol REF",
    "Performer",
    "Assay Name",
    "Comment[technical replicate group]",
    "Technology Type",
    "Comment[ENA_EXPERIMENT]",
    "Scan Name",
    "Comment[SUBMITTED_FILE_NAME]",
    "Comment[ENA_RUN]",
    "Comment[FASTQ_URI]",
    "Factor Value[cell type]",
)


def sdrf_text(study: StudySpec, samples: list[SampleRecord]) -> str:
    protos = [p[0] for p in _protocols(study)]
    if study.kind != "reads":
        return _array_sdrf(study, samples, protos)
    rows = ["\t".join(SDRF_READ_COLUMNS)]
    for s in samples:
        ch = dict(s.characteristics)
        for mate, path in enumerate(s.files):
            name = path.rsplit("/", 1)[1]
            rows.append(
                "\t".join(
                    [
                        s.sample,
                        s.secondary_sample,
                        s.biosample,
                        spec.ORGANISM,
                        ch["individual"],
                        ch["sex"],
                        ch["organism part"],
                        ch["cell type"],
                        "cell",
                        protos[0],
                        protos[1],
                        s.sample,
                        study.layout,
                        study.library_selection,
                        study.library_source.upper(),
                        study.library_strategy,
                        str((spec.FRAGMENT_MIN + spec.FRAGMENT_MAX) // 2)
                        if study.layout == "PAIRED"
                        else "",
                        "FACS",
                        "smart-seq2",
                        protos[3],
                        "Demo Genomics Core",
                        s.sample,
                        s.sample,
                        "sequencing assay",
                        s.experiment,
                        name,
                        s.submitted_names[mate],
                        s.run,
                        f"ftp://{ENA_FTP_HOST}/{path}",
                        ch["cell type"],
                    ]
                )
            )
    return "\n".join(rows) + "\n"


def _array_sdrf(study: StudySpec, samples: list[SampleRecord], protos: list[str]) -> str:
    cols = [
        "Source Name",
        "Characteristics[organism]",
        "Characteristics[cell type]",
        "Characteristics[individual]",
        "Material Type",
        "Protocol REF",
        "Protocol REF",
        "Extract Name",
        "Protocol REF",
        "Labeled Extract Name",
        "Label",
        "Protocol REF",
        "Hybridization Name",
        "Array Design REF",
        "Protocol REF",
        "Scan Name",
        "Array Data File",
        "Factor Value[stimulus]",
    ]
    rows = ["\t".join(cols)]
    for s in samples:
        ch = dict(s.characteristics)
        rows.append(
            "\t".join(
                [
                    s.sample,
                    spec.ORGANISM,
                    ch["cell type"],
                    ch["individual"],
                    "cell",
                    protos[0],
                    protos[1],
                    s.sample,
                    protos[2],
                    f"{s.sample} LE",
                    "biotin",
                    protos[3],
                    s.sample,
                    "A-AFFY-44",
                    protos[4],
                    s.sample,
                    f"{s.sample}.CEL",
                    ch["stimulus"],
                ]
            )
        )
    return "\n".join(rows) + "\n"


def _attr(name: str, value: str, **valqual: str) -> dict:
    out: dict = {"name": name, "value": value}
    if valqual:
        out["valqual"] = [{"name": k, "value": v} for k, v in valqual.items()]
    return out


def _protocol_sections(study: StudySpec) -> list[dict]:
    return [
        {
            "accno": name,
            "type": "Protocols",
            "attributes": [
                _attr("Name", name),
                _attr("Type", ptype, Ontology="EFO"),
                _attr("Description", desc),
            ],
        }
        for name, ptype, desc in _protocols(study)
    ]


def _contact_sections(study: StudySpec) -> list[dict]:
    contact, institute = contact_of(study)
    first, _, last = contact.split(",")
    return [
        {
            "type": "Author",
            "attributes": [
                _attr("Name", f"{first} {last}"),
                _attr("Email", f"{first.lower()}.{last.lower()}@example.org"),
                _attr("Role", "submitter"),
                {"name": "affiliation", "value": "o1", "reference": True},
            ],
        },
        {"accno": "o1", "type": "Organization", "attributes": [_attr("Name", institute)]},
    ]


def _samples_section(study: StudySpec, samples: list, source_chars: list[dict]) -> dict:
    acc = study.accession
    factor = "cell type" if study.kind == "reads" else "stimulus"
    return {
        "accno": f"s-samples-factors-{acc}",
        "type": "Samples",
        "attributes": [
            _attr("Sample count", str(len(samples))),
            _attr("Experimental Factors", factor, TermName=factor),
        ],
        "subsections": [
            {
                "accno": f"source_chars-{acc}",
                "type": "Source Characteristics",
                "attributes": source_chars,
            }
        ],
    }


def _assays_section(study: StudySpec, samples: list, mage_tab_sizes: dict[str, int]) -> dict:
    acc = study.accession

    def mage_tab(suffix: str, description: str) -> dict:
        name = f"{acc}.{suffix}"
        return {
            "path": name,
            "size": mage_tab_sizes[name],
            "attributes": [_attr("Description", description)],
            "type": "file",
        }

    return {
        "accno": f"s-assays-data-{acc}",
        "type": "Assays and Data",
        "attributes": [
            _attr("Assay count", str(len(samples))),
            _attr("Technology", "Sequencing assay" if study.kind == "reads" else "Array assay"),
            _attr("Assay by Molecule", "RNA assay"),
        ],
        "subsections": [
            {
                "accno": f"mt-{acc}",
                "type": "MAGE-TAB Files",
                "files": [
                    [
                        mage_tab("idf.txt", "Investigation Design Format"),
                        mage_tab("sdrf.txt", "Sample and Data Relationship Format"),
                    ]
                ],
            }
        ],
    }


def biostudies_study(
    study: StudySpec,
    samples: list[SampleRecord],
    secondary_study: str,
    mage_tab_sizes: dict[str, int],
) -> dict:
    """A BioStudies PageTab study document (``/biostudies/api/v1/studies/{acc}``)."""
    acc = study.accession
    stype = AE_STUDY_TYPE[study.kind]
    chars: dict[str, list[str]] = {}
    for s in samples:
        for k, v in [("organism", spec.ORGANISM)] + s.characteristics:
            if v not in chars.setdefault(k, []):
                chars[k].append(v)
    source_chars = [_attr(k[0].upper() + k[1:], v) for k, vals in chars.items() for v in vals]
    subsections: list = [
        _protocol_sections(study),
        *_contact_sections(study),
        _samples_section(study, samples, source_chars),
        _assays_section(study, samples, mage_tab_sizes),
    ]
    section: dict = {
        "accno": f"s-{acc}",
        "type": "Study",
        "attributes": [
            _attr("Title", study.title),
            _attr("Study type", stype, Ontology="EFO", TermId=EFO_STUDY_TYPES[stype]),
            _attr("Organism", spec.ORGANISM),
            _attr("Description", study.summary),
            _attr("Experimental Designs", study.design),
        ],
        "subsections": subsections,
    }
    if secondary_study:
        section["links"] = [[{"url": secondary_study, "attributes": [_attr("Type", "ENA")]}]]
    return {
        "accno": acc,
        "attributes": [
            _attr("Title", study.title),
            _attr("ReleaseDate", study.released.isoformat()),
            _attr("RootPath", acc),
            _attr("AttachTo", "ArrayExpress"),
        ],
        "section": section,
        "type": "submission",
    }


def biostudies_hit(study: StudySpec, n_files: int, n_links: int) -> dict:
    """One hit of ``/biostudies/api/v1/arrayexpress/search``."""
    contact, _ = contact_of(study)
    first, _, last = contact.split(",")
    return {
        "accession": study.accession,
        "type": "study",
        "title": study.title,
        "author": f"{first} {last}",
        "links": n_links,
        "files": n_files,
        "release_date": study.released.isoformat(),
        "views": 10 + 7 * study.number,
        "isPublic": True,
        "content": f"{study.accession} {study.title} {study.summary[:80]} ...",
    }
