"""The ETL wizard: five server-rendered steps swapped by HTMX, plus small live endpoints.

Each step view handles GET (render) and POST (validate, store in the draft,
move on). With HX-Request the step partial is returned and the URL pushed;
without it the full page renders (or a POST redirects), so every step URL
works on its own and with the browser's back/forward buttons.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, push_url

from ml_platform import selectors
from ml_platform.etl import compatibility as engine
from ml_platform.etl.bq_errors import BigQueryError
from ml_platform.etl.bqsql import validate_table_id
from ml_platform.etl.compat_model import default_load_strategy
from ml_platform.etl.ledger import internal_table
from ml_platform.etl.schedule import cron_error
from ml_platform.etl.schedule import next_runs as cron_next_runs
from ml_platform.etl.sources import SourceError
from ml_platform.etl.types import Family, SourceColumn, bigquery_type_for
from ml_platform.models import EtlJob
from ml_platform.services import compat, jobs, schema_check, sources
from ml_platform.services.warehouse import warehouse
from ml_platform.web.report_view import report_view
from wizard import state
from wizard.forms import (
    ColumnsStepForm,
    ConnectionStepForm,
    DestinationStepForm,
    ScheduleStepForm,
    TableStepForm,
)

logger = logging.getLogger(__name__)

PARTITION_FAMILIES = {Family.DATE, Family.TIMESTAMP}


def step_url(n: int) -> str:
    return reverse("wizard:step", args=[n])


def render_step(request: HttpRequest, n: int, context: dict, *, status: int = 200) -> HttpResponse:
    context = {
        **context,
        "step": n,
        "steps": state.STEPS,
        "step_title": state.STEPS[n],
        "step_template": f"wizard/partials/step{n}.html",
        "nav": "wizard",
    }
    if request.htmx:
        response = TemplateResponse(request, "wizard/wizard.html#step-frame", context, status=status)
        # Push only real step changes: re-rendering the same step (a mode switch) must not add
        # a history entry, or Back would land on the same step.
        if request.htmx.current_url_abs_path != step_url(n):
            push_url(response, step_url(n))
        return response
    return TemplateResponse(request, "wizard/wizard.html", context, status=status)


def advance(request: HttpRequest, n: int) -> HttpResponse:
    """After a valid POST: the next step (HTMX) or a redirect to it (plain form post)."""
    if request.htmx:
        return STEP_VIEWS[n](request, force_get=True)
    return redirect(step_url(n))


@require_GET
def start(request: HttpRequest) -> HttpResponse:
    draft = state.load(request.user)
    return redirect(step_url(state.first_incomplete_step(draft, request.scope)))


@require_POST
def reset(request: HttpRequest) -> HttpResponse:
    """Start over. A POST (CSRF-checked), so a link or image on another site cannot wipe a draft."""
    state.reset(state.load(request.user))
    if request.htmx:
        return HttpResponseClientRedirect(step_url(1))
    return redirect(step_url(1))


def guard(request: HttpRequest, n: int) -> HttpResponse | None:
    """Refuse a step whose earlier steps are not complete: send the user back to the first gap."""
    draft = state.load(request.user)
    first = state.first_incomplete_step(draft, request.scope)
    if first < n:
        messages.warning(request, f"Complete step {first} ({state.STEPS[first]}) first.")
        if request.htmx:
            return HttpResponseClientRedirect(step_url(first))
        return redirect(step_url(first))
    return None


def current_connection(request: HttpRequest, draft):
    return selectors.connection_in(scope=request.scope, connection_id=draft.data["connection_id"])


def choice_step(request: HttpRequest, draft, n: int, form_class, *, field: str, key: str, force_get: bool,
                default=None, **choices) -> tuple:
    """Steps 1-3, one choice each: (form, None) to show, or (form, the next step) once a POST is stored as `key`."""
    if request.method == "POST" and not force_get:
        form = form_class(request.POST, **choices)
        if form.is_valid():
            state.update(draft, n, {key: form.cleaned_data[field]})
            return form, advance(request, n + 1)
    else:
        form = form_class(initial={field: draft.data.get(key) or default}, **choices)
    return form, None


# --------------------------------------------------------------------------- step 1


def step1(request: HttpRequest, force_get: bool = False) -> HttpResponse:
    draft = state.load(request.user)
    connections = list(selectors.connections_in(scope=request.scope))
    form, done = choice_step(request, draft, 1, ConnectionStepForm, field="connection", key="connection_id",
                             force_get=force_get, connections=connections)
    if done:
        return done
    return render_step(request, 1, {"form": form, "connections": connections}, status=400 if form.errors else 200)


# --------------------------------------------------------------------------- step 2


def step2(request: HttpRequest, force_get: bool = False) -> HttpResponse:
    if refused := guard(request, 2):
        return refused
    draft = state.load(request.user)
    connection = current_connection(request, draft)
    try:
        tables = sources.list_tables(connection)
        error = ""
    except SourceError as exc:
        tables, error = [], str(exc)
    names = [sources.qualified_name(t.schema, t.name) for t in tables]
    query = (request.GET.get("q") or "").strip()
    form, done = choice_step(request, draft, 2, TableStepForm, field="table", key="source_table",
                             force_get=force_get, tables=names)
    if done:
        return done
    shown = [t for t in tables if query.lower() in sources.qualified_name(t.schema, t.name).lower()]
    context = {"form": form, "connection": connection, "tables": shown, "total_tables": len(tables),
               "query": query, "error": error, "selected": draft.data.get("source_table")}
    if request.htmx and request.GET.get("filter"):
        return TemplateResponse(request, "wizard/partials/table_list.html", context)
    return render_step(request, 2, context, status=400 if form.errors else 200)


# --------------------------------------------------------------------------- step 3


def source_columns_of(request: HttpRequest, draft) -> list[SourceColumn]:
    connection = current_connection(request, draft)
    schema, table = sources.split_table(draft.data["source_table"])
    return sources.get_columns(connection, schema, table)


def selected_source_columns(request: HttpRequest, draft) -> list[SourceColumn]:
    chosen = {c.lower() for c in draft.data.get("columns", [])}
    return [c for c in source_columns_of(request, draft) if c.name.lower() in chosen]


def step3(request: HttpRequest, force_get: bool = False) -> HttpResponse:
    if refused := guard(request, 3):
        return refused
    draft = state.load(request.user)
    connection = current_connection(request, draft)
    schema, table = sources.split_table(draft.data["source_table"])
    try:
        preview = sources.preview(connection, schema, table, limit=20)
        error = ""
    except SourceError as exc:
        preview, error = None, str(exc)
    columns = preview.columns if preview else []
    names = [c.name for c in columns]
    form, done = choice_step(request, draft, 3, ColumnsStepForm, field="columns", key="columns",
                             force_get=force_get, default=names, columns=names)
    if done:
        return done
    chosen = set(form["columns"].value() or [])
    rows = []
    for c in columns:
        bq_type, mode = bigquery_type_for(c.type)
        rows.append({"column": c, "bq_type": bq_type, "mode": mode, "checked": c.name in chosen})
    context = {"form": form, "connection": connection, "table": draft.data["source_table"], "columns": rows,
               "preview": preview, "error": error}
    return render_step(request, 3, context, status=400 if form.errors else 200)


# --------------------------------------------------------------------------- step 4


MULTI_VALUE_FIELDS = {"clustering", "merge_key", "add_columns"}
BOOLEAN_FIELDS = {"relax_required", "confirm_replace", "confirm_backfill"}
# Every step-4 input: the in-progress choices saved as the user makes them (`destination_draft`).
DRAFT_FIELDS = ("destination_mode", "dataset", "new_table", "existing_table", "partition_field", "clustering",
                "load_strategy", "cursor_column", "merge_key", "source_tag", "add_columns", "relax_required",
                "confirm_replace", "confirm_backfill")
# Choices that belong to one existing table: they reset when the user picks another table.
PER_TABLE_FIELDS = ("add_columns", "relax_required", "confirm_replace", "confirm_backfill")


def default_strategy(mode: str) -> str:
    return default_load_strategy(existing_table=mode == EtlJob.DestinationMode.EXISTING)


def snapshot_of(params) -> dict:
    """The step-4 choices a request carries (the whole form is included in every step-4 request)."""
    values: dict = {}
    for key in DRAFT_FIELDS:
        if key in MULTI_VALUE_FIELDS:
            values[key] = params.getlist(key)
        elif key in BOOLEAN_FIELDS:
            values[key] = bool(params.get(key))
        else:
            values[key] = params.get(key, "")
    return values


def settle_snapshot(draft, values: dict, *, mode_switch: bool = False) -> dict:
    """Apply the rules between the last saved choices and these: per-table choices, safe default strategy."""
    before = draft.data.get("destination_draft") or {}
    values = dict(values)
    same_table = (before.get("dataset"), before.get("existing_table")) == (values.get("dataset"),
                                                                          values.get("existing_table"))
    if before and not same_table:
        # The relax and add-columns choices were made for the table shown then, not this one.
        values.update(add_columns=[], relax_required=False, confirm_replace=False, confirm_backfill=False)
    switched_to_existing = (mode_switch and values.get("destination_mode") == EtlJob.DestinationMode.EXISTING
                            and before.get("destination_mode") != EtlJob.DestinationMode.EXISTING)
    if switched_to_existing and values.get("load_strategy") == EtlJob.LoadStrategy.REPLACE:
        values["load_strategy"] = default_strategy(EtlJob.DestinationMode.EXISTING)
    return values


DRAFT_VALUE_MAX = 1024  # the longest table name: anything longer (or with a NUL) is no choice worth keeping


def keepable(value: str) -> str:
    return value if len(value) <= DRAFT_VALUE_MAX and "\x00" not in value else ""


def save_destination_draft(draft, values: dict) -> None:
    """Store the choices as the draft's `destination_draft`; the form validates them when shown or submitted."""
    kept: dict = {}
    for key, value in values.items():
        if isinstance(value, list):
            kept[key] = [v for v in map(keepable, value[:DRAFT_VALUE_MAX]) if v]
        elif isinstance(value, str):
            kept[key] = keepable(value)
        else:
            kept[key] = value
    data = dict(draft.data)
    data["destination_draft"] = kept
    draft.data = data
    draft.save(update_fields=["data", "updated_at"])


def as_querydict(values: dict) -> QueryDict:
    bound = QueryDict(mutable=True)
    for key, value in values.items():
        if isinstance(value, list):
            bound.setlist(key, value)
        elif isinstance(value, bool):
            if value:
                bound[key] = "on"
        elif value is not None:
            bound[key] = value
    return bound


def destination_form(request: HttpRequest, draft, data=None, overrides=None, report_only: bool = False,
                     check_new: bool = False) -> tuple[DestinationStepForm, dict]:
    """Build the step-4 form (once) with its choices and, for an existing table, the schema check's report.

    `overrides` (a GET that switches mode or strategy) and `data` of a report request are the
    user's in-progress choices: they are saved as the draft's `destination_draft`, so a reload
    shows them. A plain GET (reload, Back) shows the saved choices. The report partial costs one
    table fetch and one query: the datasets come from the workspace, not from a BigQuery listing.
    """
    try:
        source, source_error = selected_source_columns(request, draft), ""
    except SourceError as exc:  # the source is down, busy or refuses the login: say so in place, never a 500
        source, source_error = [], f"The source database did not answer: {exc}"
    bq_error = ""
    mine = selectors.datasets_in(scope=request.scope)
    if report_only:
        datasets = sorted(mine)
    else:
        try:
            datasets = [d for d in warehouse().list_datasets() if d in mine]
        except BigQueryError as exc:
            datasets, bq_error = [], str(exc)
    saved = {**(draft.data.get("destination") or {}), **(draft.data.get("destination_draft") or {})}
    initial = {"destination_mode": "new", **saved}
    initial.setdefault("load_strategy", default_strategy(initial["destination_mode"]))
    to_save = None
    if overrides and "destination_mode" in overrides:
        # A GET that switches mode or strategy: show the choice without validating yet, and keep it.
        initial = to_save = settle_snapshot(draft, snapshot_of(overrides), mode_switch=True)
    values = data
    if data is not None and report_only:
        to_save = settle_snapshot(draft, snapshot_of(data))
        values = as_querydict(to_save)
    form = DestinationStepForm(values, initial=initial, datasets=datasets, columns=[c.name for c in source],
                               partition_candidates=[c.name for c in source if c.type.family in PARTITION_FAMILIES])
    mode = form["destination_mode"].value()
    dataset = form["dataset"].value()
    if dataset and dataset not in datasets and not bq_error:
        if report_only:
            raise Http404("No such dataset")  # another workspace's table: no schema, no count, no MAX()
        dataset = ""  # the form refuses the choice with an error in place
    if to_save is not None:
        save_destination_draft(draft, to_save)  # never a foreign dataset: that answered 404 above
    table = form["existing_table"].value() if mode == "existing" else ""
    strategy = form["load_strategy"].value() or default_strategy(mode)
    result, report_error = None, source_error
    if dataset and not source_error and (table or (check_new and mode == "new")):
        result, report_error = run_check(request, draft, form, source, dataset, table or "", strategy)
    form.attach_check(result, report_error)
    rep = report_view(result) if result is not None and mode == "existing" else None
    if rep is not None and data is not None and not report_only:
        rep.errors = {name: [str(e) for e in form.errors.get(name, [])] for name in ("add_columns", "confirm_replace")}
    existing_tables = []
    if mode == "existing" and dataset and not bq_error and not report_only:
        # The table <select> is not part of the report partial: skip counting every table's rows.
        try:
            existing_tables = [t for t in warehouse().list_tables(dataset) if not internal_table(t.table_id)]
        except BigQueryError as exc:
            report_error = report_error or str(exc)
    # The names the new table gets (normalised as job creation does), not the source names.
    schema_preview = [(c.name, f.name, f.field_type, f.mode)
                      for c, f in zip(source, engine.schema_for_new_table(source), strict=True)]
    context = {"existing_tables": existing_tables, "form": form, "datasets": datasets, "bq_error": bq_error,
               "rep": rep, "report_error": report_error, "schema_preview": schema_preview, "source_columns": source,
               "mode": mode, "dataset": dataset, "existing_table": table, "strategy": strategy,
               "report_only": report_only, "source_error": source_error,
               "tag_required": bool(result and result.other_job_count)}
    return form, context


def run_check(request: HttpRequest, draft, form: DestinationStepForm, source, dataset: str, table: str,
              strategy: str):
    """The schema check of the form's current choices: (result, "") or (None, the error to show)."""
    existing = form["destination_mode"].value() == "existing"
    name = table if existing else (form["new_table"].value() or "").strip()
    if not name:
        return None, ""
    if not existing:
        try:
            validate_table_id(name)
        except ValueError:
            return None, ""  # the form names the problem on the field
    def value(key: str):
        return form[key].value()
    choices = schema_check.Choices(
        load_strategy=strategy, cursor_column=value("cursor_column") or "", merge_key=tuple(value("merge_key") or ()),
        source_tag=(value("source_tag") or "").strip(), add_columns=tuple(value("add_columns") or ()),
        relax_required=bool(value("relax_required")), confirm_replace=bool(value("confirm_replace")),
        confirm_backfill=bool(value("confirm_backfill")), validation=validation_results(draft, dataset, table),
        partition_field=value("partition_field") or "", clustering=tuple(value("clustering") or ()),
    )
    connection = current_connection(request, draft)
    # A new table shows no report (nothing to compare yet), so Next scans the source itself for the columns whose
    # planned type needs it (e.g. a SQLite BOOLEAN may hold 2): one set-based query; failures name the values.
    scan = None if existing else schema_check.SourceRef(connection, *sources.split_table(draft.data["source_table"]))
    try:
        result = schema_check.check(workspace=request.scope.workspace, source_columns=source,
                                    destination=schema_check.Destination(dataset, name, existing=existing),
                                    choices=choices, dialect=connection.engine, validate=scan is not None,
                                    source=scan)
    except (BigQueryError, SourceError) as exc:
        return None, str(exc)
    return result, ""


def validation_results(draft, dataset: str, table: str) -> dict:
    stored = (draft.data.get("validation") or {}).get(f"{dataset}.{table}") or {}
    return {col: engine.ValidationResult(**{**v, "examples": tuple(v.get("examples") or ())}) for col, v in stored.items()}


def step4(request: HttpRequest, force_get: bool = False) -> HttpResponse:
    if refused := guard(request, 4):
        return refused
    draft = state.load(request.user)
    posting = request.method == "POST" and not force_get
    form, context = destination_form(request, draft, request.POST if posting else None,
                                     overrides=None if posting else request.GET, check_new=posting)
    if posting and form.is_valid():
        data = form.cleaned_data
        if context["source_error"]:
            form.add_error(None, context["source_error"])
        if not form.errors:
            state.update(draft, 4, {"destination": {k: v for k, v in data.items()},
                                    "destination_draft": snapshot_of(request.POST)})
            return advance(request, 5)
    return render_step(request, 4, context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def report(request: HttpRequest) -> HttpResponse:
    """The live compatibility report for the existing-table choice (HTMX swaps it in)."""
    draft = state.load(request.user)
    if state.first_incomplete_step(draft, request.scope) < 4:
        return TemplateResponse(request, "wizard/partials/report.html",
                                {"report_error": "Complete the earlier steps first."}, status=400)
    params = request.POST if request.method == "POST" else request.GET
    if request.method == "POST" and params.get("validate"):
        run_validation(request, draft, params)
    _form, context = destination_form(request, draft, params, report_only=True)
    compat.report_delay()
    # The partial's explicit context: the report, and the source-tag label it swaps out of band.
    return TemplateResponse(request, "wizard/partials/report.html",
                            {key: context[key] for key in ("rep", "report_error", "report_only", "tag_required")})


@require_POST
def save_draft(request: HttpRequest) -> HttpResponse:
    """Keep the step-4 choices that ask for no report (new-table mode), so a reload shows them."""
    draft = state.load(request.user)
    if state.first_incomplete_step(draft, request.scope) < 4:
        return HttpResponse(status=400)
    save_destination_draft(draft, settle_snapshot(draft, snapshot_of(request.POST)))
    return HttpResponse(status=204)


def run_validation(request: HttpRequest, draft, params) -> None:
    dataset, table = params.get("dataset", ""), params.get("existing_table", "")
    if not dataset or not table:
        return
    selectors.dataset_in(scope=request.scope, dataset=dataset)
    try:
        source = selected_source_columns(request, draft)
    except SourceError as exc:
        messages.error(request, f"Data validation failed: {exc}")
        return
    schema, source_table = sources.split_table(draft.data["source_table"])
    connection = current_connection(request, draft)
    choices = schema_check.Choices(load_strategy=params.get("load_strategy") or default_load_strategy(existing_table=True),
                                   cursor_column=params.get("cursor_column") or "",
                                   merge_key=tuple(params.getlist("merge_key")),
                                   source_tag=params.get("source_tag", "").strip())
    try:
        results = schema_check.check(
            workspace=request.scope.workspace, source_columns=source,
            destination=schema_check.Destination(dataset, table), choices=choices, dialect=connection.engine,
            source=schema_check.SourceRef(connection, schema, source_table), validate=True,
        ).validation
    except (BigQueryError, SourceError) as exc:
        messages.error(request, f"Data validation failed: {exc}")
        return
    data = dict(draft.data)
    validation = dict(data.get("validation") or {})
    validation[f"{dataset}.{table}"] = {col: asdict(r) | {"examples": list(r.examples)} for col, r in results.items()}
    data["validation"] = validation
    draft.data = data
    draft.save(update_fields=["data", "updated_at"])


@require_GET
def tables(request: HttpRequest) -> HttpResponse:
    """The <option>s of the existing-table select for a dataset."""
    dataset = request.GET.get("dataset", "")
    error = ""
    listed = []
    if dataset:
        selectors.dataset_in(scope=request.scope, dataset=dataset)
        try:
            listed = [t for t in warehouse().list_tables(dataset) if not internal_table(t.table_id)]
        except BigQueryError as exc:
            error = str(exc)
    return TemplateResponse(request, "wizard/partials/step4.html#table-options",
                            {"existing_tables": listed, "tables_error": error,
                             "existing_table": request.GET.get("existing_table", "")})


# --------------------------------------------------------------------------- step 5


def step5(request: HttpRequest, force_get: bool = False) -> HttpResponse:
    if refused := guard(request, 5):
        return refused
    draft = state.load(request.user)
    posting = request.method == "POST" and not force_get
    data = draft.data
    default_name = f"{data['source_table'].split('.')[-1]} → {data['destination'].get('dataset')}."
    default_name += data["destination"].get("new_table") or data["destination"].get("existing_table") or ""
    if posting:
        form = ScheduleStepForm(request.POST, workspace=request.scope.workspace)
        if form.is_valid():
            try:
                job = create_job_from_draft(request, draft, form.cleaned_data)
            except (jobs.JobCreateError, BigQueryError, SourceError) as exc:
                form.add_error(None, str(exc))
            else:
                state.reset(draft)
                messages.success(request, f"Created job {job.name!r}.")
                # A real navigation to the jobs list, where the new job and its actions are: the
                # address bar leaves /etl/new/step/5/.
                target = reverse("jobs")
                if request.htmx:
                    return HttpResponseClientRedirect(target)
                return redirect(target)
    else:
        form = ScheduleStepForm(initial={"name": default_name, "timezone": "UTC"}, workspace=request.scope.workspace)
    # The preview of the schedule on screen, from the first render on (not only after a change).
    preview = cron_preview_context(form["preset"].value() or "manual", form["cron"].value() or "",
                                   form["timezone"].value() or "UTC")
    return render_step(request, 5, {"form": form, "draft": data, **preview}, status=400 if form.errors else 200)


def create_job_from_draft(request: HttpRequest, draft, schedule: dict) -> EtlJob:
    data = draft.data
    dest = data["destination"]
    connection = current_connection(request, draft)
    schema, table = sources.split_table(data["source_table"])
    source = selected_source_columns(request, draft)
    existing = dest["destination_mode"] == "existing"
    return jobs.job_create(
        owner=request.user,
        actor=request.user,
        workspace=request.scope.workspace,
        name=schedule["name"],
        connection=connection,
        source_schema=schema or "",
        source_table=table,
        source_columns=source,
        destination_dataset=dest["dataset"],
        destination_table=dest["existing_table"] if existing else dest["new_table"],
        use_existing_table=existing,
        load_strategy=dest["load_strategy"],
        cursor_column=dest.get("cursor_column") or "",
        merge_key=dest.get("merge_key") or [],
        source_tag=dest.get("source_tag") or "",
        add_columns=dest.get("add_columns") or [],
        relax_required=bool(dest.get("relax_required")),
        partition_field=dest.get("partition_field") or "",
        clustering=dest.get("clustering") or [],
        schedule=schedule["schedule"],
        schedule_timezone=schedule["timezone"],
        run_now=schedule["run_now"],
        validation=validation_results(draft, dest["dataset"], dest.get("existing_table") or ""),
        confirm_replace=bool(dest.get("confirm_replace")),
        confirm_backfill=bool(dest.get("confirm_backfill")),
        validate_data=not existing,  # a new table's columns are scanned as at step 4 (no report to validate from)
    )


@require_GET
def cron_preview(request: HttpRequest) -> HttpResponse:
    context = cron_preview_context(request.GET.get("preset", ""), request.GET.get("cron", ""),
                                   request.GET.get("timezone") or "UTC")
    return TemplateResponse(request, "wizard/partials/step5.html#cron-preview", context)


def cron_preview_context(preset: str, cron: str, tz_name: str) -> dict:
    cron = cron.strip() if preset in ("", "custom") else preset
    context: dict = {"cron": cron, "timezone": tz_name}
    if preset == "manual" or not cron:
        context["manual"] = True
    elif problem := cron_error(cron):
        context["error"] = problem
    else:
        try:
            tz = ZoneInfo(tz_name)
            context["runs"] = [t.astimezone(tz) for t in cron_next_runs(cron, tz_name, after=timezone.now(), count=5)]
        except (KeyError, ValueError):
            context["error"] = f"Unknown time zone {tz_name!r}."
    return context


STEP_VIEWS = {1: step1, 2: step2, 3: step3, 4: step4, 5: step5}


@require_http_methods(["GET", "POST"])
def step(request: HttpRequest, n: int) -> HttpResponse:
    view = STEP_VIEWS.get(n)
    if view is None:
        return redirect("wizard:start")
    return view(request)

