"""The harness talks to the real services: PostgreSQL, MariaDB and the emulator."""

import pytest

pytestmark = pytest.mark.integration


def test_it_gives_each_test_a_throwaway_postgresql_database(pg_source) -> None:
    pg_source.execute("CREATE TABLE t (id bigint primary key)", "INSERT INTO t VALUES (1), (2)")
    assert pg_source.query("SELECT count(*) FROM t") == [(2,)]
    assert pg_source.query("SELECT current_database()") == [(pg_source.database,)]


def test_it_gives_each_test_a_throwaway_mariadb_database(mysql_source) -> None:
    mysql_source.execute("CREATE TABLE t (id bigint primary key)", "INSERT INTO t VALUES (1), (2), (3)")
    assert mysql_source.query("SELECT count(*) FROM t") == [(3,)]
    assert "mariadb" in mysql_source.query("SELECT VERSION()")[0][0].lower()


def test_it_gives_each_test_its_own_emulator_dataset(bq, bq_dataset) -> None:
    from ml_platform.etl.types import BigQueryField

    bq.create_table(bq_dataset, "t", [BigQueryField("id", "INT64")])
    bq.query(f"INSERT INTO `{bq_dataset}.t` (id) VALUES (1), (2)")
    assert bq.row_count(bq_dataset, "t") == 2
    assert bq_dataset in bq.list_datasets()
