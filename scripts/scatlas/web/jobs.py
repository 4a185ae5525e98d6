"""Background annotation jobs of the web page: each upload gets a folder under the server's
work folder (``jobs/<id>/``, names chosen here, never by the upload), runs in a small thread
pool (two at once by default) and reports its progress from the annotation's own log lines.

A job reads the upload with the CLI's reader, annotates it with the loaded reference
(``Reference.annotate``), clusters the cells when the release's model is ScLSTM, computes
the heatmap, and writes ``annotated.h5ad`` and ``annotated.csv`` (temp-then-rename). A bad
upload fails the job with the CLI's message.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scatlas.errors import ScatlasError

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_PROGRESS = re.compile(r"annotated (\d+)/(\d+) cells")


@dataclass
class Job:
    """One upload's state (``queued``, ``running``, ``done``, ``failed``) and results."""

    id: str
    folder: Path
    name: str
    suffix: str = ".h5ad"
    state: str = "queued"
    progress: float = 0.0
    message: str = "waiting for a worker"
    error: str = ""
    adata: Any = None
    heatmap: dict[str, Any] = field(default_factory=dict)
    clusters: np.ndarray | None = None
    thread: int | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "progress": round(self.progress, 3),
            "message": self.message,
            "error": self.error,
        }


class _ProgressHandler(logging.Handler):
    """Turns "annotated i/n cells" log lines of a job's thread into its progress."""

    def __init__(self, jobs: JobManager):
        super().__init__(logging.INFO)
        self.jobs = jobs

    def emit(self, record: logging.LogRecord) -> None:
        job = self.jobs.by_thread(record.thread)
        if job is None:
            return
        hit = _PROGRESS.search(record.getMessage())
        if hit:
            done, total = int(hit.group(1)), max(int(hit.group(2)), 1)
            job.progress = 0.15 + 0.6 * done / total
            job.message = f"annotated {done} of {total} cells"


class JobManager:
    """Runs annotation jobs against one loaded reference."""

    def __init__(self, reference: Any, workdir: Path, workers: int = 2, batch_size: int = 512):
        self.reference = reference
        self.workdir = Path(workdir).resolve()
        (self.workdir / "jobs").mkdir(parents=True, exist_ok=True)
        self.batch_size = batch_size
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scatlas-job")
        self._handler = _ProgressHandler(self)
        annotate_log = logging.getLogger("scatlas.annotate")
        annotate_log.addHandler(self._handler)
        if annotate_log.getEffectiveLevel() > logging.INFO:  # the progress lines are INFO
            annotate_log.setLevel(logging.INFO)

    def close(self) -> None:
        logging.getLogger("scatlas.annotate").removeHandler(self._handler)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def get(self, job_id: str) -> Job | None:
        if not JOB_ID.match(job_id or ""):
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def by_thread(self, thread: int | None) -> Job | None:
        with self._lock:
            return next(
                (j for j in self._jobs.values() if j.thread == thread and j.state == "running"),
                None,
            )

    def new_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex
        folder = self.workdir / "jobs" / job_id
        folder.mkdir(parents=True)
        return job_id, folder

    def submit(self, job_id: str, folder: Path, name: str, suffix: str = ".h5ad") -> Job:
        """Queue the annotation of ``folder/input<suffix>`` (``name``: what was uploaded)."""
        job = Job(job_id, folder, name, suffix)
        with self._lock:
            self._jobs[job_id] = job
        self._pool.submit(self._run, job)
        return job

    def _run(self, job: Job) -> None:
        job.thread = threading.get_ident()
        job.state, job.message, job.progress = "running", "reading the upload", 0.05
        try:
            self._annotate(job)
            job.state, job.progress, job.message = "done", 1.0, "done"
        except ScatlasError as exc:
            job.state, job.error, job.message = "failed", str(exc), "failed"
            log.warning("job %s (%s) failed: %s", job.id, job.name, exc)
        except Exception as exc:  # a bug: the page says so instead of waiting forever
            job.state, job.message = "failed", "failed"
            job.error = f"internal error ({type(exc).__name__}: {exc})"
            log.exception("job %s (%s) failed", job.id, job.name)

    def _annotate(self, job: Job) -> None:
        from scatlas.annotate.cluster_cells import ClusterOptions, cluster_adata
        from scatlas.annotate.query_io import read_query, write_csv
        from scatlas.annotate.reference import OBS_COLUMNS
        from scatlas.fileio import atomic_path
        from scatlas.models.sclstm import pair_head
        from scatlas.web.views import heatmap

        source = job.folder / f"input{job.suffix}"
        adata = read_query(source)
        job.progress, job.message = 0.15, f"annotating {adata.n_obs} cells"
        ref = self.reference
        ref.annotate(adata, source=job.name, batch_size=self.batch_size)
        head = pair_head(ref.model)
        if head is not None:  # a ScLSTM release: its clusters colour the plot
            job.message = "clustering the cells (ScLSTM)"
            cluster_adata(adata, ClusterOptions(), same_type=head, source=job.name)
        job.progress, job.message = 0.85, "clustering the heatmap"
        labels = dict(
            zip(ref.cells["cl_id"].astype(str), ref.cells["cl_label"].astype(str), strict=True)
        )
        view = heatmap(adata, labels)
        job.clusters = view.pop("_all_clusters")
        job.progress, job.message = 0.95, "writing the results"
        with atomic_path(job.folder / "annotated.h5ad", ".h5ad") as tmp:
            adata.write_h5ad(tmp)
        columns = OBS_COLUMNS + (["scatlas_cluster"] if "scatlas_cluster" in adata.obs else [])
        write_csv(adata, job.folder / "annotated.csv", columns)
        job.adata, job.heatmap = adata, view
