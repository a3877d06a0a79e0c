"""Background jobs: work that must not run inside the web server (an upload's ingest), each in its own
process, with its state in files any process can read.

A job lives in ``<LIFTBOARD_HOME>/jobs/<job_id>/``: ``status.json`` (its state — ``queued``, ``running``,
``done`` or ``failed`` — with every change of state and when, the stage and progress of the work, who
asked for it, the result summary or the error), ``job.log`` (the process's output) and, until the
work is over, ``input/`` (the uploaded file). Every write of ``status.json`` goes to a temporary file
that replaces it (``os.replace``): a reader sees the old state or the new one, never half of one.

`submit_ingest` writes the upload to disk from an iterable of chunks (the server never holds the whole
file), records the job as queued and starts ``python -m liftboard.jobs run JOB_ID`` in a new session;
that process ingests the file through `datastore.ingest.ingest_files` (the CLI's code path), reports
its stages in ``status.json`` and removes the uploaded file once the run is over (rows that were
quarantined are kept, with their raw values and reasons, in the ingest's quarantine). The server keeps
a thread that waits for the process, so that a job whose process died without a result (killed, out of
memory) is recorded as failed; `read_job` does the same for a job whose process is gone after a
restart of the server, or that was never started.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from core.config import Settings

JobState = Literal["queued", "running", "done", "failed"]
FINAL_STATES: tuple[JobState, ...] = ("done", "failed")
STATUS_FILE = "status.json"
LOG_FILE = "job.log"
INPUT_DIR = "input"
JOB_ID = re.compile(r"^\d{8}T\d{6}-\d{6}-[0-9a-f]{8}$")
"""A job's id: when it was made (UTC, to the microsecond: ids sort by age) and a random part."""

NEVER_STARTED = timedelta(minutes=5)
"""A job still queued this long after its input was written was never started (the server stopped)."""

# Share of the bar each ingest stage ends at (validation reads and checks the file: most of the time).
_STAGE_SPAN = {
    "starting": (0.0, 0.02),
    "validating": (0.02, 0.8),
    "staging": (0.8, 0.9),
    "committing": (0.9, 1.0),
}


class JobNotFound(LookupError):
    """No job with this id in this Liftboard home."""


@dataclass(frozen=True)
class Job:
    """One job as its ``status.json`` describes it."""

    job_id: str
    kind: str
    user: str
    state: JobState
    created_at: str
    started_at: str | None
    finished_at: str | None
    pid: int | None
    file: str
    bytes: int
    table: str | None
    stage: str
    fraction: float
    history: tuple[tuple[str, str], ...]  # (state, when) in order
    result: Mapping[str, Any] | None
    error: str | None

    @property
    def active(self) -> bool:
        """Queued or running."""
        return self.state not in FINAL_STATES

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> Job:
        progress = status.get("progress") or {}
        return cls(
            job_id=status["job_id"],
            kind=status["kind"],
            user=status["user"],
            state=status["state"],
            created_at=status["created_at"],
            started_at=status.get("started_at"),
            finished_at=status.get("finished_at"),
            pid=status.get("pid"),
            file=status.get("file", ""),
            bytes=int(status.get("bytes", 0)),
            table=status.get("table"),
            stage=str(progress.get("stage", "")),
            fraction=float(progress.get("fraction", 0.0)),
            history=tuple((item["state"], item["at"]) for item in status.get("history", [])),
            result=status.get("result"),
            error=status.get("error"),
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def jobs_root(settings: Settings) -> Path:
    """Where the jobs of an installation live."""
    return settings.home / "jobs"


def job_dir(settings: Settings, job_id: str) -> Path:
    """The folder of job ``job_id`` (an id of another shape is refused: no path reaches outside)."""
    if not JOB_ID.match(job_id):
        raise JobNotFound(f"no job {job_id!r}")
    return jobs_root(settings) / job_id


def _read_status(folder: Path) -> dict[str, Any]:
    try:
        status: dict[str, Any] = json.loads((folder / STATUS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JobNotFound(f"no job {folder.name!r}") from None
    return status


def _write_status(folder: Path, status: Mapping[str, Any]) -> None:
    """Replace ``status.json`` at once: written to a temporary file, flushed, then renamed over it."""
    temporary = folder / f".{STATUS_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(temporary, "w", encoding="utf-8") as out:
        json.dump(status, out, indent=1, default=str)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, folder / STATUS_FILE)


def _update(folder: Path, **changes: Any) -> dict[str, Any]:
    """Apply ``changes`` to the job's status (a new ``state`` is appended to its history)."""
    status = _read_status(folder)
    if "state" in changes and changes["state"] != status["state"]:
        status["history"] = [*status.get("history", []), {"state": changes["state"], "at": _now()}]
    status.update(changes)
    _write_status(folder, status)
    return status


def _safe_name(name: str) -> str:
    """The base name of an uploaded file, without directories or characters a path should not hold."""
    base = Path(name.replace("\\", "/")).name
    cleaned = re.sub(r"[^\w.\-]+", "_", base).strip("._")
    return cleaned or "upload"


def create_ingest_job(
    settings: Settings, user: str, name: str, chunks: Iterable[bytes], table: str | None = None
) -> Job:
    """Write ``chunks`` (an uploaded file, in order) to a new job's input and record the job as queued.

    The file keeps the uploaded name (without directories), so that the ingest can infer its table from
    it as it does for ``liftboard ingest FILE``.
    """
    job_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S-%f}-{uuid.uuid4().hex[:8]}"
    folder = job_dir(settings, job_id)
    (folder / INPUT_DIR).mkdir(parents=True)
    target = folder / INPUT_DIR / _safe_name(name)
    size = 0
    try:
        with open(target, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # no job without its whole input
        raise
    created = _now()
    status = {
        "job_id": job_id,
        "kind": "ingest",
        "user": user,
        "state": "queued",
        "created_at": created,
        "started_at": None,
        "finished_at": None,
        "pid": None,
        "file": Path(name.replace("\\", "/")).name,
        "bytes": size,
        "table": table,
        "input": f"{INPUT_DIR}/{target.name}",
        "progress": {"stage": "queued", "done": 0, "total": 0, "fraction": 0.0},
        "history": [{"state": "queued", "at": created}],
        "result": None,
        "error": None,
    }
    _write_status(folder, status)
    return Job.from_status(status)


def start(settings: Settings, job_id: str) -> int:
    """Start the process that runs job ``job_id`` (a new session: it outlives a restart of the server)
    and a thread that waits for it; returns its process id."""
    folder = job_dir(settings, job_id)
    env = {
        **os.environ,
        "LIFTBOARD_HOME": str(settings.home),
        "LIFTBOARD_DATABASE_URL": settings.database_url,
    }
    with open(folder / LOG_FILE, "ab") as log:
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "liftboard.jobs", "run", job_id],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            _finish_failed(folder, f"could not start the job's process: {exc}")
            raise
    _WAITED.add(job_id)
    threading.Thread(target=_wait_for, args=(folder, process), name=f"job-{job_id}", daemon=True).start()
    return process.pid


_WAITED: set[str] = set()
"""Jobs whose process a thread of this process waits for: that thread records how the process ended (with
its exit code), so a reader never declares them lost in the moment between the reap and the record."""


def submit_ingest(
    settings: Settings, user: str, name: str, chunks: Iterable[bytes], table: str | None = None
) -> Job:
    """`create_ingest_job` then `start`: the upload is on disk and its ingest runs in its own process."""
    job = create_ingest_job(settings, user, name, chunks, table)
    start(settings, job.job_id)
    return read_job(settings, job.job_id)


def _wait_for(folder: Path, process: subprocess.Popen[bytes]) -> None:
    """Reap the job's process; if it ended without recording a result, record the job as failed."""
    code = process.wait()
    try:
        with contextlib.suppress(JobNotFound):
            if _read_status(folder)["state"] not in FINAL_STATES:
                _finish_failed(folder, f"the job's process ended with exit code {code} before finishing")
    finally:
        _WAITED.discard(folder.name)


def _finish_failed(folder: Path, error: str) -> None:
    _remove_input(folder)
    _update(folder, state="failed", finished_at=_now(), error=error)


def _remove_input(folder: Path) -> None:
    shutil.rmtree(folder / INPUT_DIR, ignore_errors=True)


def _process_alive(pid: int, job_id: str) -> bool:
    """Whether process ``pid`` is job ``job_id``'s, still running or ended and not yet reaped (its waiting
    thread is about to record the outcome) — not a later process given the same id."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: the id alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    if stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]:
        return True
    return b"liftboard.jobs" in command and job_id.encode() in command


def _lost(job: Job) -> str | None:
    """Why ``job`` can no longer end by itself, or ``None``: its process is gone (killed while the server
    that started it was down), or it was never started."""
    if job.job_id in _WAITED:  # this process's waiting thread records the outcome
        return None
    if job.state == "running" and job.pid is not None and not _process_alive(job.pid, job.job_id):
        return "the job's process ended before finishing"
    if job.state == "queued" and datetime.now(UTC) - datetime.fromisoformat(job.created_at) > NEVER_STARTED:
        return "the job's process never started"
    return None


def read_job(settings: Settings, job_id: str) -> Job:
    """Job ``job_id`` as its status says; one that can no longer end by itself (`_lost`) is recorded as
    failed, its input removed."""
    folder = job_dir(settings, job_id)
    job = Job.from_status(_read_status(folder))
    if _lost(job) is not None:
        job = Job.from_status(_read_status(folder))  # it may have moved on meanwhile
        reason = _lost(job)
        if reason is not None:
            _finish_failed(folder, reason)
            job = Job.from_status(_read_status(folder))
    return job


def list_jobs(settings: Settings, user: str | None = None, limit: int = 50) -> list[Job]:
    """The newest jobs first (at most ``limit``); only ``user``'s when given."""
    root = jobs_root(settings)
    if not root.is_dir():
        return []
    found: list[Job] = []
    for folder in sorted(root.iterdir(), reverse=True):
        if len(found) >= limit:
            break
        if not JOB_ID.match(folder.name):
            continue
        try:
            job = read_job(settings, folder.name)
        except (JobNotFound, json.JSONDecodeError, KeyError):
            continue
        if user is None or job.user == user:
            found.append(job)
    return found


# --------------------------------------------------------------------------------------------------------
# In the job's process


def stage_fraction(stage: str, done: int, total: int) -> float:
    """How far along the whole ingest is (0–1) at ``done`` of ``total`` of ``stage``."""
    low, high = _STAGE_SPAN.get(stage, (0.0, 0.0))
    return low + (high - low) * (done / total if total else 0.0)


def _result_summary(report: Any) -> dict[str, Any]:
    return {
        "run_id": report.run_id,
        "status": report.status,
        "rows_read": report.rows_read,
        "rows_loaded": report.rows_loaded,
        "rows_updated": report.rows_updated,
        "rows_quarantined": report.rows_quarantined,
        "rows_duplicate": report.rows_duplicate,
        "quarantine_paths": list(report.quarantine_paths),
        "aliases_mapped": [mapped.text() for mapped in report.aliases_mapped],
    }


def run_job(settings: Settings, job_id: str) -> Job:
    """Run queued job ``job_id`` here (the job's process): ingest its file, record the result or the error,
    remove the file."""
    from datastore.ingest import IngestError, ingest_files

    folder = job_dir(settings, job_id)
    if _read_status(folder)["state"] != "queued":
        raise RuntimeError(f"job {job_id} was already started")
    status = _update(
        folder,
        state="running",
        pid=os.getpid(),
        started_at=_now(),
        progress={"stage": "starting", "done": 0, "total": 1, "fraction": 0.0},
    )

    def progress(stage: str, done: int, total: int) -> None:
        fraction = stage_fraction(stage, done, total)
        _update(folder, progress={"stage": stage, "done": done, "total": total, "fraction": fraction})

    try:
        report = ingest_files(
            [folder / status["input"]],
            settings,
            table=status["table"],
            source=f"upload:{status['file']}",
            user=status["user"],
            progress=progress,
        )
    except Exception as exc:  # noqa: BLE001 - every failure is the job's result, shown to its user
        message = str(exc) if isinstance(exc, IngestError) else f"{type(exc).__name__}: {exc}"
        _finish_failed(folder, message)
    else:
        _remove_input(folder)
        _update(
            folder,
            state="done",
            finished_at=_now(),
            progress={"stage": "done", "done": 1, "total": 1, "fraction": 1.0},
            result=_result_summary(report),
        )
    return read_job(settings, job_id)


def main(argv: list[str] | None = None) -> int:
    """``python -m liftboard.jobs run JOB_ID``: run one job; exit code 0 when it is done, 1 when it failed."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "run":
        print("usage: python -m liftboard.jobs run JOB_ID", file=sys.stderr)
        return 2
    job = run_job(Settings.from_env(), args[1])
    if job.error:
        print(f"job {job.job_id} failed: {job.error}", file=sys.stderr)
    return 0 if job.state == "done" else 1


if __name__ == "__main__":
    raise SystemExit(main())
