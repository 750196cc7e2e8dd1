"""Differential tests: the compatibility report against real loads, value by value.

For every (source engine, source type) x BigQuery destination type in
`tests/differential_cases.py`, one hypothesis example is one source table on the real
PostgreSQL / MariaDB / SQLite holding the type's boundary values plus generated ones,
one destination table on the emulator, and the product's own path:

1. the report (`schema_check.check`, what the wizard and the API show) gives the verdict;
2. needs validation: the product's data validation (`compat.validate_data`) must count
   exactly the values the load would reject; with failures the job cannot be created;
   once those rows are deleted from the source the validation passes and step 3 applies;
3. ok / warning: `jobs.job_create` accepts the job, `lifecycle.run_sync` (the worker's
   path) succeeds, and every value read back with google-cloud-bigquery equals the
   oracle's expectation (`tests/differential_values.py`: exact for ok, the documented
   transformation for each warning kind);
4. error: `jobs.job_create` refuses the job.

Every disagreement of one table is collected and reported together (no shrinking: a
run is a real load, and the message names each offending value and row).

CI budget: `ETL_DIFFERENTIAL_EXAMPLES` examples per pair (default 1, derandomized: the
same tables every run); `make test-differential-long` runs 25 per pair with fresh random
values each time (`ETL_DIFFERENTIAL_SEED=N` replays one), `ETL_DIFFERENTIAL_ROWS` generated
rows per table on top of the boundary values (default 12).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, given, seed, settings
from hypothesis import strategies as st

from tests.etl.differential_cases import CASES, case_id
from tests.etl.differential_values import REJECT, Dest, Kind, expected, literal, same
from tests.plugins.harness import (
    MYSQL_HOST,
    MYSQL_PORT,
    MYSQL_USER,
    PG_HOST,
    PG_PORT,
    PG_USER,
    SourceDatabase,
    _mysql_admin,
    _pg_admin,
    unique_name,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

EXAMPLES = int(os.environ.get("ETL_DIFFERENTIAL_EXAMPLES", "1"))
ROWS = int(os.environ.get("ETL_DIFFERENTIAL_ROWS", "12"))
SEED = os.environ.get("ETL_DIFFERENTIAL_SEED")
LONG = EXAMPLES > 1 and SEED is None  # a long run explores new values each time, unless a seed is given

settings.register_profile(
    "differential",
    max_examples=EXAMPLES,
    derandomize=not LONG and SEED is None,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
DIFFERENTIAL = settings.get_profile("differential")
SEEDED = seed(int(SEED)) if SEED else (lambda f: f)
_counter = itertools.count()


# --------------------------------------------------------------------------- sources, one per engine per module


@pytest.fixture(scope="module")
def sources() -> Iterator[dict[str, SourceDatabase]]:
    """One throw-away database per engine for the whole module: each example makes its own table."""
    pg_name, my_name = unique_name("diff"), unique_name("diff")
    pg = _pg_admin()
    pg.execute(f'CREATE DATABASE "{pg_name}"')
    my = _mysql_admin()
    with my.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{my_name}` CHARACTER SET utf8mb4")
    lite_dir = Path(tempfile.mkdtemp(prefix="diff-"))
    lite = lite_dir / "source.sqlite3"
    sqlite3.connect(lite).close()
    try:
        yield {
            "postgresql": SourceDatabase("postgresql", PG_HOST, PG_PORT, pg_name, PG_USER),
            "mysql": SourceDatabase("mysql", MYSQL_HOST, MYSQL_PORT, my_name, MYSQL_USER),
            "sqlite": SourceDatabase("sqlite", "", None, str(lite), ""),
        }
    finally:
        pg.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        pg.close()
        with my.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{my_name}`")
        my.close()
        shutil.rmtree(lite_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def dataset(bq_emulator_host: str) -> Iterator[str]:
    """One dataset for the module (each example makes its own table); each test assigns it to its workspace."""
    from ml_platform.etl.bigquery import BigQuery

    bq = BigQuery(project="test-project", emulator_host=bq_emulator_host)
    name = unique_name("diff")
    bq.create_dataset(name)
    try:
        yield name
    finally:
        bq.delete_dataset(name)


@pytest.fixture(scope="module")
def bq_client(bq_emulator_host: str):
    """The official client, read-only here: what landed is read the way a user of BigQuery reads it."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(
        project="test-project",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=bq_emulator_host),
    )


# --------------------------------------------------------------------------- one example


@dataclass
class Outcome:
    kind: Kind
    dest: Dest
    verdict: str = "?"
    message: str = ""
    problems: list[str] = field(default_factory=list)

    def fail(self, text: str) -> None:
        self.problems.append(text)


def create_source_table(source: SourceDatabase, kind: Kind, table: str, values: list[Any]) -> None:
    statements = [f"CREATE TABLE {table} (id bigint PRIMARY KEY, v {kind.ddl})"]
    if source.engine == "mysql":
        statements.insert(0, "SET time_zone = '+00:00'")
    for start in range(0, len(values), 50):
        chunk = ", ".join(f"({i}, {literal(kind, v)})" for i, v in enumerate(values[start : start + 50], start + 1))
        statements.append(f"INSERT INTO {table} (id, v) VALUES {chunk}")
    source.execute(*statements)


class Case:
    """The product's own path for one source table into one destination table."""

    def __init__(
        self, kind: Kind, dest: Dest, source: SourceDatabase, connection, user, dataset: str, bq, client
    ) -> None:
        from ml_platform.etl.types import BigQueryField
        from ml_platform.services import workspaces

        self.kind, self.dest, self.source, self.user, self.dataset, self.client = (
            kind,
            dest,
            source,
            user,
            dataset,
            client,
        )
        n = next(_counter)
        self.table = f"d{n}_{abs(hash(case_id((kind, dest)))) % 10_000}"
        self.schema = "public" if source.engine == "postgresql" else None
        self.connection = connection
        self._columns = None
        self.workspace = workspaces.personal_workspace(user)
        bq.create_table(
            dataset,
            self.table,
            [
                BigQueryField("id", "INT64"),
                BigQueryField("v", dest.type, dest.mode, precision=dest.precision, scale=dest.scale),
            ],
        )

    def columns(self):
        from ml_platform.services.sources import get_columns

        if self._columns is None:  # introspected once: the table's columns do not change
            self._columns = list(get_columns(self.connection, self.schema, self.table))
        return self._columns

    def options(self, validation=None):
        from ml_platform.services import compat

        return compat.options_from(load_strategy="append", validation=validation)

    def report(self, validation=None):
        from ml_platform.services import schema_check

        return schema_check.check(
            workspace=self.workspace,
            source_columns=self.columns(),
            destination=schema_check.Destination(self.dataset, self.table),
            choices=schema_check.Choices(load_strategy="append", validation=validation or {}),
            dialect=self.connection.engine,
        )

    def validate(self, destination) -> dict:
        from ml_platform.services import compat

        return compat.validate_data(
            connection=self.connection,
            schema=self.schema,
            table=self.table,
            source_columns=self.columns(),
            destination=destination,
            options=self.options(),
        )

    def create_job(self, validation=None):
        from ml_platform.services import jobs

        return jobs.job_create(
            owner=self.user,
            workspace=self.workspace,
            name=f"job {self.table}",
            connection=self.connection,
            source_schema=self.schema or "",
            source_table=self.table,
            source_columns=self.columns(),
            destination_dataset=self.dataset,
            destination_table=self.table,
            use_existing_table=True,
            load_strategy="append",
            validation=validation,
        )

    def run(self, job):
        from ml_platform.runs.lifecycle import run_sync

        return run_sync(job=job)

    def landed(self) -> dict[int, Any]:
        from google.cloud.bigquery import DEFAULT_RETRY

        job = self.client.query(
            f"SELECT id, v FROM `{self.dataset}`.`{self.table}` ORDER BY id",
            retry=DEFAULT_RETRY.with_deadline(0.5),
            job_retry=None,
            timeout=30,
        )
        return {row["id"]: row["v"] for row in job.result(timeout=30, retry=DEFAULT_RETRY.with_deadline(0.5))}


def check(case: Case, values: list[Any]) -> Outcome:
    out = Outcome(case.kind, case.dest)
    try:
        return _check(case, values, out)
    except Exception as exc:  # noqa: BLE001 - the product crashing on a value is a disagreement, reported as one
        out.fail(
            f"the product raised {type(exc).__name__}: {str(exc)[:400]!r}"
            + (
                f" (while handling {type(exc.__context__).__name__}: {str(exc.__context__)[:300]!r})"
                if exc.__context__
                else ""
            )
        )
        return out


def _check(case: Case, values: list[Any], out: Outcome) -> Outcome:
    from ml_platform.services.jobs import JobCreateError

    kind, dest = case.kind, case.dest
    ctx = case.report()
    row = ctx.report.column("v")
    # A pending validation makes the report "not compatible yet"; only errors make it an error.
    out.verdict = "error" if ctx.report.errors and row.verdict != "needs_validation" else row.verdict
    out.message = row.message if row.verdict != "ok" else "; ".join(ctx.report.errors) or row.message
    if out.verdict == "error":
        try:
            case.create_job()
        except JobCreateError:
            return out
        out.fail("the report says error, but jobs.job_create accepted the job")
        return out

    want = {i: expected(kind, dest, v, out.verdict) for i, v in enumerate(values, start=1)}
    rejected = sorted(i for i, w in want.items() if w is REJECT)
    validation = None

    if out.verdict == "needs_validation":
        results = case.validate(ctx.destination)
        result = results.get("v")
        failing = result.failures if result else 0
        if failing != len(rejected):
            out.fail(
                f"validation counts {failing} failing value(s) (examples {tuple(result.examples) if result else ()})"
                f", the load would reject {len(rejected)}: "
                + ", ".join(f"row {i} {values[i - 1]!r}" for i in rejected[:8])
            )
        if failing:
            try:
                case.create_job(validation=results)
                out.fail(f"validation found {failing} failing value(s), but the job could be created")
            except JobCreateError:
                pass
        if rejected:
            case.source.execute(f"DELETE FROM {case.table} WHERE id IN ({', '.join(map(str, rejected))})")
            want = {i: w for i, w in want.items() if w is not REJECT}
        validation = case.validate(ctx.destination)
        again = validation.get("v")
        if again is not None and again.failures:
            out.fail(
                f"after deleting the {len(rejected)} rejected row(s), validation still counts "
                f"{again.failures} failure(s), e.g. {tuple(again.examples)}"
            )
            return out
    elif rejected:
        out.fail(
            f"the report says {out.verdict}, but these values cannot load: "
            + "; ".join(f"row {i} {values[i - 1]!r}" for i in rejected[:8])
        )

    try:
        job = case.create_job(validation=validation)
    except JobCreateError as exc:
        out.fail(f"the report says {out.verdict}, but jobs.job_create refused: {exc} {exc.details}")
        return out
    run = case.run(job)
    if run.status != "succeeded":
        out.fail(f"the report says {out.verdict}, but the run failed: {run.error}")
        return out
    try:
        landed = case.landed()
    except Exception as exc:  # noqa: BLE001 - a table BigQuery cannot read back is the finding
        out.fail(f"the run succeeded, but the table cannot be read back: {str(exc)[:300]}")
        return out
    expected_ids = {i for i, w in want.items() if w is not REJECT}
    if set(landed) != expected_ids:
        out.fail(f"rows landed {sorted(landed)}, expected {sorted(expected_ids)}")
    for i in sorted(expected_ids & set(landed)):
        if not same(want[i], landed[i]):
            out.fail(f"row {i}: source {values[i - 1]!r} expected {want[i]!r}, landed {landed[i]!r}")
    return out


# --------------------------------------------------------------------------- the test


def record(case: tuple[Kind, Dest], outcome: Outcome, rows: int) -> None:
    """With ETL_DIFFERENTIAL_REPORT=path, one JSON line per example (the README's counts come from it)."""
    path = os.environ.get("ETL_DIFFERENTIAL_REPORT")
    if path:
        line = {
            "case": case_id(case),
            "verdict": outcome.verdict,
            "rows": rows,
            "agrees": not outcome.problems,
            "problems": outcome.problems,
        }
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_it_loads_what_the_report_promised(case, sources, dataset, user, bq, bq_settings, bq_client, tmp_path) -> None:
    from ml_platform.services import connections, workspaces

    kind, dest = case
    bq_settings.ETL_SPOOL_DIR = tmp_path / "spool"
    source = sources[kind.engine]
    workspaces.dataset_assign(workspace=workspaces.personal_workspace(user), dataset=dataset)
    connection = connections.connection_create(owner=user, name=kind.engine, **source.as_connection_fields())

    @DIFFERENTIAL
    @SEEDED
    @given(data=st.data())
    def example(data) -> None:
        generated = data.draw(st.lists(kind.values, min_size=3, max_size=max(ROWS, 3)), label="generated values")
        # Hypothesis tries the simplest draw first (all values alike, e.g. [0, 0, 0]); with a budget of one
        # example per pair that would be the only one, so such tables are skipped before any work is done.
        assume(len({repr(v) for v in generated}) > 1)
        values = [None, *kind.boundary, *generated]
        c = Case(kind, dest, source, connection, user, dataset, bq, bq_client)
        create_source_table(source, kind, c.table, values)
        outcome = check(c, values)
        record(case, outcome, len(values))
        outcomes.append(outcome)

    # Asserted after hypothesis is done: a failing example would otherwise be loaded a second time to be
    # reported, and the message below already names every offending value and row.
    outcomes: list[Outcome] = []
    example()
    problems = [(o, p) for o in outcomes for p in o.problems]
    assert not problems, f"{kind.label} -> {dest.label}: " + "\n".join(
        f"the report says {o.verdict} ({o.message}), but {p}" for o, p in problems
    )
