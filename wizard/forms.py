"""Wizard forms. They validate input; the compatibility verdict comes from the engine via the view."""

from __future__ import annotations

import re

from django import forms

from ml_platform.etl.bqsql import validate_table_id
from ml_platform.etl.compat_model import missing_strategy_choices
from ml_platform.etl.schedule import cron_error, timezone_names
from ml_platform.models import EtlJob

SCHEDULE_PRESETS = [
    ("manual", "Manual (Run Now only)"),
    ("*/15 * * * *", "Every 15 minutes"),
    ("0 * * * *", "Hourly"),
    ("0 2 * * *", "Daily at 02:00"),
    ("0 3 * * 1", "Weekly (Monday 03:00)"),
    ("custom", "Custom cron expression"),
]
TAG_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def timezone_choices() -> list[tuple[str, str]]:
    return [(tz, tz) for tz in timezone_names()]


class ConnectionStepForm(forms.Form):
    connection = forms.TypedChoiceField(coerce=int, widget=forms.RadioSelect, label="Connection")

    def __init__(self, *args, connections, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].choices = [(c.pk, c.name) for c in connections]


class TableStepForm(forms.Form):
    table = forms.ChoiceField(widget=forms.RadioSelect, label="Source table",
                              error_messages={"invalid_choice": "Choose one of the tables listed."})

    def __init__(self, *args, tables: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["table"].choices = [(t, t) for t in tables]


class ColumnsStepForm(forms.Form):
    columns = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        label="Columns",
        error_messages={"required": "Select at least one column."},
    )

    def __init__(self, *args, columns: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["columns"].choices = [(c, c) for c in columns]


class DestinationStepForm(forms.Form):
    destination_mode = forms.ChoiceField(
        choices=EtlJob.DestinationMode.choices, widget=forms.RadioSelect, initial=EtlJob.DestinationMode.NEW,
        label="Destination",
    )
    dataset = forms.ChoiceField(label="Dataset", error_messages={"invalid_choice": "Choose an existing dataset."})
    new_table = forms.CharField(label="New table name", required=False, max_length=1024)
    existing_table = forms.CharField(label="Existing table", required=False, max_length=1024)
    partition_field = forms.ChoiceField(label="Partition by (optional)", required=False)
    clustering = forms.MultipleChoiceField(label="Cluster by (optional, up to 4)", required=False,
                                           widget=forms.SelectMultiple(attrs={"size": 4}))
    load_strategy = forms.ChoiceField(choices=EtlJob.LoadStrategy.choices, widget=forms.RadioSelect,
                                      initial=EtlJob.LoadStrategy.REPLACE, label="Load strategy")
    cursor_column = forms.ChoiceField(label="Cursor column (incremental)", required=False)
    merge_key = forms.MultipleChoiceField(label="Merge key columns", required=False,
                                          widget=forms.SelectMultiple(attrs={"size": 4}))
    source_tag = forms.CharField(label="Source tag (optional)", required=False, max_length=64)
    confirm_replace = forms.BooleanField(required=False, label="Delete the rows this job loads into the table")
    add_columns = forms.MultipleChoiceField(label="Add these columns to the table", required=False,
                                            widget=forms.CheckboxSelectMultiple)
    relax_required = forms.BooleanField(
        label="Relax REQUIRED columns to NULLABLE on the destination table", required=False
    )
    confirm_backfill = forms.BooleanField(required=False, label="Set the source tag on the table's untagged rows")

    def __init__(self, *args, datasets: list[str], columns: list[str], partition_candidates: list[str],
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The schema check's result for these choices (`attach_check`): the submit is refused on what it says.
        self.check_result = None
        self.check_error = ""
        self.fields["dataset"].choices = [("", "— choose a dataset —")] + [(d, d) for d in datasets]
        column_choices = [(c, c) for c in columns]
        self.fields["partition_field"].choices = [("", "— none —")] + [(c, c) for c in partition_candidates]
        self.fields["clustering"].choices = column_choices
        self.fields["cursor_column"].choices = [("", "— choose —")] + column_choices
        self.fields["merge_key"].choices = column_choices

    def attach_check(self, result, error: str = "") -> None:
        """Give the form the schema check of its choices (before validation): ticks offered, submit rules."""
        self.check_result = result
        self.check_error = error
        if result is not None:
            self.fields["add_columns"].choices = [(c, c) for c in result.new_columns]
            if result.other_job_count:
                self.fields["source_tag"].label = "Source tag (required)"

    def clean_new_table(self) -> str:
        value = self.cleaned_data["new_table"].strip()
        if value:
            try:
                validate_table_id(value)
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from None
        return value

    def clean_source_tag(self) -> str:
        value = self.cleaned_data["source_tag"].strip()
        if value and not TAG_RE.match(value):
            raise forms.ValidationError("Use 1-64 letters, digits, '_', '-', '.' or ':'.")
        return value

    def clean_clustering(self) -> list[str]:
        value = self.cleaned_data["clustering"]
        if len(value) > 4:
            raise forms.ValidationError("BigQuery clusters by at most 4 columns.")
        return value

    def clean(self) -> dict:
        data = super().clean()
        mode = data.get("destination_mode")
        if mode == EtlJob.DestinationMode.NEW and not data.get("new_table"):
            self.add_error("new_table", "Enter a name for the new table.")
        if mode == EtlJob.DestinationMode.EXISTING and not data.get("existing_table"):
            self.add_error("existing_table", "Choose an existing table.")
        missing = missing_strategy_choices(data.get("load_strategy") or "", data.get("cursor_column"),
                                           data.get("merge_key"))
        for name, message in missing.items():
            self.add_error(name, message)
        self._check_rules(mode)
        return data

    def _check_rules(self, mode: str | None) -> None:
        """The schema check decides; the form only puts its refusals where the user fixes them."""
        result = self.check_result
        if mode == EtlJob.DestinationMode.EXISTING:
            if not self.cleaned_data.get("existing_table"):
                return
            if result is None:
                self.add_error("existing_table", self.check_error or "Choose an existing table.")
                return
            if not result.compatible:
                self.add_error(None, "The source is not compatible with this table: fix the errors in the report.")
        elif result is None:
            if self.check_error:
                self.add_error(None, self.check_error)
            return
        elif not result.compatible:  # a new table shows no report: its findings go on the form
            for finding in result.details():
                if isinstance(finding, dict) and "column" in finding:
                    self.add_error(None, f"Column {finding['column']!r}: {finding['error']}")
                elif isinstance(finding, str):
                    self.add_error(None, finding)
        for problem in result.problems:
            name = problem.field if problem.field in self.fields else None
            if name is None or name not in self.errors:
                self.add_error(name, problem.message)


class ScheduleStepForm(forms.Form):
    name = forms.CharField(label="Job name", max_length=200)
    preset = forms.ChoiceField(choices=SCHEDULE_PRESETS, initial="manual", label="Schedule")
    cron = forms.CharField(label="Cron expression", required=False, max_length=100,
                           help_text="minute hour day-of-month month day-of-week, e.g. */30 * * * *")
    timezone = forms.ChoiceField(label="Time zone", initial="UTC")
    run_now = forms.BooleanField(label="Run now after creating the job", required=False)

    def __init__(self, *args, workspace, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.fields["timezone"].choices = timezone_choices()

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if EtlJob.objects.filter(workspace=self.workspace, name=name).exists():
            raise forms.ValidationError("This workspace already has a job with this name.")
        return name

    def clean(self) -> dict:
        data = super().clean()
        preset = data.get("preset")
        if preset == "custom":
            cron = (data.get("cron") or "").strip()
            if not cron:
                self.add_error("cron", "Enter a cron expression.")
            elif problem := cron_error(cron):
                self.add_error("cron", problem)
            data["schedule"] = cron
        elif preset == "manual":
            data["schedule"] = ""
        else:
            data["schedule"] = preset or ""
        return data

