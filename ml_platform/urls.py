from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from ml_platform import pages, views

api_patterns = [
    path("jobs/", views.api_jobs, name="api_jobs"),
    path("jobs/<int:job_id>/", views.api_job_detail, name="api_job_detail"),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="jobs", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("jobs/", pages.jobs, name="jobs"),
    path("connections/", pages.connections, name="connections"),
    path("etl/", include("wizard.urls")),
    path("api/etl/", include(api_patterns)),
    path("admin/", admin.site.urls),
]
