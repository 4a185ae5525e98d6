"""``scatlas serve``: a local web app (Flask) to explore a release and annotate uploads.

Every asset (HTML, JavaScript, CSS) ships in ``scatlas/web/static``; nothing is fetched from
a CDN. The server binds to 127.0.0.1 unless told otherwise, writes only under its work
folder (``jobs/<id>/``), limits the upload size, and runs two annotations at once.

JSON API (what the page calls): ``GET /api/release``; ``POST /api/jobs`` (multipart ``file``,
or ``demo=1`` for the demo query); ``GET /api/jobs/<id>`` (state, progress, message,
error); ``GET /api/jobs/<id>/result`` (heatmap, dendrogram, clusters, type distribution);
``GET /api/jobs/<id>/clusters/<c>`` (2-D plot, ontology DAG, studies, DE);
``GET /api/jobs/<id>/download/h5ad|csv``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from flask import Flask, abort, jsonify, request, send_file, send_from_directory

from scatlas.package_data import web_static_dir
from scatlas.web.jobs import JobManager
from scatlas.web.views import cluster_view, distribution, release_summary

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_MB = 500
DOWNLOADS = {"h5ad": "annotated.h5ad", "csv": "annotated.csv"}


def study_titles(root: Path | None) -> dict[str, str]:
    """Study accession -> title from the release's ``studies.tsv`` (empty without one)."""
    path = root / "studies.tsv" if root is not None else None
    if path is None or not path.is_file():
        return {}
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return dict(zip(table["study"], table.get("title", ""), strict=True))


def create_app(
    reference: Any,
    workdir: Path,
    *,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    demo_query: Path | None = None,
    workers: int = 2,
) -> Flask:
    """The Flask app serving ``reference`` (a loaded ``Reference``)."""
    static = web_static_dir()
    app = Flask(__name__, static_folder=str(static), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 1024 * 1024)
    jobs = JobManager(reference, workdir, workers=workers)
    app.extensions["scatlas_jobs"] = jobs
    demo = Path(demo_query) if demo_query is not None and Path(demo_query).is_file() else None

    @app.errorhandler(413)
    def too_large(_exc: Exception):
        return jsonify(
            error=f"the upload is larger than this server's limit of {max_upload_mb:g} MB "
            "(scatlas serve --max-upload-mb)"
        ), 413

    @app.get("/")
    def index():
        return send_from_directory(static, "index.html")

    @app.get("/api/release")
    def release():
        return jsonify(release_summary(reference) | {"demo_query": demo is not None})

    _upload_routes(app, jobs, demo)
    _result_routes(app, jobs, reference, study_titles(reference.root))
    return app


def _upload_routes(app: Flask, jobs: JobManager, demo: Path | None) -> None:
    @app.post("/api/jobs")
    def submit():
        use_demo = bool(request.form.get("demo"))
        upload = request.files.get("file")
        if use_demo and demo is None:
            return jsonify(error="this server has no demo query (scatlas serve --demo-query)"), 400
        if not use_demo and (upload is None or not upload.filename):
            return jsonify(error="no file uploaded (the form field 'file')"), 400
        job_id, folder = jobs.new_folder()
        name = demo.name if use_demo else Path(upload.filename).name
        suffix = ".h5" if name.lower().endswith(".h5") else ".h5ad"
        if use_demo:
            shutil.copyfile(demo, folder / "input.h5ad")
        else:
            upload.save(folder / f"input{suffix}")
        return jsonify(jobs.submit(job_id, folder, name, suffix).public()), 202

    @app.get("/api/jobs/<job_id>")
    def status(job_id: str):
        return jsonify(_job(jobs, job_id).public())


def _job(jobs: JobManager, job_id: str, done: bool = False):
    """The job, or 404 (unknown id) / 409 (not finished) for the client."""
    job = jobs.get(job_id)
    if job is None:
        abort(404)
    if done and job.state != "done":
        abort(409)
    return job


def _result_routes(app: Flask, jobs: JobManager, reference: Any, titles: dict[str, str]) -> None:
    @app.get("/api/jobs/<job_id>/result")
    def result(job_id: str):
        job = _job(jobs, job_id, done=True)
        info = job.adata.uns.get("scatlas", {})
        table = job.adata.uns.get("scatlas_clusters", {}).get("table")
        return jsonify(
            job.public()
            | {
                "heatmap": job.heatmap,
                "distribution": distribution(job.adata),
                "n_novel": int(info.get("n_novel", 0)),
                "gene_overlap": info.get("gene_overlap", {}),
                "sclstm_clusters": [] if table is None else table.to_dict(orient="records"),
            }
        )

    @app.get("/api/jobs/<job_id>/clusters/<int:cluster>")
    def cluster(job_id: str, cluster: int):
        job = _job(jobs, job_id, done=True)
        if cluster not in set(job.clusters.tolist()):
            abort(404)
        return jsonify(cluster_view(job.adata, reference, job.clusters, cluster, titles))

    @app.get("/api/jobs/<job_id>/download/<kind>")
    def download(job_id: str, kind: str):
        job = _job(jobs, job_id, done=True)
        if kind not in DOWNLOADS:
            abort(404)
        stem = Path(job.name).stem or "query"
        return send_file(
            job.folder / DOWNLOADS[kind],
            as_attachment=True,
            download_name=f"{stem}_annotated.{kind}",
        )
