#!/bin/sh
# Runs once, inside the postgres container, when the database volume is
# first initialised (/docker-entrypoint-initdb.d).  Keep it idempotent and
# free of secrets: the password comes from POSTGRES_PASSWORD, never from here.
set -eu

psql -v ON_ERROR_STOP=1 -v dbname="$POSTGRES_DB" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
-- Timestamps in UTC whatever the Pi's time zone.
ALTER DATABASE :"dbname" SET timezone TO 'UTC';
SQL
echo "init-db: database ${POSTGRES_DB} initialised"
