from django.contrib import admin

from ml_platform.models import ApiToken, AuditEvent, Connection, EtlJob, JobRun, Membership, Workspace, WorkspaceDataset


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "owner", "engine", "host", "database", "last_test_ok"]
    # The password is write-only everywhere, the admin included.
    exclude = ["password"]


@admin.register(EtlJob)
class EtlJobAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "owner", "connection", "destination_dataset", "destination_table", "status"]


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "status", "started_at", "finished_at", "rows_loaded"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


class DatasetInline(admin.TabularInline):
    model = WorkspaceDataset
    extra = 0


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    inlines = [MembershipInline, DatasetInline]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "workspace", "actor_name", "action", "target_type", "target_name"]
    list_filter = ["workspace", "action", "target_type"]
    # Deleted objects keep their events: find them by the name they had.
    search_fields = ["target_name", "actor_name", "action"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "user", "workspace", "created_at", "last_used_at", "revoked_at"]
    # The digest is all that is stored; it is still not shown.
    exclude = ["digest"]
    readonly_fields = ["prefix", "user", "workspace", "created_at", "last_used_at"]
