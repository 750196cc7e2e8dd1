"""Step-4 choices: kept across a reload, per table, safe by default; what step 4 and 5 show (issue 16)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from ml_platform.etl.types import BigQueryField
from ml_platform.models import EtlJob
from ml_platform.services import connections, jobs
from tests.web import test_wizard
from tests.web.htmx_attrs import askers, control_named, request
from tests.web.test_wizard import HX, step
from wizard.forms import ScheduleStepForm

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

# The wizard's fixtures: a PostgreSQL source with public.orders, its connection, a draft through step 3.
source = test_wizard.source
connection = test_wizard.connection
wiz = test_wizard.wiz

FULL_ORDERS = [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC"), BigQueryField("note", "STRING"),
               BigQueryField("code", "STRING"), BigQueryField("created_at", "TIMESTAMP")]


def existing(wiz, table: str, **extra) -> dict:
    return {"destination_mode": "existing", "dataset": wiz.dataset, "existing_table": table, **extra}


def test_it_keeps_step_four_choices_across_a_reload(wiz, bq) -> None:
    bq.create_table(wiz.dataset, "orders_bq", FULL_ORDERS)
    wiz.get(step(4), existing(wiz, "", load_strategy="append"), headers=HX)  # the mode switch
    wiz.post(reverse("wizard:report"), existing(wiz, "orders_bq", load_strategy="incremental", cursor_column="id"),
             headers=HX)
    page = wiz.get(step(4)).content.decode()  # a reload before Next
    assert 'value="existing" id="mode-existing" checked' in page
    assert '<option value="orders_bq" selected' in page.replace("  ", " ")
    assert 'id="strategy-incremental" value="incremental" checked' in page
    assert '<option value="id" selected>' in page
    assert 'data-testid="compatibility-report"' in page


def test_it_keeps_new_table_choices_across_a_reload(wiz) -> None:
    wiz.post(reverse("wizard:draft"), {"destination_mode": "new", "dataset": wiz.dataset, "new_table": "orders_copy",
                                       "load_strategy": "merge", "merge_key": ["id"]}, headers=HX)
    page = wiz.get(step(4)).content.decode()
    assert 'value="orders_copy"' in page and 'id="strategy-merge" value="merge" checked' in page
    assert '<option value="id" selected>' in page


def test_it_resets_the_relax_choice_when_the_table_changes(wiz, bq) -> None:
    strict = [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC"), BigQueryField("note", "STRING", "REQUIRED"),
              BigQueryField("code", "STRING"), BigQueryField("created_at", "TIMESTAMP")]
    bq.create_table(wiz.dataset, "strict_a", strict)
    bq.create_table(wiz.dataset, "strict_b", strict)
    report = reverse("wizard:report")
    first = wiz.post(report, existing(wiz, "strict_a", load_strategy="append"), headers=HX).content.decode()
    assert "Incompatible" in first
    relaxed = wiz.post(report, existing(wiz, "strict_a", load_strategy="append", relax_required="on"), headers=HX)
    assert ">Compatible<" in relaxed.content.decode()
    # The tick still on screen arrives with the other table: it was given for strict_a only.
    other = wiz.post(report, existing(wiz, "strict_b", load_strategy="append", relax_required="on"), headers=HX)
    html = other.content.decode()
    assert ">Incompatible<" in html
    box = re.search(r'<input[^>]*id="id_relax_required"[^>]*>', html).group(0)
    assert "checked" not in box
    assert wiz.post(step(4), existing(wiz, "strict_b", load_strategy="append"), headers=HX).status_code == 400


def test_it_defaults_an_existing_table_to_append(wiz, bq) -> None:
    # Switching from "new" (Replace by default) to an existing table: the form still says replace.
    switched = wiz.get(step(4), existing(wiz, "", load_strategy="replace"), headers=HX).content.decode()
    assert 'id="strategy-append" value="append" checked' in switched
    assert 'id="strategy-replace" value="replace" checked' not in switched


def test_it_asks_to_confirm_replace_with_the_rows_it_deletes(wiz, bq) -> None:
    bq.create_table(wiz.dataset, "orders_bq", FULL_ORDERS)
    bq.query(f"INSERT INTO `{wiz.dataset}.orders_bq` (id, amount) VALUES (1, 1.5), (2, 2.5)")
    form = existing(wiz, "orders_bq", load_strategy="replace")
    report = wiz.post(reverse("wizard:report"), form, headers=HX).content.decode()
    assert f"Delete the 2 rows this job loads into {wiz.dataset}.orders_bq" in report
    unconfirmed = wiz.post(step(4), {**form, "add_columns": []}, headers=HX)
    assert unconfirmed.status_code == 400 and b"Replace deletes the 2 rows" in unconfirmed.content
    confirmed = wiz.post(step(4), {**form, "confirm_replace": "on"}, headers=HX)
    assert confirmed.status_code == 200 and confirmed["HX-Push-Url"] == step(5)


def test_it_counts_only_the_tagged_rows_replace_deletes(wiz, bq) -> None:
    bq.create_table(wiz.dataset, "shared", [*FULL_ORDERS, BigQueryField("_source_tag", "STRING")])
    bq.query(f"INSERT INTO `{wiz.dataset}.shared` (id, _source_tag) VALUES (1, 'eu'), (2, 'us'), (3, 'us')")
    report = wiz.post(reverse("wizard:report"), existing(wiz, "shared", load_strategy="replace", source_tag="us"),
                      headers=HX).content.decode()
    assert f"Delete the 2 rows this job loads into {wiz.dataset}.shared" in report
    # No row holds the tag "fr" yet; untagged, Replace deletes every row (the schema check counts them).
    assert "Delete the" not in wiz.post(reverse("wizard:report"), existing(wiz, "shared", load_strategy="replace",
                                                                           source_tag="fr"), headers=HX).content.decode()
    everything = wiz.post(reverse("wizard:report"), existing(wiz, "shared", load_strategy="replace"),
                          headers=HX).content.decode()
    assert f"Delete the 3 rows this job loads into {wiz.dataset}.shared" in everything


def test_it_refuses_an_unconfirmed_replace_through_the_service(wiz, bq, user, connection) -> None:
    from ml_platform.services import sources

    bq.create_table(wiz.dataset, "orders_bq", FULL_ORDERS)
    bq.query(f"INSERT INTO `{wiz.dataset}.orders_bq` (id) VALUES (1)")
    columns = sources.get_columns(connection, "public", "orders")
    args = dict(owner=user, workspace=connection.workspace, name="replacer", connection=connection,
                source_schema="public", source_table="orders", source_columns=columns,
                destination_dataset=wiz.dataset, destination_table="orders_bq", use_existing_table=True,
                load_strategy="replace")
    with pytest.raises(jobs.JobCreateError, match="Replace deletes the 1 rows"):
        jobs.job_create(**args)
    assert jobs.job_create(**args, confirm_replace=True).load_strategy == "replace"


def test_it_previews_the_column_names_the_new_table_gets(alice_client, user, pg_source, bq_settings,
                                                         bq_dataset) -> None:
    pg_source.execute('CREATE TABLE weird ("Order ID" int, "Betrag €" numeric(10,2), "Straße" text)')
    connection = connections.connection_create(owner=user, name="weird_pg",
                                               **pg_source.as_connection_fields())
    alice_client.post(step(1), {"connection": connection.pk})
    alice_client.post(step(2), {"table": "public.weird"})
    alice_client.post(step(3), {"columns": ["Order ID", "Betrag €", "Straße"]})
    page = alice_client.get(step(4)).content.decode()
    for name in ("Order_ID", "Betrag", "Stra_e"):
        assert f'<tr data-column="{name}"><td>{name} ' in page


def test_it_labels_the_tag_required_and_compares_tags_ignoring_case(wiz, bq, user, connection) -> None:
    from ml_platform.services import sources

    bq.create_table(wiz.dataset, "shared", [*FULL_ORDERS, BigQueryField("_source_tag", "STRING")])
    EtlJob.objects.create(workspace=connection.workspace, owner=user, name="eu job", connection=connection,
                          source_table="orders", destination_dataset=wiz.dataset, destination_table="shared",
                          source_tag="eu")
    form = existing(wiz, "shared", load_strategy="append")
    report = wiz.post(reverse("wizard:report"), form, headers=HX).content.decode()
    assert 'id="source-tag-label" hx-swap-oob="true">Source tag (required)</label>' in report
    assert "Source tag (required)" in wiz.get(step(4)).content.decode()
    upper = wiz.post(step(4), {**form, "source_tag": "EU"}, headers=HX)
    assert upper.status_code == 400 and b"already used" in upper.content
    with pytest.raises(jobs.JobCreateError, match="already used by another job"):
        jobs.job_create(owner=user, workspace=connection.workspace, name="EU job", connection=connection,
                        source_schema="public", source_table="orders",
                        source_columns=sources.get_columns(connection, "public", "orders"),
                        destination_dataset=wiz.dataset, destination_table="shared", use_existing_table=True,
                        load_strategy="append", source_tag="EU")


def test_it_labels_the_tag_optional_when_no_other_job_loads_the_table(wiz, bq) -> None:
    bq.create_table(wiz.dataset, "orders_bq", FULL_ORDERS)
    report = wiz.post(reverse("wizard:report"), existing(wiz, "orders_bq", load_strategy="append"),
                      headers=HX).content.decode()
    assert ">Source tag (optional)</label>" in report


def test_it_shows_verdicts_in_words(wiz, bq) -> None:
    bq.create_table(wiz.dataset, "typed", [*FULL_ORDERS[:3], BigQueryField("code", "INT64"), FULL_ORDERS[4]])
    report = wiz.post(reverse("wizard:report"), existing(wiz, "typed", load_strategy="append"),
                      headers=HX).content.decode()
    assert ">Needs data check</span>" in report and ">OK</span>" in report
    assert ">needs_validation<" not in report and ">ok<" not in report


@pytest.mark.parametrize(("strategy", "shown", "hidden"), [
    ("append", [], ["id_cursor_column", "id_merge_key"]),
    ("replace", [], ["id_cursor_column", "id_merge_key"]),
    ("incremental", ["id_cursor_column"], ["id_merge_key"]),
    ("merge", ["id_merge_key"], ["id_cursor_column"]),
])
def test_it_shows_only_the_fields_the_strategy_uses(wiz, strategy, shown, hidden) -> None:
    page = wiz.get(step(4), {"destination_mode": "new", "dataset": wiz.dataset, "load_strategy": strategy},
                   headers=HX).content.decode()
    assert f'id="strategy-{strategy}" value="{strategy}" checked' in page
    # Choosing a strategy re-renders the step (one request, with the whole form), and nothing else.
    assert [(a["url"], a["hx-include"], a["hx-target"]) for a in asks(page, "load_strategy", value=strategy)] == [
        ("/etl/new/step/4/", "#destination-form", "#wizard-step")]
    for field in shown:
        assert f'id="{field}"' in page
    for field in hidden:
        assert f'id="{field}"' not in page


def asks(page: str, name: str, **attrs: str) -> list[dict]:
    """The requests a change of the control `name` sends (htmx inheritance and consumed events resolved)."""
    return [request(chain) for chain in askers(*control_named(page, name, **attrs))]


def test_each_step_four_input_asks_for_one_thing(wiz, bq) -> None:
    bq.create_table(wiz.dataset, "narrow", [f for f in FULL_ORDERS if f.name != "code"])  # offers to add `code`
    report = reverse("wizard:report")
    page = wiz.get(step(4), existing(wiz, "narrow", load_strategy="incremental", cursor_column="id"),
                   headers=HX).content.decode()
    # Every input of the report region asks for one new report, in one queue where the newest replaces the rest.
    for name in ("existing_table", "cursor_column", "source_tag", "add_columns"):
        assert [(a["verb"], a["url"], a["hx-include"], a["hx-target"], a["hx-sync"]) for a in asks(page, name)] == [
            ("hx-post", report, "#destination-form", "#schemaCompatibilityReport",
             "#schemaCompatibilityReport:replace")], name
    assert "input changed delay:400ms target:#id_source_tag" in asks(page, "source_tag")[0]["hx-trigger"]
    # The dataset lists its tables (and sends only itself), the radios re-render the step: no report.
    assert [(a["url"], a["hx-include"], a["hx-target"]) for a in asks(page, "dataset")] == [
        (reverse("wizard:tables"), "this", "#id_existing_table")]
    for name in ("destination_mode", "load_strategy"):
        assert [(a["url"], a["hx-target"], a["hx-swap"]) for a in asks(page, name)] == [
            (step(4), "#wizard-step", "innerHTML")], name
    # A new table has no report: every input only saves the draft, and the answer is swapped nowhere.
    new = wiz.get(step(4), {"destination_mode": "new", "dataset": wiz.dataset, "load_strategy": "merge"},
                  headers=HX).content.decode()
    for name in ("dataset", "new_table", "partition_field", "clustering", "merge_key", "source_tag"):
        assert [(a["url"], a["hx-include"], a["hx-swap"]) for a in asks(new, name)] == [
            (reverse("wizard:draft"), "#destination-form", "none")], name
    assert [(a["url"], a["hx-swap"]) for a in asks(new, "load_strategy")] == [(step(4), "innerHTML")]


def test_each_schedule_input_previews_the_next_runs(wiz) -> None:
    assert wiz.post(step(4), {"destination_mode": "new", "dataset": wiz.dataset, "new_table": "orders",
                              "load_strategy": "replace"}, headers=HX).status_code == 200
    page = wiz.get(step(5)).content.decode()
    for name in ("preset", "cron", "timezone"):
        assert [(a["url"], a["hx-include"], a["hx-target"]) for a in asks(page, name)] == [
            (reverse("wizard:cron_preview"), "#schedule-form", "#cron-preview")], name
    assert "input changed delay:300ms target:#id_cron" in asks(page, "cron")[0]["hx-trigger"]
    assert asks(page, "name") == [] and asks(page, "run_now") == []


def test_it_renders_the_cron_preview_on_first_load(wiz) -> None:
    assert wiz.post(step(4), {"destination_mode": "new", "dataset": wiz.dataset, "new_table": "orders",
                              "load_strategy": "replace"}, headers=HX).status_code == 200
    page = wiz.get(step(5)).content.decode()
    preview = page.split('id="cron-preview"')[1].split("</div>")[0]
    assert "Manual: the job runs only when you click Run Now" in preview


def test_it_leaves_the_wizard_url_after_creating_a_job(wiz) -> None:
    wiz.post(step(4), {"destination_mode": "new", "dataset": wiz.dataset, "new_table": "orders",
                       "load_strategy": "replace"}, headers=HX)
    done = wiz.post(step(5), {"name": "orders job", "preset": "manual", "timezone": "UTC"}, headers=HX)
    assert done["HX-Redirect"] == reverse("jobs")
    plain = wiz.get(step(5))
    assert plain.status_code == 302  # the draft is gone: step 5 no longer exists to come back to


def test_it_offers_only_geographic_time_zones() -> None:
    choices = [value for value, _ in ScheduleStepForm(workspace=None).fields["timezone"].choices]
    assert choices[0] == "UTC" and "Europe/Berlin" in choices and "America/Argentina/Buenos_Aires" in choices
    for alias in ("Factory", "localtime", "posixrules", "Etc/GMT+5", "EST5EDT", "GMT0", "UCT"):
        assert alias not in choices


def test_it_answers_422_to_an_unconfirmed_replace_through_the_api(wiz, bq, connection) -> None:
    bq.create_table(wiz.dataset, "orders_bq", FULL_ORDERS)
    bq.query(f"INSERT INTO `{wiz.dataset}.orders_bq` (id) VALUES (1), (2), (3)")
    body = {"name": "api replacer", "connection_id": connection.pk, "source_table": "public.orders",
            "use_existing_table": True, "existing_table_name": f"{wiz.dataset}.orders_bq", "load_strategy": "replace"}
    url = reverse("api_jobs")
    refused = wiz.post(url, body, content_type="application/json")
    assert refused.status_code == 422
    assert "Replace deletes the 3 rows" in refused.json()["message"]
    confirmed = wiz.post(url, {**body, "confirm_replace": True}, content_type="application/json")
    assert confirmed.status_code == 201, confirmed.content
