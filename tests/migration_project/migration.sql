-- The same migration for psql: psql -v ON_ERROR_STOP=1 -f migration.sql
BEGIN;
ALTER TABLE features ADD COLUMN signature text;
COMMIT;
