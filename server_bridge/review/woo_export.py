"""The Woo publication package export: ``POST /api/v1/woo/requests/{id}/export`` (the ZIP,
streamed from a temporary file in chunks) and, in the review UI, a background job started
with the button "Publicatiepakket maken" on the request's page, a status page and an
authenticated download. Archivists only; every export is in the access log with the
request's reference (:func:`server_bridge.woo.export.export_case`).

Jobs are kept in memory (the finished ZIPs in ``DATA/woo-exports``, 0700) and belong to the
archivist who started them; a bridge restart forgets them and removes the files."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from server_bridge.review.api import archivist_reader
from server_bridge.review.service import REVIEW, Reader
from server_bridge.review.ui import BASE, _check_csrf, _reader, _redirect, _render, _session
from server_bridge.web.api_errors import ApiError
from server_bridge.web.keys import SETTINGS
from server_bridge.woo.export import export_case, zip_name
from server_bridge.woo.package import ZIP_MEDIA_TYPE

log = logging.getLogger(__name__)

CHUNK = 1 << 16
EXPORT_DIR = "woo-exports"
DOCUMENTS_HEADER = "X-Rijkschat-Documents"
MAX_JOBS = 50


@dataclass
class ExportJob:
    id: str
    request_id: str
    owner: str
    state: str = "bezig"  # bezig | klaar | mislukt
    reference: str = ""
    documents: int = 0
    done: int = 0
    error: str | None = None
    path: Path | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ExportJobs:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.jobs: dict[str, ExportJob] = {}

    def workdir(self) -> Path:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.directory

    def add(self, job: ExportJob) -> None:
        while len(self.jobs) >= MAX_JOBS:
            oldest = next((j for j in self.jobs.values() if j.state != "bezig"), None)
            if oldest is None:
                raise ApiError(429, "M_LIMIT_EXCEEDED", "too many exports are running")
            self.drop(oldest.id)
        self.jobs[job.id] = job

    def drop(self, job_id: str) -> None:
        job = self.jobs.pop(job_id, None)
        if job is not None and job.path is not None:
            job.path.unlink(missing_ok=True)

    def get(self, job_id: str, user_id: str) -> ExportJob:
        job = self.jobs.get(job_id)
        if job is None or job.owner != user_id:
            raise ApiError(404, "M_NOT_FOUND", "geen exporttaak met dit nummer")
        return job

    async def close(self) -> None:
        running = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await asyncio.to_thread(shutil.rmtree, self.directory, ignore_errors=True)


EXPORT_JOBS = web.AppKey("woo_export_jobs", ExportJobs)


def _data_dir(request: web.Request) -> Path:
    return Path(request.app[SETTINGS].data_dir)


async def _write_package(request: web.Request, reader: Reader, request_id: str) -> tuple[Path,
                                                                                           str,
                                                                                           int]:
    directory = request.app[EXPORT_JOBS].workdir()
    fd, name = tempfile.mkstemp(prefix="export-", suffix=".zip", dir=directory)
    os.close(fd)
    out = Path(name)
    try:
        case, result = await export_case(
            request.app[REVIEW], reader, request_id, _data_dir(request), out
        )
    except BaseException:
        await asyncio.to_thread(out.unlink, missing_ok=True)
        raise
    return out, case.request.reference, result.documents


async def stream_file(request: web.Request, path: Path, name: str,
                      documents: int) -> web.StreamResponse:
    size = (await asyncio.to_thread(path.stat)).st_size
    response = web.StreamResponse(
        headers={
            "Content-Type": ZIP_MEDIA_TYPE,
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(size),
            DOCUMENTS_HEADER: str(documents),
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    with path.open("rb") as fh:
        while chunk := await asyncio.to_thread(fh.read, CHUNK):
            await response.write(chunk)
    await response.write_eof()
    return response


async def post_export(request: web.Request) -> web.StreamResponse:
    reader = await archivist_reader(request)
    path, reference, documents = await _write_package(
        request, reader, request.match_info["request_id"]
    )
    try:
        return await stream_file(request, path, zip_name(reference), documents)
    finally:
        path.unlink(missing_ok=True)


# ---- the UI's background job -----------------------------------------------------------
def url_for_job(job_id: str) -> str:
    return f"{BASE}/woo-export/{quote(job_id, safe='')}"


async def _run(request: web.Request, job: ExportJob, reader: Reader) -> None:
    jobs = request.app[EXPORT_JOBS]
    out = jobs.workdir() / f"{job.id}.zip"

    def progress(count: int) -> None:
        job.done = count

    try:
        case, result = await export_case(
            request.app[REVIEW], reader, job.request_id, _data_dir(request), out, progress
        )
    except ApiError as exc:
        job.state, job.error = "mislukt", exc.message
    except Exception:
        log.exception("Woo export job %s failed", job.id)
        job.state, job.error = "mislukt", "het pakket kon niet worden gemaakt (zie het log)"
    else:
        job.path, job.reference, job.documents = out, case.request.reference, result.documents
        job.state = "klaar"
    if job.state != "klaar":
        out.unlink(missing_ok=True)


async def start_job(request: web.Request) -> web.Response:
    session = await _session(request)
    await _check_csrf(request, session)
    request_id = request.match_info["request_id"]
    reader = _reader(request, session)
    # the request must exist (404 otherwise) before a job is made
    from server_bridge.woo.service import WooService

    found = await WooService(request.app[REVIEW]).request(reader, request_id)
    job = ExportJob(secrets.token_urlsafe(16), found.id, session.user_id,
                    reference=found.reference)
    request.app[EXPORT_JOBS].add(job)
    job.task = asyncio.create_task(_run(request, job, reader))
    return _redirect(url_for_job(job.id))


async def job_page(request: web.Request) -> web.Response:
    session = await _session(request)
    job = request.app[EXPORT_JOBS].get(request.match_info["job_id"], session.user_id)
    return _render(request, "woo_export_job.html",
                   {"job": job, "download": url_for_job(job.id) + "/download",
                    "back": f"{BASE}/woo/{quote(job.request_id, safe='')}"}, session)


async def job_download(request: web.Request) -> web.StreamResponse:
    session = await _session(request)
    job = request.app[EXPORT_JOBS].get(request.match_info["job_id"], session.user_id)
    if job.state != "klaar" or job.path is None:
        raise ApiError(409, "M_NOT_READY", "het pakket is nog niet klaar")
    return await stream_file(request, job.path, zip_name(job.reference), job.documents)


async def _jobs_ctx(app: web.Application) -> object:
    app[EXPORT_JOBS] = ExportJobs(Path(app[SETTINGS].data_dir) / EXPORT_DIR)
    yield
    await app[EXPORT_JOBS].close()


def setup_woo_export(app: web.Application) -> None:
    """The export endpoint, the job pages and their job store."""
    app.cleanup_ctx.append(_jobs_ctx)  # type: ignore[arg-type]
    r = app.router
    r.add_post("/api/v1/woo/requests/{request_id}/export", post_export)
    r.add_post(BASE + "/woo/{request_id}/publicatiepakket", start_job)
    r.add_get(BASE + "/woo-export/{job_id}", job_page)
    r.add_get(BASE + "/woo-export/{job_id}/download", job_download)
