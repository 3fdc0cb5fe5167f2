-- The least-privilege role of honcho_exporter's database source (source: postgres).
--
-- It may read exactly the columns the exporter's one-pass query needs, and nothing that holds
-- users' data: NOT queue.payload, NOT messages.content (column-level GRANT SELECT; there is no
-- table-level grant). Run as the owner of Honcho's tables, in Honcho's database:
--
--   psql "$HONCHO_DATABASE_URL" -v password="$(cat exporter-password)" -f grant.sql
--
-- then give the exporter postgres.url=postgres://honcho_exporter@HOST:5432/DB?sslmode=verify-full
-- and the password through postgres.password_file or HONCHO_EXPORTER_POSTGRES_PASSWORD.
-- The tests of the database source run as this role, created by this file.
-- Without -v password=…, the role is created without a password (for certificate or peer
-- logins); set one later with ALTER ROLE.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'honcho_exporter') THEN
        CREATE ROLE honcho_exporter LOGIN;
    END IF;
END
$$;
\if :{?password}
ALTER ROLE honcho_exporter PASSWORD :'password';
\endif
-- Read-only by default, and a short leash on runaway statements (the exporter also sets
-- statement_timeout per transaction).
ALTER ROLE honcho_exporter SET default_transaction_read_only = on;
ALTER ROLE honcho_exporter CONNECTION LIMIT 4;

GRANT USAGE ON SCHEMA public TO honcho_exporter;
GRANT SELECT (version_num) ON alembic_version TO honcho_exporter;
GRANT SELECT (work_unit_key, task_type, session_id, processed, created_at, workspace_name,
              message_id) ON queue TO honcho_exporter;
GRANT SELECT (id, token_count) ON messages TO honcho_exporter;
GRANT SELECT (work_unit_key) ON active_queue_sessions TO honcho_exporter;
GRANT SELECT (id, name) ON sessions TO honcho_exporter;
GRANT SELECT (name) ON workspaces TO honcho_exporter;
