"""Datasets into the workspace: checked folders, one download job per request, progress.

Files land where pybis' ``ds.download(destination=folder)`` puts them,
``<folder>/<permId>/<path in the dataset>``, so code written against one
works with the other.  A file is written next to its place as
``<name>.<job>.part`` and renamed when complete; a failed download leaves no
partial file behind.
"""

from __future__ import annotations

import asyncio
import errno
import os
import posixpath
import shutil
import time
import uuid

from openbis_hub.errors import BadRequest, NotFound, OpenBISHubError
from openbis_hub.openbis import OpenBISClient

MAX_DATASETS = 50
MAX_JOBS = 100  # finished jobs kept for their status
MIN_FREE_BYTES = 1 << 20  # what a download leaves free at least


class DiskFull(OpenBISHubError):
    """The notebook directory has no room for the download."""

    status = 507


def safe_folder(root_dir: str, folder: object) -> tuple[str, str]:
    """``(absolute path, path relative to the root)`` of a folder inside the notebook directory.

    Refuses absolute paths, ``..``, hidden folders, NUL and anything whose real
    path (symbolic links resolved) lies outside ``root_dir``.
    """
    if folder is None:
        folder = ""
    if not isinstance(folder, str) or "\0" in folder or "\\" in folder or len(folder) > 1024:
        raise BadRequest("folder must be a path inside your notebook directory.")
    if folder.startswith("/") or folder.startswith("~"):
        raise BadRequest("folder must be relative to your notebook directory, not an absolute path.")
    parts = [p for p in folder.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise BadRequest("folder may not leave your notebook directory ('..').")
    if any(p.startswith(".") for p in parts):
        raise BadRequest("folder may not be a hidden folder.")
    root = os.path.realpath(root_dir)
    target = os.path.realpath(os.path.join(root, *parts))
    if target != root and not target.startswith(root + os.sep):
        raise BadRequest("folder lies outside your notebook directory.")
    return target, "/".join(parts)


def safe_file_path(path: object) -> str:
    """A file path inside a dataset as openBIS names it (``original/x.csv``), checked to stay inside."""
    if not isinstance(path, str) or not path or "\0" in path or "\\" in path or path.startswith("/"):
        raise BadRequest("A dataset file path must be relative, e.g. original/data.csv.")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BadRequest(f"Unsafe dataset file path {path[:100]!r}.")
    return path


def read_request(body: dict) -> list[dict]:
    """``datasets``: permIds or ``{"permId", "files": [...]}``; returns ``[{"permId", "files" or None}]``."""
    from .explorer import check_id

    datasets = body.get("datasets")
    if isinstance(datasets, str):
        datasets = [datasets]
    if not isinstance(datasets, list) or not datasets:
        raise BadRequest('Send {"datasets": ["<permId>", ...], "folder": "<folder>"}.')
    if len(datasets) > MAX_DATASETS:
        raise BadRequest(f"At most {MAX_DATASETS} datasets per download.")
    wanted = []
    for item in datasets:
        if isinstance(item, str):
            item = {"permId": item}
        if not isinstance(item, dict):
            raise BadRequest("Each dataset is a permId or {permId, files}.")
        perm_id = check_id(item.get("permId"), "permId")
        files = item.get("files")
        if files is not None:
            if not isinstance(files, list) or not files:
                raise BadRequest("files must be a non-empty list of file paths of the dataset.")
            files = [safe_file_path(f) for f in files]
        wanted.append({"permId": perm_id, "files": files})
    return wanted


class DownloadJob:
    """One download request: its datasets, where they go, how far it got."""

    def __init__(self, folder_abs: str, folder: str, datasets: list[dict]):
        self.id = uuid.uuid4().hex
        self.folder_abs = folder_abs
        self.folder = folder
        self.datasets = datasets  # [{"permId", "files": [{"path", "size"}]}]
        self.state = "running"
        self.bytes_total = sum(f["size"] for d in datasets for f in d["files"])
        self.bytes_done = 0
        self.files_done = 0
        self.files_total = sum(len(d["files"]) for d in datasets)
        self.error: dict | None = None
        self.results: list[dict] = []
        self.started = time.time()
        self.finished: float | None = None
        self.task: asyncio.Task | None = None

    def status(self) -> dict:
        return {
            "id": self.id,
            "state": self.state,
            "folder": self.folder,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "files_done": self.files_done,
            "files_total": self.files_total,
            "datasets": self.results,
            "error": self.error,
            "seconds": round((self.finished or time.time()) - self.started, 3),
        }


async def plan(client: OpenBISClient, token: str, root_dir: str, body: dict) -> DownloadJob:
    """Check everything that can be checked before the first byte: folder, datasets, files, free space."""
    from .explorer import V3

    folder_abs, folder = safe_folder(root_dir, body.get("folder"))
    wanted = read_request(body)
    found = await client.get(
        token,
        "DataSets",
        [{"@type": V3["dataset"][3], "permId": w["permId"]} for w in wanted],
        {"@type": V3["dataset"][2]},
    )
    missing = [w["permId"] for w in wanted if w["permId"] not in found]
    if missing:
        raise NotFound(
            f"openBIS has no dataset {', '.join(missing)} (any more): it was deleted, or you no longer have access.",
        )
    datasets = []
    for w in wanted:
        listing = [f for f in await client.dataset_files(token, w["permId"]) if not f["directory"]]
        by_path = {f["path"]: f for f in listing}
        if w["files"] is None:
            chosen = listing
        else:
            unknown = [p for p in w["files"] if p not in by_path]
            if unknown:
                raise NotFound(f"Dataset {w['permId']} has no file {', '.join(unknown[:5])}.")
            chosen = [by_path[p] for p in w["files"]]
        for f in chosen:
            safe_file_path(f["path"])  # openBIS' paths too
        datasets.append({"permId": w["permId"], "files": chosen})
    job = DownloadJob(folder_abs, folder, datasets)
    check_space(_existing_parent(folder_abs), job.bytes_total)
    return job


def _existing_parent(path: str) -> str:
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_space(path: str, needed: int) -> None:
    free = shutil.disk_usage(path).free
    if needed + MIN_FREE_BYTES > free:
        raise DiskFull(
            f"Not enough space in your notebook directory: the download needs {_size(needed)}, "
            f"{_size(max(free - MIN_FREE_BYTES, 0))} are free. Delete files or choose fewer files."
        )


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


async def run(client: OpenBISClient, token: str, job: DownloadJob) -> None:
    """Download the job's files; on failure record the error and remove what was half written."""
    written: list[str] = []
    try:
        for d in job.datasets:
            paths = []
            for f in d["files"]:
                target = os.path.join(job.folder_abs, d["permId"], *f["path"].split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                part = f"{target}.{job.id[:8]}.part"  # two downloads of one dataset never share a file
                with open(part, "wb") as out:
                    written.append(part)

                    def write(chunk: bytes, out=out) -> None:
                        out.write(chunk)
                        job.bytes_done += len(chunk)

                    await client.download_file(token, d["permId"], f["path"], write)
                os.replace(part, target)
                written.remove(part)
                job.files_done += 1
                paths.append(f["path"])
            where = posixpath.join(job.folder, d["permId"]) if job.folder else d["permId"]
            job.results.append({"permId": d["permId"], "path": where, "files": paths})
        job.state = "done"
    except OSError as e:
        job.state = "error"
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            job.error = {"status": 507, "message": "Your notebook directory is full: the download stopped and "
                         "its partial files were removed. Delete files or choose fewer files."}  # fmt: skip
        else:
            job.error = {"status": 500, "message": f"Could not write the download ({e.strerror or type(e).__name__})."}
    except OpenBISHubError as e:
        job.state = "error"
        job.error = {"status": e.status, "message": e.message}
    except asyncio.CancelledError:
        job.state = "error"
        job.error = {"status": 499, "message": "The download was cancelled."}
        raise
    finally:
        for part in written:
            try:
                os.unlink(part)
            except OSError:
                pass
        job.finished = time.time()


class Downloads:
    """The jobs of one server: started, polled, the finished ones forgotten after a while."""

    def __init__(self):
        self.jobs: dict[str, DownloadJob] = {}

    def start(self, client: OpenBISClient, token: str, job: DownloadJob) -> DownloadJob:
        finished = [j for j in self.jobs.values() if j.state != "running"]
        for old in sorted(finished, key=lambda j: j.started)[: max(0, len(self.jobs) - MAX_JOBS)]:
            del self.jobs[old.id]
        self.jobs[job.id] = job
        job.task = asyncio.ensure_future(run(client, token, job))
        return job

    def get(self, job_id: str) -> DownloadJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound("No such download (the server may have restarted).")
        return job
