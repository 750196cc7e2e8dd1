from django.core.management.base import BaseCommand

from ml_platform.services import connections


class Command(BaseCommand):
    help = "Re-encrypt stored connection secrets with the first key of FIELD_ENCRYPTION_KEYS."

    def handle(self, *args, **options) -> None:
        count = connections.secrets_rotate()
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} secret(s)"))
