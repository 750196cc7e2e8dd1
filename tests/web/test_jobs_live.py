"""The jobs list and the job page stay live and say what is known about a run (issue 16)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from ml_platform.models import EtlJob, JobRun
from ml_platform.runs import records
from tests.fixtures import HX

pytestmark = pytest.mark.django_db


def make_job(user, connection, name: str = "orders") -> EtlJob:
    return EtlJob.objects.create(
        workspace=connection.workspace, owner=user, name=name, connection=connection, source_schema="public",
        source_table="orders", selected_columns=["id"], column_mapping={"id": "id"}, destination_dataset="ds",
        destination_table=name, load_strategy="replace", schedule="*/5 * * * *",
    )


@pytest.fixture
def job(user, connection):
    return make_job(user, connection)


def test_it_polls_the_whole_list_so_a_run_the_scheduler_starts_appears(alice_client, job) -> None:
    html = alice_client.get(reverse("jobs")).content.decode()
    assert f'hx-get="{reverse("jobs")}" hx-trigger="every 15s"' in html  # idle: slowly, but it polls
    records.run_enqueue_record(job=job, trigger=JobRun.Trigger.SCHEDULE)  # what the scheduler does
    polled = alice_client.get(reverse("jobs"), headers=HX).content.decode()
    assert "Queued…" in polled and 'hx-trigger="every 2s"' in polled  # active: fast
    assert "<nav" not in polled  # the list region alone


def test_it_keeps_the_job_page_live_and_gives_it_the_job_actions(alice_client, job) -> None:
    html = alice_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert f'hx-get="{reverse("job_detail", args=[job.pk])}" hx-trigger="every 15s"' in html
    for label in ("Run Now", "Edit", "Reconnect", "Pause", "Delete"):
        assert f">{label}</" in html
    assert "Audit trail" in html
    JobRun.objects.create(job=job, status=JobRun.Status.RUNNING, started_at=timezone.now(),
                          heartbeat_at=timezone.now(), progress_rows=5000, progress_total=20000)
    live = alice_client.get(reverse("job_detail", args=[job.pk]), headers=HX).content.decode()
    assert "Running… 5,000 / 20,000 rows" in live and "<progress" in live and 'hx-trigger="every 2s"' in live
    assert "Audit trail" not in live and "<nav" not in live


def test_it_returns_to_the_job_page_after_an_action_there(alice_client, job) -> None:
    response = alice_client.post(reverse("job_pause", args=[job.pk]), {"next": "detail"})
    assert response.status_code == 302 and response.url == reverse("job_detail", args=[job.pk])
    page = alice_client.get(response.url).content.decode()
    assert "Paused &#x27;orders&#x27;" in page and ">Resume</button>" in page


def test_it_says_the_worker_is_not_responding_when_the_heartbeat_is_stale(alice_client, job) -> None:
    beat = timezone.now() - timedelta(minutes=1)
    JobRun.objects.create(job=job, status=JobRun.Status.RUNNING, started_at=beat - timedelta(minutes=5),
                          heartbeat_at=beat, progress_rows=1133985, progress_total=1999169)
    for url in (reverse("jobs"), reverse("job_detail", args=[job.pk])):
        html = alice_client.get(url).content.decode()
        assert f"worker not responding since <time datetime=\"{timezone.localtime(beat).isoformat()}" in html
        assert f">{timezone.localtime(beat):%H:%M} UTC</time>" in html
        assert "1,133,985 / 1,999,169 rows read" in html
        assert "<progress" not in html  # no animated bar for a run that is not moving


def test_it_shows_a_moving_bar_while_the_heartbeat_is_fresh(alice_client, job) -> None:
    JobRun.objects.create(job=job, status=JobRun.Status.RUNNING, started_at=timezone.now(),
                          heartbeat_at=timezone.now() - timedelta(seconds=5), progress_rows=10, progress_total=100)
    html = alice_client.get(reverse("jobs")).content.decode()
    assert "not responding" not in html and '<progress class="run-progress"' in html and 'value="10"' in html


def test_it_never_shows_a_total_below_the_rows_already_read(alice_client, job) -> None:
    JobRun.objects.create(job=job, status=JobRun.Status.RUNNING, started_at=timezone.now(),
                          heartbeat_at=timezone.now(), progress_rows=101000, progress_total=100000)
    for url in (reverse("jobs"), reverse("job_detail", args=[job.pk])):
        html = alice_client.get(url).content.decode()
        assert "101,000 / 101,000 rows" in html and "100,000" not in html
        assert 'value="100"' in html  # the bar is full, not past its end


def test_it_keeps_flash_messages_out_of_the_polled_list(alice_client, job) -> None:
    alice_client.post(reverse("job_pause", args=[job.pk]))  # without htmx: the message waits for the next page
    polled = alice_client.get(reverse("jobs"), headers=HX).content.decode()
    assert "Paused &#x27;orders&#x27;" not in polled  # a poll must not consume it…
    page = alice_client.get(reverse("jobs")).content.decode()
    assert "Paused &#x27;orders&#x27;: scheduled runs stop" in page  # …the page shows it


def test_it_puts_an_action_message_beside_the_list_not_inside_it(alice_client, job) -> None:
    html = alice_client.post(reverse("job_run_now", args=[job.pk]), headers=HX).content.decode()
    oob, _, listing = html.partition('<div id="job-list"')
    assert 'id="job-messages"' in oob and 'hx-swap-oob="true"' in oob and "Run of &#x27;orders&#x27; queued." in oob
    assert "queued." not in listing  # the list region, which polls, carries no message to lose


def test_it_separates_thousands_in_every_count(alice_client, job) -> None:
    now = timezone.now()
    JobRun.objects.create(job=job, status=JobRun.Status.SUCCEEDED, rows_loaded=1234567, started_at=now,
                          finished_at=now)
    listing = alice_client.get(reverse("jobs")).content.decode()
    assert "1,234,567 rows" in listing
    detail = alice_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert "<td>1,234,567</td>" in detail and "rows ≤ 1,234,567" in detail and "1234567" not in detail


def test_it_numbers_runs_per_job(alice_client, user, connection, job) -> None:
    other = make_job(user, connection, name="customers")
    now = timezone.now()
    for owner in (other, other, job, other, job):
        JobRun.objects.create(job=owner, status=JobRun.Status.SUCCEEDED, rows_loaded=1, started_at=now,
                              finished_at=now)
    detail = alice_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    numbers = [cell.split("</td>")[0] for cell in detail.split('<tr data-testid="run-row"><td>')[1:]]
    assert numbers == ["#2", "#1"]
    listing = alice_client.get(reverse("jobs")).content.decode()
    row = listing.split('data-job="orders"')[1].split("</tr>")[0]
    assert "#2 ·" in row
