"""The migration the incident is about: a column added to `features`, which needs the
AccessExclusiveLock a forgotten transaction's AccessShareLock holds up."""
from django.db import migrations


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.RunSQL("ALTER TABLE features ADD COLUMN signature text", "ALTER TABLE features DROP COLUMN signature"),
    ]
