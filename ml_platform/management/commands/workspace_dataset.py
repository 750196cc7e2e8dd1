"""Assign an existing BigQuery dataset to a workspace (a site administrator's task)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ml_platform.models import Workspace, WorkspaceDataset
from ml_platform.services import workspaces


class Command(BaseCommand):
    help = "Give a BigQuery dataset to a workspace (each dataset belongs to exactly one), or list the assignments."

    def add_arguments(self, parser) -> None:
        parser.add_argument("workspace", nargs="?", help="workspace name")
        parser.add_argument("dataset", nargs="?", help="BigQuery dataset id")
        parser.add_argument("--create-workspace", action="store_true", help="create the workspace if missing")

    def handle(self, *args, **options) -> None:
        if not options["workspace"]:
            for row in WorkspaceDataset.objects.select_related("workspace").order_by("workspace__name", "dataset"):
                self.stdout.write(f"{row.workspace.name}\t{row.dataset}")
            return
        if not options["dataset"]:
            raise CommandError("Name the dataset to assign.")
        workspace = Workspace.objects.filter(name=options["workspace"]).first()
        if workspace is None:
            if not options["create_workspace"]:
                raise CommandError(f"No workspace {options['workspace']!r} (use --create-workspace).")
            workspace = Workspace.objects.create(name=options["workspace"])
        try:
            workspaces.dataset_assign(workspace=workspace, dataset=options["dataset"])
        except workspaces.DatasetTaken as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Dataset {options['dataset']!r} belongs to {workspace.name!r}."))
