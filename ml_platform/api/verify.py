"""/api/etl/jobs/<id>/verify/: Verify (or Repair) a job through the API; GET answers the newest verification."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from ninja import Router

from ml_platform import selectors
from ml_platform.api.schemas import VerifyIn
from ml_platform.models import JobRun
from ml_platform.runs import verify
from ml_platform.services import verification

# A request without a body (ninja passes this default): every field as the schema defaults it.
NO_BODY = VerifyIn()

router = Router(tags=["verify"])


@router.post("/jobs/{int:job_id}/verify/", url_name="api_job_verify",
             summary="Verify the job's BigQuery rows against its source ({\"repair\": true}: repair the differing "
                     "key ranges); 202 queued, or 200 with the result when {\"wait\": true}; 409 while a run is active")
def verify_job(request: HttpRequest, job_id: int, payload: VerifyIn = NO_BODY) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    kind = JobRun.Kind.REPAIR if payload.repair else JobRun.Kind.VERIFY
    # A run active, nothing to repair: 409 (errors.CONFLICTS).
    run = (verify.run_sync if payload.wait else verify.enqueue)(job=job, kind=kind, actor=request.user)
    return JsonResponse({"status": "ok", "verification": verification.as_json(run)},
                        status=200 if payload.wait else 202)


@router.get("/jobs/{int:job_id}/verify/", url_name="api_job_verify", summary="The job's newest verification")
def last_verification(request: HttpRequest, job_id: int) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    run = JobRun.objects.filter(job=job, kind__in=verification.VERIFY_KINDS).order_by("-created_at", "-id").first()
    return JsonResponse({"status": "ok", "verification": verification.as_json(run) if run is not None else None})
