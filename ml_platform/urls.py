from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from ml_platform.web import job_pages, pages, verify_pages, workspace_pages

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="jobs", permanent=False)),
    # Browsers ask for /favicon.ico on their own, signed in or not: point them at the static icon.
    path("favicon.ico", login_not_required(RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
         name="favicon"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("jobs/", pages.job_list, name="jobs"),
    path("jobs/<int:job_id>/", pages.job_detail, name="job_detail"),
    path("jobs/<int:job_id>/row/", pages.job_row, name="job_row"),
    path("jobs/<int:job_id>/run/", pages.job_run_now, name="job_run_now"),
    path("jobs/<int:job_id>/pause/", pages.job_pause, name="job_pause"),
    path("jobs/<int:job_id>/resume/", pages.job_resume, name="job_resume"),
    path("jobs/<int:job_id>/delete/", pages.job_delete, name="job_delete"),
    path("jobs/<int:job_id>/edit/", job_pages.job_edit, name="job_edit"),
    path("jobs/<int:job_id>/reconnect/", job_pages.job_reconnect, name="job_reconnect"),
    path("jobs/<int:job_id>/verify/", verify_pages.job_verify, name="job_verify"),
    path("jobs/<int:job_id>/verify/cancel/", verify_pages.job_verify_cancel, name="job_verify_cancel"),
    path("jobs/<int:job_id>/verify/settings/", verify_pages.job_verify_settings, name="job_verify_settings"),
    path("jobs/<int:job_id>/verification/", verify_pages.job_verification, name="job_verification"),
    path("jobs/<int:job_id>/repair/", verify_pages.job_repair, name="job_repair"),
    path("connections/", pages.connection_list, name="connections"),
    path("connections/new/", pages.connection_create, name="connection_create"),
    path("connections/test/", pages.connection_test_unsaved, name="connection_test_unsaved"),
    path("connections/<int:connection_id>/edit/", pages.connection_edit, name="connection_edit"),
    path("connections/<int:connection_id>/delete/", pages.connection_delete, name="connection_delete"),
    path("connections/<int:connection_id>/test/", pages.connection_test, name="connection_test"),
    path("workspaces/none/", workspace_pages.workspace_none, name="workspace_none"),
    path("workspaces/switch/", workspace_pages.workspace_switch, name="workspace_switch"),
    path("workspace/members/", workspace_pages.workspace_members, name="workspace_members"),
    path("workspace/members/add/", workspace_pages.member_add, name="member_add"),
    path("workspace/members/<int:membership_id>/role/", workspace_pages.member_role, name="member_role"),
    path("workspace/members/<int:membership_id>/remove/", workspace_pages.member_remove, name="member_remove"),
    path("workspace/tokens/", workspace_pages.api_tokens, name="api_tokens"),
    path("workspace/tokens/<int:token_id>/revoke/", workspace_pages.api_token_revoke, name="api_token_revoke"),
    path("workspace/datasets/new/", workspace_pages.dataset_create, name="dataset_create"),
    path("etl/", include("wizard.urls")),
    path("api/", include("ml_platform.api.urls")),
    path("admin/", admin.site.urls),
]
