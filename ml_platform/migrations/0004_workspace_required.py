import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ml_platform", "0003_personal_workspaces")]

    operations = [
        migrations.AlterField(
            model_name="connection",
            name="workspace",
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="connections",
                                    to="ml_platform.workspace"),
        ),
        migrations.AlterField(
            model_name="etljob",
            name="workspace",
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="jobs",
                                    to="ml_platform.workspace"),
        ),
    ]
