"""Edit and Reconnect: short HTMX flows that reuse the wizard's compatibility report partial."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from ml_platform import selectors
from ml_platform.etl.bq_errors import BigQueryError
from ml_platform.etl.compat_model import missing_strategy_choices
from ml_platform.etl.schedule import cron_error
from ml_platform.etl.sources import SourceError
from ml_platform.etl.types import SourceColumn
from ml_platform.models import EtlJob
from ml_platform.services import compat, jobs, schema_check, sources
from ml_platform.web.report_view import report_view
from wizard.forms import SCHEDULE_PRESETS, timezone_choices

# Why Edit shows the tag without letting it change (the API's PATCH refuses a tag too).
TAG_FIXED = ("The source tag is set when the job is created and cannot be changed here or through the API: the "
             "rows this job loaded carry it and its runs only touch rows with it. To load under another tag, "
             "delete this job and create a new one with that tag (on a table holding untagged rows, the wizard "
             "offers to set the tag on them).")


class EditJobForm(forms.Form):
    name = forms.CharField(max_length=200, label="Job name")
    columns = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, label="Columns",
                                        error_messages={"required": "Select at least one column."})
    load_strategy = forms.ChoiceField(choices=EtlJob.LoadStrategy.choices, widget=forms.RadioSelect,
                                      label="Load strategy")
    cursor_column = forms.ChoiceField(required=False, label="Cursor column (incremental)")
    merge_key = forms.MultipleChoiceField(required=False, label="Merge key columns")
    preset = forms.ChoiceField(choices=SCHEDULE_PRESETS, label="Schedule")
    cron = forms.CharField(required=False, max_length=100, label="Cron expression")
    timezone = forms.ChoiceField(label="Time zone")
    add_columns = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                            label="Add these columns to the table")
    # Shown, never changed: the API's PATCH does not take a tag either (see TAG_FIXED).
    source_tag = forms.CharField(required=False, disabled=True, label="Source tag")

    def __init__(self, *args, job: EtlJob, source_names: list[str], can_add: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.job = job
        choices = [(c, c) for c in source_names]
        self.fields["columns"].choices = choices
        self.fields["cursor_column"].choices = [("", "— none —")] + choices
        self.fields["merge_key"].choices = choices
        self.fields["timezone"].choices = timezone_choices()
        self.fields["add_columns"].choices = [(c, c) for c in can_add]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if EtlJob.objects.filter(workspace=self.job.workspace, name=name).exclude(pk=self.job.pk).exists():
            raise forms.ValidationError("This workspace already has a job with this name.")
        return name

    def clean(self) -> dict:
        data = super().clean()
        missing = missing_strategy_choices(data.get("load_strategy") or "", data.get("cursor_column"),
                                           data.get("merge_key"))
        for name, message in missing.items():
            self.add_error(name, message)
        preset = data.get("preset")
        if preset == "custom":
            cron = (data.get("cron") or "").strip()
            if problem := cron_error(cron):
                self.add_error("cron", problem)
            data["schedule"] = cron
        else:
            data["schedule"] = "" if preset == "manual" else preset
        return data


def initial_for(job: EtlJob) -> dict:
    presets = {value for value, _ in SCHEDULE_PRESETS}
    preset = "manual" if not job.schedule else (job.schedule if job.schedule in presets else "custom")
    return {"name": job.name, "columns": job.selected_columns, "load_strategy": job.load_strategy,
            "cursor_column": job.cursor_column, "merge_key": job.merge_key, "preset": preset,
            "cron": job.schedule if preset == "custom" else "", "timezone": job.schedule_timezone,
            "source_tag": job.source_tag}


def _source(job: EtlJob) -> list[SourceColumn]:
    return sources.get_columns(job.connection, job.source_schema or None, job.source_table)


def _value(form: forms.Form, name: str):
    return form[name].value()


def _refuse(form: EditJobForm, result: schema_check.SchemaCheckResult | None) -> None:
    """Why Save is refused: each problem on its field; the report's other errors in one sentence."""
    problems = result.problems if result is not None else []
    if result is None or set(result.report.errors) - {p.message for p in problems}:
        form.add_error(None, "The selected columns are not compatible with the table: see the report.")
    for problem in problems:
        message = f"{problem.message} {TAG_FIXED}" if problem.field == "source_tag" else problem.message
        form.add_error(problem.field if problem.field in form.fields else None, message)


@require_http_methods(["GET", "POST"])
def job_edit(request: HttpRequest, job_id: int) -> HttpResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    error = ""
    try:
        source = _source(job)
    except SourceError as exc:
        source, error = [], f"The source table cannot be read: {exc}"
    data = request.POST if request.method == "POST" else None
    form = EditJobForm(data, initial=initial_for(job), job=job, source_names=[c.name for c in source], can_add=[])
    chosen = {c.lower() for c in (_value(form, "columns") or [])}
    selected = [c for c in source if c.name.lower() in chosen]
    result = None
    if selected:
        choices = schema_check.Choices(
            load_strategy=_value(form, "load_strategy") or job.load_strategy,
            cursor_column=_value(form, "cursor_column") or "", merge_key=tuple(_value(form, "merge_key") or ()),
            source_tag=job.source_tag, add_columns=tuple(_value(form, "add_columns") or ()) if data else (),
        )
        try:
            result = schema_check.check(workspace=request.scope.workspace, source_columns=selected,
                                        destination=schema_check.Destination(job.destination_dataset,
                                                                             job.destination_table),
                                        choices=choices, dialect=job.connection.engine, exclude_job=job,
                                        creating=False)
        except BigQueryError as exc:
            error = str(exc)
    saving = request.method == "POST" and not request.POST.get("refresh")
    if saving and result is not None and result.report.needs_validation and not result.report.errors:
        # Save scans the columns that need a data check (as the wizard's Validate data does), then decides.
        try:
            result = schema_check.check(workspace=request.scope.workspace, source_columns=selected,
                                        destination=schema_check.Destination(job.destination_dataset,
                                                                             job.destination_table),
                                        choices=choices, dialect=job.connection.engine, exclude_job=job,
                                        creating=False, validate=True,
                                        source=schema_check.SourceRef(job.connection, job.source_schema or None,
                                                                      job.source_table))
        except (SourceError, BigQueryError) as exc:
            error = f"The data check could not run: {exc}"
    if result is not None:
        form.fields["add_columns"].choices = [(c, c) for c in result.new_columns]
    rep = report_view(result) if result is not None else None
    context = {"job": job, "form": form, "rep": rep, "report_error": error, "nav": "jobs"}
    if request.method == "POST" and request.POST.get("refresh"):
        # The report echoes the submitted ticks; the page sends one refresh at a time (hx-sync replace).
        # A strategy change also brings the fields that strategy uses (the report rides out of band).
        compat.report_delay()
        part = "strategy-refresh" if request.POST["refresh"] == "strategy" else "edit-report"
        return TemplateResponse(request, f"ml_platform/job_edit.html#{part}", context)
    if request.method == "POST" and form.is_valid():
        if result is None or not result.compatible or result.problems:
            _refuse(form, result)
        else:
            try:
                jobs.job_update(job=job, source_columns=selected, result=result, name=form.cleaned_data["name"],
                                load_strategy=form.cleaned_data["load_strategy"],
                                cursor_column=form.cleaned_data["cursor_column"],
                                merge_key=form.cleaned_data["merge_key"],
                                schedule=form.cleaned_data["schedule"],
                                schedule_timezone=form.cleaned_data["timezone"],
                                actor=request.user)
            except (jobs.JobCreateError, jobs.JobBusy, BigQueryError) as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Saved job {job.name!r}.")
                return redirect("jobs")
    if rep is not None and request.method == "POST":
        # The ticks' errors are shown in the report, where the ticks are.
        rep.errors = {"add_columns": [str(e) for e in form.errors.get("add_columns", [])]}
    return TemplateResponse(request, "ml_platform/job_edit.html", context, status=400 if form.errors else 200)


class ReconnectForm(forms.Form):
    connection = forms.TypedChoiceField(coerce=int, label="New connection")
    table = forms.ChoiceField(label="Source table", required=False)
    # Not a choice here: the job's cursor, which the shared report names in "MAX(cursor) = …".
    cursor_column = forms.CharField(required=False, disabled=True, widget=forms.HiddenInput)

    def __init__(self, *args, connections, tables: list[str], cursor_column: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["cursor_column"].initial = cursor_column
        self.fields["connection"].choices = [(c.pk, c.name) for c in connections]
        self.fields["table"].choices = [("", "— choose a table —")] + [(t, t) for t in tables]


@require_http_methods(["GET", "POST"])
def job_reconnect(request: HttpRequest, job_id: int) -> HttpResponse:
    """Point a job at another connection/table after a compatibility check; the BigQuery table is untouched."""
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    connections = list(selectors.connections_in(scope=request.scope))
    params = request.POST if request.method == "POST" else request.GET
    try:
        connection_id = int(params.get("connection") or job.connection_id)
    except ValueError:
        raise Http404("No such connection") from None  # like an unknown id: never a silent fallback
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    error = ""
    try:
        tables = [sources.qualified_name(t.schema, t.name) for t in sources.list_tables(connection)]
    except SourceError as exc:
        tables, error = [], str(exc)
    current = sources.qualified_name(job.source_schema or None, job.source_table)
    table = params.get("table")
    if not table:
        # Preselect the job's table when the new connection has it: same schema.table, or
        # the same table name in whatever schema the other engine calls it (database vs public).
        same_name = [t for t in tables if sources.split_table(t)[1].lower() == job.source_table.lower()]
        table = current if current in tables else (same_name[0] if len(same_name) == 1 else None)
    form = ReconnectForm({"connection": connection.pk, "table": table or ""}, connections=connections,
                         tables=tables, cursor_column=job.cursor_column)
    result = None
    missing: list[str] = []
    selected: list[SourceColumn] = []
    if table and table in tables:
        schema, name = sources.split_table(table)
        try:
            checked = schema_check.check_reconnect(workspace=request.scope.workspace, job=job,
                                                   connection=connection, schema=schema, table=name)
            result, selected, missing = checked.result, checked.selected, checked.missing
        except (SourceError, BigQueryError) as exc:
            error = str(exc)
    compatible = bool(result and result.ok and not missing)
    rep = report_view(result) if result else None
    if rep is not None:
        rep.add_choices = []  # Reconnect changes no table: a column the table lacks is a refusal, not an offer
    context = {"job": job, "form": form, "rep": rep, "report_error": error,
               "missing": missing, "compatible": compatible, "connection": connection, "table": table, "nav": "jobs"}
    status = 200
    if request.method == "POST" and request.POST.get("confirm"):
        if not compatible:
            messages.error(request, "Reconnect refused: the new source is not compatible with the table.")
        else:
            schema, name = sources.split_table(table)
            try:
                jobs.job_reconnect(job=job, connection=connection, source_schema=schema or "",
                                   source_table=name, source_columns=selected, result=result,
                                   actor=request.user)
            except jobs.JobCreateError as exc:
                messages.error(request, str(exc))
                status = 400
            except jobs.JobBusy as exc:  # a run is queued or running: refuse, never a 500
                messages.error(request, str(exc))
                status = 409
            else:
                messages.success(request, f"Reconnected {job.name!r} to {connection.name} · {table}. The BigQuery "
                                          "table, its rows and the job's watermark are unchanged.")
                return redirect("jobs")
    if request.htmx:
        return TemplateResponse(request, "ml_platform/job_reconnect.html#reconnect-body", context, status=status)
    return TemplateResponse(request, "ml_platform/job_reconnect.html", context, status=status)
