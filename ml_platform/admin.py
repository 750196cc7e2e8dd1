from django.contrib import admin

from ml_platform.models import Connection, EtlJob, JobRun


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "engine", "host", "database", "last_test_ok"]
    # The password is write-only everywhere, the admin included.
    exclude = ["password"]


@admin.register(EtlJob)
class EtlJobAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "connection", "destination_dataset", "destination_table", "status"]


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "status", "started_at", "finished_at", "rows_loaded"]
