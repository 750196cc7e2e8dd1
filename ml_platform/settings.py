"""One settings module, driven by environment variables.

Defaults are the embedded local setup of `make run` (SQLite under .data/, the
BigQuery emulator, a generated encryption key). Production sets the variables
documented in the README. A malformed value raises ImproperlyConfigured naming
the variable, so a typo fails at start-up rather than at the first request.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("ML_PLATFORM_DATA_DIR", BASE_DIR / ".data"))


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def _private_data_dir() -> None:
    """Owner-only files for every process that loads these settings (web, worker, scheduler, manage.py).

    The data directory holds the SQLite database, the generated secret and encryption keys, the
    demo database and the spool of extracted rows. The umask makes everything created from now
    on owner-only (SQLite gives -wal/-shm the database's mode); the directory is made 0700 even
    if it already exists. A directory we do not own or cannot write (a read-only production
    image) is left alone: then nothing is written there either.
    """
    os.umask(0o077)
    try:
        DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        if DATA_DIR.stat().st_uid == os.getuid():
            DATA_DIR.chmod(0o700)
    except OSError:
        pass


_private_data_dir()


def _local_secret(filename: str, factory) -> str:
    """A secret generated once for local development and kept under DATA_DIR."""
    path = DATA_DIR / filename
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    value = factory()
    path.write_text(value)
    path.chmod(0o600)
    return value


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY") or _local_secret("secret_key", lambda: secrets.token_urlsafe(50))
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Fernet keys for connection secrets: the first encrypts, all decrypt
# (MultiFernet), so a key is rotated by prepending a new one and running
# `manage.py rotate_secrets`.
# The local key is generated only when the variable is unset: production (often a read-only
# file system) must not write a stray secret next to the one it was given.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", []) or [
    _local_secret("field_encryption_key", lambda: Fernet.generate_key().decode())
]
for _key in FIELD_ENCRYPTION_KEYS:
    try:
        Fernet(_key)
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must be comma-separated url-safe base64 Fernet keys "
            "(generate one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        ) from None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_tasks_db",
    "ninja",  # its Swagger UI static files for /api/docs (no CDN)
    "ml_platform",
    "wizard",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Bearer tokens on /api/ (after the session user is known, before login-required and CSRF checks run).
    "ml_platform.middleware.ApiTokenMiddleware",
    "ml_platform.middleware.ApiAwareLoginRequiredMiddleware",
    "ml_platform.middleware.WorkspaceMiddleware",
    "ml_platform.services.sources.SourceCallScope",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes requires: turns a refused login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "ml_platform.urls"
WSGI_APPLICATION = "ml_platform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
            ],
        },
    },
]

try:
    DATABASES = {
        "default": dj_database_url.parse(
            os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'ml_platform.sqlite3'}",
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
        )
    }
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that drops packets must fail fast, not hang a worker until its run is reaped.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 10)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and the scheduler share the file: WAL and a busy
    # timeout keep them from failing on each other's write locks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failed attempts for a username, or
# from one client address, logins for it are refused for LOGIN_COOLOFF_MINUTES. Each parameter
# counts on its own, so spraying one password over many usernames is stopped by the address and
# a distributed guess at one account by the username. AxesStandaloneBackend must come first.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15))
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_TIME <= timedelta(0):
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_COOLOFF_MINUTES must be positive")
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "ml_platform.web.auth.lockout_response"
AXES_CLIENT_IP_CALLABLE = "ml_platform.web.auth.client_ip"
# Number of reverse proxies in front of the app that append to X-Forwarded-For (0: use REMOTE_ADDR).
LOGIN_TRUSTED_PROXIES = env_int("LOGIN_TRUSTED_PROXIES", 0)
if LOGIN_TRUSTED_PROXIES < 0:
    raise ImproperlyConfigured("LOGIN_TRUSTED_PROXIES must be 0 or more")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "jobs"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
try:
    ZoneInfo(TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(f"TIME_ZONE is not a known time zone: {TIME_ZONE!r}") from None
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Background work: Django's task framework. The backend is the scale-out switch
# (django-tasks-db by default; Celery or RQ in production), see README.
TASKS_BACKEND = os.environ.get("TASKS_BACKEND", "django_tasks_db.DatabaseBackend")
TASKS = {"default": {"BACKEND": TASKS_BACKEND}}
if TASKS_BACKEND == "django_tasks_celery.CeleryBackend":
    TASKS["default"]["OPTIONS"] = {"CELERY_APP": "ml_platform.celery_app.app"}
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "") or None
# The worker imports the task module so Django's @task functions are registered with Celery.
CELERY_IMPORTS = ["ml_platform.runs.lifecycle", "ml_platform.runs.verify", "ml_platform.runs.key_ranges"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# BigQuery: the emulator when BIGQUERY_EMULATOR_HOST is set, real BigQuery with
# Application Default Credentials otherwise.
BIGQUERY_PROJECT = os.environ.get("BIGQUERY_PROJECT", "local-project")
BIGQUERY_EMULATOR_HOST = os.environ.get("BIGQUERY_EMULATOR_HOST", "")
if BIGQUERY_EMULATOR_HOST and not BIGQUERY_EMULATOR_HOST.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"BIGQUERY_EMULATOR_HOST must include the scheme, e.g. http://127.0.0.1:9050 (got {BIGQUERY_EMULATOR_HOST!r})"
    )
BIGQUERY_LOCATION = os.environ.get("BIGQUERY_LOCATION") or None
BIGQUERY_DEFAULT_DATASET = os.environ.get("BIGQUERY_DEFAULT_DATASET", "analytics")

ETL_CHUNK_ROWS = env_int("ETL_CHUNK_ROWS", 100_000)
ETL_CHECKPOINT_ROWS = env_int("ETL_CHECKPOINT_ROWS", 5_000_000)
# A first incremental/merge load of at least this many rows (estimated) is split into key ranges run as
# separate tasks (0 = never); ranges hold about ETL_SPLIT_RANGE_ROWS rows, at most ETL_SPLIT_MAX_RANGES of them.
ETL_SPLIT_MIN_ROWS = env_int("ETL_SPLIT_MIN_ROWS", 2_000_000)
ETL_SPLIT_RANGE_ROWS = env_int("ETL_SPLIT_RANGE_ROWS", 500_000)
ETL_SPLIT_MAX_RANGES = env_int("ETL_SPLIT_MAX_RANGES", 64)
# How many task workers (all machines together) can run a split load's ranges at once; a split takes 2.
ETL_TASK_WORKERS = env_int("ETL_TASK_WORKERS", 1)
ETL_VALIDATION_SAMPLE_ROWS = env_int("ETL_VALIDATION_SAMPLE_ROWS", 1_000_000)
ETL_SPOOL_DIR = Path(os.environ.get("ETL_SPOOL_DIR", DATA_DIR / "spool"))
# TEST ONLY: delay (ms) added to every live compatibility-report answer (wizard report, Edit refresh),
# to widen the window in which a report is still in flight while the user goes on. Never set it in production.
ETL_TEST_REPORT_DELAY_MS = env_int("ETL_TEST_REPORT_DELAY_MS", 0)
# TEST ONLY: milliseconds a run waits at each progress report (browser tests watch a run move).
ETL_TEST_PROGRESS_DELAY_MS = env_int("ETL_TEST_PROGRESS_DELAY_MS", 0)

# --- where a saved connection may go (README "Security model") ---------------------
# SQLite sources: only files below this directory (resolved real path), never the data directory itself.
ETL_SQLITE_ROOT = Path(os.environ.get("ETL_SQLITE_ROOT") or DATA_DIR / "sources").resolve()
if ETL_SQLITE_ROOT in (DATA_DIR.resolve(), *DATA_DIR.resolve().parents):
    raise ImproperlyConfigured(
        f"ETL_SQLITE_ROOT must not be the data directory or one of its parents (got {str(ETL_SQLITE_ROOT)!r}): "
        "point it at a directory holding only source databases"
    )
# Certificate files that connection options (sslrootcert, ssl_ca, ...) may name; unset = none.
ETL_SSL_DIR = Path(os.environ["ETL_SSL_DIR"]).resolve() if os.environ.get("ETL_SSL_DIR") else None
ETL_ALLOW_UNIX_SOCKETS = env_bool("ETL_ALLOW_UNIX_SOCKETS", False)
try:
    from ml_platform.etl.sources.policy import parse_host_rules

    ETL_SOURCE_HOSTS = parse_host_rules(os.environ.get("ETL_SOURCE_HOSTS", ""))
except ValueError as exc:
    raise ImproperlyConfigured(f"ETL_SOURCE_HOSTS: {exc}") from None
# Source calls made for a web request: a hard deadline, and caps so they cannot take every
# web thread (keep ETL_SOURCE_CALLS_PER_PROCESS below the web server's threads per process).
ETL_SOURCE_CALL_TIMEOUT = float(env_int("ETL_SOURCE_CALL_TIMEOUT", 15))
ETL_VALIDATION_TIMEOUT = float(env_int("ETL_VALIDATION_TIMEOUT", 120))
ETL_SOURCE_CALLS_PER_USER = env_int("ETL_SOURCE_CALLS_PER_USER", 3)
ETL_SOURCE_CALLS_PER_PROCESS = env_int("ETL_SOURCE_CALLS_PER_PROCESS", 3)
# A call over a cap waits this long for a slot before it is refused (bursts of quick calls queue; a stuck
# source is refused well before the next request could find every thread taken).
ETL_SOURCE_CALL_QUEUE_WAIT = env_int("ETL_SOURCE_CALL_QUEUE_WAIT_MS", 500) / 1000

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG and bool(os.environ.get("SECRET_KEY")))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
# Opt-in: both bind every subdomain (and, once preloaded, browsers for months) to HTTPS.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response. The pages have no inline script, handler or style
# (behaviour lives in static/js/app.js, htmx runs without eval and without its injected indicator
# <style>), so nothing needs 'unsafe-inline', 'unsafe-eval' or a nonce. Charts are inline SVG.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
CSRF_FAILURE_VIEW = "ml_platform.web.errors.csrf_failure"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
ETL_HEARTBEAT_TIMEOUT = env_int("ETL_HEARTBEAT_TIMEOUT", 120)
ETL_MAX_ATTEMPTS = env_int("ETL_MAX_ATTEMPTS", 3)
ETL_RETRY_BASE_SECONDS = float(env_int("ETL_RETRY_BASE_SECONDS", 10))
