"""Models: secrets encrypted at rest with rotatable keys; one active run per job."""

import pytest
from cryptography.fernet import Fernet
from django.db import IntegrityError, connection, transaction

from ml_platform.fields import _fernet
from ml_platform.models import Connection, EtlJob, JobRun
from ml_platform.services import connections

PASSWORD = "s3cret-Pa55word-for-tests"


def raw_password(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM ml_platform_connection WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.fixture
def conn(user) -> Connection:
    return connections.connection_create(
        owner=user, name="prod", engine="postgresql", host="db.example", port=5432, database="shop",
        username="etl", password=PASSWORD,
    )


@pytest.mark.django_db
def test_it_stores_no_plaintext_password(conn: Connection) -> None:
    stored = raw_password(conn.pk)
    assert PASSWORD not in stored
    assert stored.startswith("gAAAA")  # a Fernet token
    assert Connection.objects.get(pk=conn.pk).password == PASSWORD


@pytest.mark.django_db
def test_it_keeps_the_password_out_of_repr_and_str(conn: Connection) -> None:
    assert PASSWORD not in repr(conn)
    assert PASSWORD not in str(conn)


@pytest.mark.django_db
def test_it_rotates_the_encryption_key(conn: Connection, settings) -> None:
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    old_token = raw_password(conn.pk)
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    _fernet.cache_clear()
    assert connections.secrets_rotate() == 1
    assert raw_password(conn.pk) != old_token
    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key is retired
    _fernet.cache_clear()
    assert Connection.objects.get(pk=conn.pk).password == PASSWORD
    _fernet.cache_clear()


@pytest.mark.django_db
def test_it_allows_one_active_run_per_job(conn: Connection, user) -> None:
    job = EtlJob.objects.create(workspace=conn.workspace, owner=user, name="j", connection=conn, source_table="t",
                                destination_dataset="d", destination_table="t")
    JobRun.objects.create(job=job, status=JobRun.Status.RUNNING)
    with pytest.raises(IntegrityError), transaction.atomic():
        JobRun.objects.create(job=job, status=JobRun.Status.QUEUED)
    JobRun.objects.filter(job=job).update(status=JobRun.Status.SUCCEEDED)
    JobRun.objects.create(job=job, status=JobRun.Status.QUEUED)
    assert job.runs.count() == 2


@pytest.mark.django_db
def test_it_refuses_to_delete_a_connection_that_jobs_use(conn: Connection, user) -> None:
    from django.db.models import ProtectedError

    EtlJob.objects.create(workspace=conn.workspace, owner=user, name="j", connection=conn, source_table="t",
                          destination_dataset="d", destination_table="t")
    with pytest.raises(ProtectedError):
        conn.delete()
