"""The Celery application for the scale-out task backend.

Used only when TASKS_BACKEND=django_tasks_celery.CeleryBackend: the web app
enqueues `run_etl_job` through Django's task framework, any number of
`celery -A ml_platform.celery_app worker` processes execute it.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ml_platform.settings")

app = Celery("ml_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
