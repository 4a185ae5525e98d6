"""Handing checked reads to an aligner through named pipes.

One thread reads the run's FASTQ files in lockstep (:func:`scatlas.reads.fastq.read_mates`),
turns each batch into the text of each pipe (plain mates, or barcode-tagged cDNA reads)
and queues it; one thread per pipe writes its queue. The aligner reads the pipes as plain
FASTQ files. Bad input stops the feed (the aligner sees the end of its input) and is
raised after the aligner has finished, so the caller reports the file and record at fault
rather than a half-aligned run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from scatlas.errors import ScatlasError

Batch = list[tuple[bytes, bytes, bytes]]
# turns one batch per input file (and the number of records before it) into one text per pipe
Transform = Callable[[list[Batch], int], list[bytes]]
_QUEUED = 4


class ReaderGone(ScatlasError):
    """The program exited before opening (or while reading) its input pipe."""


def open_pipe_for_writing(path: Path, proc: subprocess.Popen) -> int:
    """Open a FIFO for writing once ``proc`` opens it for reading (not forever: when the
    process exits first, ReaderGone)."""
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            if proc.poll() is not None:
                raise ReaderGone(f"{proc.args[0]} exited before reading {path}") from None
            time.sleep(0.01)
            continue
        os.set_blocking(fd, True)
        return fd


class Feed:
    """Feeds ``batches`` (from :func:`scatlas.reads.fastq.read_mates`) through ``transform`` into
    the FIFOs ``pipes`` read by ``proc``. Use :meth:`start`, then :meth:`finish` after the
    process has exited; ``error`` holds what stopped the feed (None when it completed)."""

    def __init__(
        self,
        batches: Iterator[list[Batch]],
        pipes: list[Path],
        proc: subprocess.Popen,
        transform: Transform,
    ):
        self.batches = batches
        self.pipes = pipes
        self.proc = proc
        self.transform = transform
        self.queues: list[queue.Queue[bytes | None]] = [queue.Queue(_QUEUED) for _ in pipes]
        self.error: BaseException | None = None
        self.n_records = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._produce, daemon=True)] + [
            threading.Thread(target=self._write, args=(k,), daemon=True) for k in range(len(pipes))
        ]

    def start(self) -> Feed:
        for t in self._threads:
            t.start()
        return self

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._stop.set()

    def _produce(self) -> None:
        try:
            for batch in self.batches:
                if self._stop.is_set():
                    break
                texts = self.transform(batch, self.n_records)
                self.n_records += len(batch[0])
                for q, text in zip(self.queues, texts, strict=True):
                    q.put(text)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by finish()
            self._fail(exc)
        finally:
            with contextlib.suppress(Exception):
                self.batches.close()  # type: ignore[attr-defined]
            for q in self.queues:
                q.put(None)

    def _write(self, k: int) -> None:
        q = self.queues[k]
        fd = -1
        done = False
        try:
            fd = open_pipe_for_writing(self.pipes[k], self.proc)
            while (text := q.get()) is not None:
                if self._stop.is_set():
                    continue
                view = memoryview(text)
                while view:
                    view = view[os.write(fd, view) :]
            done = True
        except (BrokenPipeError, ReaderGone) as exc:
            self._fail(ReaderGone(f"{self.proc.args[0]} stopped reading {self.pipes[k]}: {exc}"))
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
        finally:
            if fd >= 0:
                os.close(fd)
            while not done and q.get() is not None:  # let the producer finish
                pass

    def finish(self, timeout: float | None = None) -> None:
        """Wait for the threads (after the process has exited)."""
        for t in self._threads:
            t.join(timeout)
