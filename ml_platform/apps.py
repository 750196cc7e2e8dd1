from django.apps import AppConfig


class MlPlatformConfig(AppConfig):
    name = "ml_platform"
    verbose_name = "ETL platform"
