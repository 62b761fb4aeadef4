#!/usr/bin/env python3
"""A minimal Django project for the migrate tests (tests/test_migrate.py): one app, `features`,
whose one migration adds a column to the incident's table. The database comes from the
environment (DJANGO_DB_NAME, DJANGO_DB_HOST, DJANGO_DB_PORT), PostgreSQL through psycopg2."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
