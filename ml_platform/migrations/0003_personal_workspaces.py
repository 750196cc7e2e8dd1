from django.conf import settings
from django.db import migrations


def personal_workspaces(apps, schema_editor):
    """Every existing user gets a personal workspace (admin) holding what they owned, and the datasets their
    jobs load into (a dataset loaded by several users' jobs goes to the first one's workspace)."""
    app_label, model_name = settings.AUTH_USER_MODEL.split(".")
    User = apps.get_model(app_label, model_name)
    Workspace = apps.get_model("ml_platform", "Workspace")
    Membership = apps.get_model("ml_platform", "Membership")
    WorkspaceDataset = apps.get_model("ml_platform", "WorkspaceDataset")
    Connection = apps.get_model("ml_platform", "Connection")
    EtlJob = apps.get_model("ml_platform", "EtlJob")
    for user in User.objects.order_by("pk"):
        name = user.username
        if Workspace.objects.filter(name=name).exists():
            name = f"{user.username} ({user.pk})"
        workspace = Workspace.objects.create(name=name)
        Membership.objects.create(workspace=workspace, user=user, role="admin")
        Connection.objects.filter(owner=user).update(workspace=workspace)
        EtlJob.objects.filter(owner=user).update(workspace=workspace)
    for job in EtlJob.objects.order_by("created_at", "pk"):
        WorkspaceDataset.objects.get_or_create(dataset=job.destination_dataset,
                                               defaults={"workspace_id": job.workspace_id})


class Migration(migrations.Migration):
    dependencies = [("ml_platform", "0002_workspaces")]

    operations = [migrations.RunPython(personal_workspaces, migrations.RunPython.noop)]
