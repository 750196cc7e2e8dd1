"""HTML pages outside the wizard: jobs and connections."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from ml_platform import selectors
from ml_platform.etl import sources as cm
from ml_platform.models import Connection
from ml_platform.runs import lifecycle, records
from ml_platform.services import connections, jobs, sources
from ml_platform.web import charts
from ml_platform.web.forms import ConnectionForm

# The jobs list and the job page poll their live region: fast while a run is queued or running (its progress
# moves), slowly otherwise so that a run the scheduler starts still appears without a reload.
POLL_ACTIVE_S = 2
POLL_IDLE_S = 15


def poll_every(active: bool) -> int:
    return getattr(settings, "JOBS_POLL_ACTIVE_S", POLL_ACTIVE_S) if active else \
        getattr(settings, "JOBS_POLL_IDLE_S", POLL_IDLE_S)


def job_rows(listed) -> list[dict]:
    """Each job with its newest run, as the list shows them."""
    shown = list(listed)
    last = selectors.last_runs_by_job(job_ids=[j.pk for j in shown])
    return [{"job": j, "run": last.get(j.pk)} for j in shown]


@require_GET
def job_list(request: HttpRequest) -> TemplateResponse:
    """The list; htmx polls its `job-list` region (which never reads the flash messages, so none are lost)."""
    template = "ml_platform/jobs.html#job-list" if request.htmx else "ml_platform/jobs.html"
    return TemplateResponse(request, template, jobs_context(request))


def jobs_context(request: HttpRequest) -> dict:
    rows = job_rows(selectors.jobs_in(scope=request.scope))
    active = any(r["run"] and r["run"].is_active for r in rows)
    return {"rows": rows, "nav": "jobs", "poll_s": poll_every(active)}


@require_GET
def job_row(request: HttpRequest, job_id: int) -> HttpResponse:
    """One row alone (the list region is what polls)."""
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    row = job_rows([job])[0]
    return TemplateResponse(request, "ml_platform/jobs.html#job-row", {"row": row})


def job_action_done(request: HttpRequest, job_id: int, message: str, *, level: int = messages.SUCCESS,
                    status: int = 200) -> HttpResponse:
    """After Run Now / Pause / Resume: from the job page back to it; from the list, its row (htmx) with the
    message swapped out of band into the list's message region, where the polling never replaces it."""
    messages.add_message(request, level, message)
    if request.POST.get("next") == "detail":
        return redirect("job_detail", job_id)
    if request.htmx:
        # The whole list, so that it polls fast as soon as a run is queued.
        return TemplateResponse(request, "ml_platform/jobs.html#job-action-done", jobs_context(request),
                                status=status)
    return redirect("jobs")


def _job_button(service: Callable[..., object], done: str) -> Callable[[HttpRequest, int], HttpResponse]:
    """The view of a job button (Run Now, Pause, Resume): `service` on the caller's job, then `job_action_done` with
    `done` (formatted with the job's `name`), or the refusal while a run is active (409)."""

    @require_POST
    def view(request: HttpRequest, job_id: int) -> HttpResponse:
        job = selectors.job_in(scope=request.scope, job_id=job_id)
        try:
            service(job=job, actor=request.user)
        except records.RunAlreadyActive as exc:
            return job_action_done(request, job_id, str(exc), level=messages.ERROR, status=409)
        return job_action_done(request, job_id, done.format(name=job.name))

    return view


job_run_now = _job_button(lifecycle.run_enqueue, "Run of {name!r} queued.")
job_pause = _job_button(jobs.job_pause, "Paused {name!r}: scheduled runs stop until you resume it.")
job_resume = _job_button(jobs.job_resume, "Resumed {name!r}.")


@require_http_methods(["GET", "POST"])
def job_delete(request: HttpRequest, job_id: int) -> HttpResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    if request.method == "GET":
        return TemplateResponse(request, "ml_platform/job_delete.html", {"job": job, "nav": "jobs"})
    try:
        jobs.job_delete(job=job, actor=request.user)
    except jobs.JobBusy as exc:
        messages.error(request, str(exc))
        return redirect("jobs")
    messages.success(request, f"Deleted job {job.name!r}. The BigQuery table {job.destination_display} and its "
                              "rows were kept.")
    if request.htmx:
        return HttpResponseClientRedirect(reverse("jobs"))
    return redirect("jobs")


@require_GET
def job_detail(request: HttpRequest, job_id: int) -> TemplateResponse:
    """The job page; htmx polls its `job-live` region (status, actions, chart, run history)."""
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    runs = selectors.runs_of(job=job)
    run = runs[0] if runs else None
    context = {"job": job, "runs": runs, "run": run, "chart": charts.runs_chart(list(reversed(runs[:30]))),
               "poll_s": poll_every(bool(run and run.is_active)), "nav": "jobs"}
    if request.htmx:
        return TemplateResponse(request, "ml_platform/job_detail.html#job-live", context)
    context["trail"] = audit_rows(selectors.audit_trail_of(scope=request.scope, target=job))
    return TemplateResponse(request, "ml_platform/job_detail.html", context)


def _shown(value) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_shown(v)}" for k, v in value.items())
    return str(value)


def audit_rows(events) -> list[dict]:
    """Audit events as the page shows them: each change as `field: before → after` (a new value alone)."""
    return [{"event": e, "changes": [{"field": field, "created": (change or {}).get("before") is None,
                                      "before": _shown((change or {}).get("before")),
                                      "after": _shown((change or {}).get("after"))}
                                     for field, change in (e.changes or {}).items()]}
            for e in events]


# --------------------------------------------------------------------------- connections


@require_GET
def connection_list(request: HttpRequest) -> TemplateResponse:
    return TemplateResponse(
        request,
        "ml_platform/connections.html",
        {"connections": selectors.connections_in(scope=request.scope), "nav": "connections"},
    )


def _connection_form(request: HttpRequest, connection: Connection | None) -> HttpResponse:
    """The connection form: a new connection (`connection` None) or an existing one; saved when valid."""
    form = ConnectionForm(request.POST or None, instance=connection, workspace=request.scope.workspace)
    if request.method == "POST" and form.is_valid():
        connection = connections.connection_save(connection=connection, workspace=request.scope.workspace,
                                                 actor=request.user, data=form.cleaned_data)
        messages.success(request, f"Saved connection {connection.name!r}.")
        return redirect("connections")
    return TemplateResponse(
        request, "ml_platform/connection_form.html", {"form": form, "connection": connection, "nav": "connections"},
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
def connection_create(request: HttpRequest) -> HttpResponse:
    return _connection_form(request, None)


@require_http_methods(["GET", "POST"])
def connection_edit(request: HttpRequest, connection_id: int) -> HttpResponse:
    return _connection_form(request, selectors.connection_in(scope=request.scope, connection_id=connection_id))


@require_POST
def connection_delete(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    try:
        connections.connection_delete(connection=connection, actor=request.user)
    except connections.ConnectionInUse as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Deleted connection {connection.name!r}.")
    if request.htmx:
        return TemplateResponse(request, "ml_platform/connections.html#connection-list",
                                {"connections": selectors.connections_in(scope=request.scope)})
    return redirect("connections")


def _test_message(result: cm.TestResult, name: str) -> tuple[int, str]:
    if result.ok:
        return messages.SUCCESS, (f"Connection {name!r} works: {result.server_version} · "
                                  f"{result.round_trip_ms or 0:.1f} ms round trip.")
    return messages.ERROR, f"Connection {name!r} failed: {result.error}"


@require_POST
def connection_test(request: HttpRequest, connection_id: int) -> TemplateResponse:
    """Test a saved connection; the result partial replaces the button's target.

    Without JavaScript the form posts here as a page: the connection list comes back with the result on top.
    """
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    result = sources.test_connection(connection)
    connections.connection_record_test(
        connection=connection, ok=result.ok, message=result.server_version or result.error or ""
    )
    if not request.htmx:
        messages.add_message(request, *_test_message(result, connection.name))
        return TemplateResponse(request, "ml_platform/connections.html",
                                {"connections": selectors.connections_in(scope=request.scope),
                                 "nav": "connections"})
    return TemplateResponse(request, "ml_platform/connection_form.html#test-result", {"result": result})


@require_POST
def connection_test_unsaved(request: HttpRequest) -> TemplateResponse:
    """Test the values in the create/edit form before saving (blank password = the saved one when editing).

    Without JavaScript the Test button submits the whole form here: the form page comes back as typed (the
    password is never rendered back) with the result below it.
    """
    instance = None
    if request.POST.get("connection_id"):
        try:
            connection_id = int(request.POST["connection_id"])
        except ValueError:
            raise Http404("No such connection") from None
        instance = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    form = ConnectionForm(request.POST, instance=instance, workspace=request.scope.workspace)
    form.is_valid()  # name clashes do not matter for a test; the connection fields do
    needed = {"engine", "host", "port", "database", "username", "password", "options", "__all__"}
    if needed & set(form.errors):
        messages_ = [f"{form.fields[k].label if k in form.fields else 'Connection'}: {' '.join(v)}"
                     for k, v in form.errors.items() if k in needed]
        result = cm.TestResult(ok=False, error="; ".join(messages_))
    else:
        data = form.cleaned_data
        password = data.get("password") or (instance.password if instance else "")
        params = cm.ConnectionParams(engine=data["engine"], host=data.get("host", ""), port=data.get("port"),
                                     database=data["database"], username=data.get("username", ""),
                                     password=password, options=data.get("options") or {})
        result = sources.test_params(params)
    if not request.htmx:
        for name in set(form.errors) - needed:
            del form.errors[name]  # a missing name is no reason to fail a test: say it on Save
        return TemplateResponse(request, "ml_platform/connection_form.html",
                                {"form": form, "connection": instance, "nav": "connections", "result": result,
                                 "password_dropped": bool(request.POST.get("password"))})
    return TemplateResponse(request, "ml_platform/connection_form.html#test-result", {"result": result})
