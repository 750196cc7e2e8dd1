from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ml_platform", "0004_workspace_required")]

    operations = [
        migrations.AddField(
            model_name="etljob",
            name="load_plan",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
