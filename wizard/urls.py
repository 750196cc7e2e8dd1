from django.urls import path

from wizard import views

app_name = "wizard"

urlpatterns = [
    path("new/", views.start, name="start"),
    path("new/reset/", views.reset, name="reset"),
    path("new/step/<int:n>/", views.step, name="step"),
    path("new/report/", views.report, name="report"),
    path("new/draft/", views.save_draft, name="draft"),
    path("new/tables/", views.tables, name="tables"),
    path("new/cron-preview/", views.cron_preview, name="cron_preview"),
]
