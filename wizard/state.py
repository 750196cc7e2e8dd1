"""The wizard's server-side draft: load, save, and which steps are complete."""

from __future__ import annotations

from typing import Any

from ml_platform import selectors
from wizard.models import WizardDraft

STEPS = {
    1: "Select connection",
    2: "Choose source table",
    3: "Preview & select columns",
    4: "Destination & load strategy",
    5: "Schedule",
}
# What each step owns in the draft; changing a step clears what depends on it.
DEPENDENTS = {
    1: ["source_table", "columns", "destination", "destination_draft", "validation"],
    2: ["columns", "destination", "destination_draft", "validation"],
    3: ["validation"],
}


def load(user) -> WizardDraft:
    draft, _ = WizardDraft.objects.get_or_create(owner=user)
    return draft


def update(draft: WizardDraft, step: int, values: dict[str, Any]) -> None:
    data = dict(draft.data)
    changed = any(data.get(k) != v for k, v in values.items())
    if changed:
        for key in DEPENDENTS.get(step, []):
            data.pop(key, None)
    data.update(values)
    draft.data = data
    draft.save(update_fields=["data", "updated_at"])


def reset(draft: WizardDraft) -> None:
    draft.data = {}
    draft.save(update_fields=["data", "updated_at"])


def first_incomplete_step(draft: WizardDraft, scope: selectors.Scope) -> int:
    data = draft.data
    connection_id = data.get("connection_id")
    if not connection_id or not selectors.connections_in(scope=scope).filter(pk=connection_id).exists():
        return 1
    if not data.get("source_table"):
        return 2
    if not data.get("columns"):
        return 3
    if not data.get("destination"):
        return 4
    return 5
