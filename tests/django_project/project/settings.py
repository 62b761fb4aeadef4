"""Settings of the test project: only what `manage.py migrate` needs."""
import os

# Not a secret: the project serves nothing; Django refuses to start without a key.
SECRET_KEY = "pg-lock-exporter-tests-only"
DEBUG = False
INSTALLED_APPS = ["features"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        # psycopg2: libpq reads PGOPTIONS and PGAPPNAME, as the guard expects of Django.
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["DJANGO_DB_NAME"],
        "USER": os.environ.get("DJANGO_DB_USER", "postgres"),
        "HOST": os.environ.get("DJANGO_DB_HOST", "127.0.0.1"),
        "PORT": os.environ["DJANGO_DB_PORT"],
    }
}
