from __future__ import annotations

from django.conf import settings
from django.db import models


class WizardDraft(models.Model):
    """The wizard's state, on the server: one draft per user, so reload, back/forward and a second tab agree."""

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wizard_draft")
    data = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"wizard draft of {self.owner_id}"
