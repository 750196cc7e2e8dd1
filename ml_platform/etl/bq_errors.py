"""BigQuery's failures as one family of errors with sentences a user can act on.

`translated(bq, action)` turns google-api-core / auth / transport exceptions raised
inside it into `BigQueryError` subclasses (`BigQueryUnavailable` for 5xx and network
failures, `BigQueryTimeout`, `...NotFound`...). `code` and `message` mirror
google.api_core's exceptions, so the runner's classifier (`etl.errors`) treats
5xx/429 as transient and everything else as permanent.
"""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import requests
from google.api_core import exceptions as gexc
from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError

from ml_platform.etl.errors import SchemaMismatchError


class BigQueryError(Exception):
    """A BigQuery request failed; `str()` is a sentence for the user, `code` the HTTP status when known.

    `code` and `message` mirror google.api_core's exceptions so the runner's error
    classifier treats 5xx/429 as transient and everything else as permanent.
    """

    def __init__(self, message: str, *, code: int | None = None, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.errors = errors or []


class InvalidIdentifier(BigQueryError, SchemaMismatchError, ValueError):
    """A dataset, table or column name BigQuery would refuse (or that cannot be quoted safely).

    Also a `SchemaMismatchError`: a run that meets such a name fails for good.
    """


class BigQueryNotFound(BigQueryError):
    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("code", 404)
        super().__init__(message, **kwargs)


class DatasetNotFound(BigQueryNotFound):
    pass


class TableNotFound(BigQueryNotFound):
    pass


class ColumnNotFound(BigQueryNotFound):
    pass


class AlreadyExists(BigQueryError):
    pass


class DatasetNotEmpty(BigQueryError):
    pass


class ConcurrentChange(BigQueryError):
    """The table changed between reading and updating it (etag mismatch); re-read and retry."""


class SchemaChangeRefused(BigQueryError):
    """A schema change BigQuery does not make in place on a table with data."""


class QueryFailed(BigQueryError):
    pass


class LoadFailed(BigQueryError):
    pass


class BigQueryUnavailable(BigQueryError):
    """BigQuery (or the emulator) could not be reached or kept failing until the retry deadline."""


class BigQueryTimeout(BigQueryError):
    pass


class UnsupportedByEmulator(BigQueryError):
    """Works on real BigQuery, not on the local emulator."""


@contextmanager
def translated(
    bq: Any,
    action: str,
    *,
    dataset: str | None = None,
    table: str | None = None,
    error: type[BigQueryError] = BigQueryError,
) -> Iterator[None]:
    """Client exceptions raised inside as `BigQueryError`s with a sentence for the user."""
    try:
        yield
    except BigQueryError:
        raise
    except gexc.NotFound as exc:
        _raise_not_found(bq.project, exc, action, dataset, table)
    except gexc.Conflict as exc:
        raise AlreadyExists(f"{action.capitalize()} failed: {_clean(exc)}", code=409) from exc
    except gexc.PreconditionFailed as exc:
        raise ConcurrentChange(
            f"{action.capitalize()} failed: the table was changed by someone else meanwhile; try again.",
            code=412,
        ) from exc
    except gexc.GoogleAPICallError as exc:
        code = exc.code if isinstance(exc.code, int) else None
        cls: type[BigQueryError] = BigQueryUnavailable if code is not None and code >= 500 else error
        raise cls(f"{action.capitalize()} failed: {_clean(exc)}", code=code, errors=_errors_of(exc)) from exc
    except gexc.RetryError as exc:
        cause = exc.cause if exc.cause is not None else exc
        raise BigQueryUnavailable(
            f"{action.capitalize()} failed: BigQuery kept failing for {bq.retry_deadline:.0f} s "
            f"({_clean(cause)}).",
            code=503,
        ) from exc
    except (concurrent.futures.TimeoutError, TimeoutError) as exc:
        raise BigQueryTimeout(
            f"{action.capitalize()} did not finish within {bq.job_timeout:.0f} s.", code=504
        ) from exc
    except requests.exceptions.RequestException as exc:
        where = bq.emulator_host or "the BigQuery API"
        raise BigQueryUnavailable(f"{action.capitalize()} failed: cannot reach {where} ({exc}).", code=503) from exc
    except DefaultCredentialsError as exc:
        raise BigQueryError(
            "No Google credentials found: run `gcloud auth application-default login`, set "
            "GOOGLE_APPLICATION_CREDENTIALS, or set BIGQUERY_EMULATOR_HOST for the local emulator.",
            code=401,
        ) from exc
    except GoogleAuthError as exc:
        raise BigQueryError(
            f"{action.capitalize()} failed: Google authentication error ({exc}).", code=401
        ) from exc

def _raise_not_found(
    project: str, exc: gexc.NotFound, action: str, dataset: str | None, table: str | None
) -> NoReturn:
    text = _clean(exc)
    lowered = text.lower()
    if "not empty" in lowered:
        # The emulator answers "dataset is not empty" with 404; BigQuery with 400.
        raise DatasetNotEmpty(f"Dataset {dataset} still contains tables; delete them first.", code=400) from exc
    # "Not found: Dataset p:ds" / "Not found: Table p:ds.t" (BigQuery), "Not found: table:p.ds.t" (emulator).
    match = re.search(r"not found:\s*(dataset|table)[\s:]+([\w.:-]+)", text, re.IGNORECASE)
    kind = match.group(1).lower() if match else ("table" if table else "dataset" if dataset else None)
    named = match.group(2).rstrip(".") if match else None
    if kind == "dataset":
        name = dataset or (named.split(":")[-1].split(".")[-1] if named else "(unknown)")
        raise DatasetNotFound(f"BigQuery dataset {name} does not exist in project {project}.") from exc
    if kind == "table":
        if dataset and table:
            name = f"{dataset}.{table}"
        else:
            name = ".".join(named.replace(":", ".").split(".")[-2:]) if named else "(unknown)"
        raise TableNotFound(f"BigQuery table {name} does not exist.") from exc
    raise BigQueryNotFound(f"{action.capitalize()} failed: {text}") from exc


def _clean(exc: BaseException) -> str:
    """The human part of a google-api-core error message, on one line."""
    message = getattr(exc, "message", None) or str(exc)
    message = str(message).split("; reason:", 1)[0]
    message = re.sub(r"\s+", " ", message).strip()
    return message[:1000] or type(exc).__name__


def _errors_of(exc: gexc.GoogleAPICallError) -> list[dict[str, Any]]:
    return [e for e in (exc.errors or []) if isinstance(e, dict)]
