"""Verify / Repair on the pages: the job page's verification panel (with its picture) and the actions."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from ml_platform import selectors
from ml_platform.etl.verify import VerifyResult
from ml_platform.models import JobRun
from ml_platform.runs import records, verify
from ml_platform.services import verification

STRIP_WIDTH, STRIP_HEIGHT = 640, 28
POLL_ACTIVE_S = 1


@dataclass(frozen=True)
class Bar:
    x: float
    w: float
    differing: int
    title: str


def strip(result: VerifyResult | None) -> list[Bar]:
    """The key range as bars, one per top-level range, coloured where rows differ."""
    if result is None or not result.segments or result.key_min is None or result.key_max is None:
        return []
    lo, span = result.key_min, max(1, result.key_max + 1 - result.key_min)
    bars = []
    for s in result.segments:
        start, end = max(s.lo, lo), min(s.hi, result.key_max + 1)
        x = (start - lo) * STRIP_WIDTH / span
        w = max(1.0, (end - start) * STRIP_WIDTH / span)
        where = f"{s.source_rows:,} source rows" if result.hashed else f"keys {start:,}–{end - 1:,}: {s.source_rows:,} source rows"
        title = f"{where}, {s.dest_rows:,} BigQuery rows, {s.differing:,} differing"
        bars.append(Bar(round(x, 2), round(w, 2), s.differing, title))
    return bars


def panel_context(job) -> dict:
    last = verification.last_verification(job=job)
    result = verification.result_of(last)
    latest = JobRun.objects.filter(job=job, kind__in=verification.VERIFY_KINDS).order_by("-created_at", "-id").first()
    active = latest if latest is not None and latest.is_active else None
    failed = latest if latest is not None and latest.status == JobRun.Status.FAILED else None
    return {"job": job, "last": last, "result": result, "active": active, "failed": failed,
            "bars": strip(result), "strip_w": STRIP_WIDTH, "strip_h": STRIP_HEIGHT,
            "repairable": verification.repairable(result) and active is None,
            "poll_s": POLL_ACTIVE_S if active else 0}


@require_GET
def job_verification(request: HttpRequest, job_id: int) -> TemplateResponse:
    """The verification panel (the job page loads it, and it polls itself while a verification runs)."""
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    return TemplateResponse(request, "verify/panel.html", panel_context(job))


def _back(request: HttpRequest, job_id: int) -> HttpResponse:
    url = reverse("job_detail", args=[job_id]) + "#verification"
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@require_POST
def job_verify(request: HttpRequest, job_id: int) -> HttpResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    try:
        verify.enqueue(job=job, kind=JobRun.Kind.VERIFY, actor=request.user)
    except records.RunAlreadyActive as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Verification of {job.name!r} queued.")
    return _back(request, job_id)


@require_POST
def job_repair(request: HttpRequest, job_id: int) -> HttpResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    try:
        verify.enqueue(job=job, kind=JobRun.Kind.REPAIR, actor=request.user)
    except (records.RunAlreadyActive, verification.NothingToRepair) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Repair of {job.name!r} queued: it reloads the differing key ranges, then "
                                  "verifies again.")
    return _back(request, job_id)


@require_POST
def job_verify_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    if verification.cancel(job=job, actor=request.user):
        messages.success(request, "Verification cancelled.")
    else:
        messages.error(request, "No verification or repair is in progress.")
    return _back(request, job_id)


@require_POST
def job_verify_settings(request: HttpRequest, job_id: int) -> HttpResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    enabled = request.POST.get("verify_after_run") == "on"
    verification.set_verify_after_run(job=job, enabled=enabled, actor=request.user)
    messages.success(request, "Every successful run is now verified." if enabled
                     else "Runs are no longer verified automatically.")
    return _back(request, job_id)
