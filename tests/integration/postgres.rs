//! The database source against a real PostgreSQL 15 (Debian's `postgresql`): one cluster per
//! test process (initdb in a temp dir, a free loopback port, run as the `postgres` OS user when
//! the tests run as root, since Postgres refuses root), a database per test cloned from a
//! template holding the test DDL of one Honcho schema revision (`tests/data/postgres/`) and the
//! grants of `deploy/postgres/grant.sql`, executed as is. Every exporter connection uses that
//! restricted role. A watchdog stops the cluster and removes its directory when the test
//! process ends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use honcho_exporter::config::{Secret, Settings, Source, TokenSource};
use honcho_exporter::exposition::{self, Format};
use honcho_exporter::families;
use honcho_exporter::poller::{self, SharedPublished};
use honcho_exporter::postgres::PostgresSource;
use honcho_exporter::postgres::source::initial_published;

use crate::util;

const BIN: &str = "/usr/lib/postgresql/15/bin";
const SUPERUSER_PASSWORD: &str = "superuser-secret-9f3k";
const EXPORTER_PASSWORD: &str = "exporter-secret-Zq81x";

struct Cluster {
    port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// Runs a PostgreSQL binary, as the `postgres` OS user when we are root.
fn pg_command(binary: &str) -> Command {
    let path = format!("{BIN}/{binary}");
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", &path]);
        command
    } else {
        Command::new(path)
    }
}

fn run(mut command: Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what}: {error}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(start_cluster)
}

fn start_cluster() -> Cluster {
    let dir = tempfile::Builder::new()
        .prefix("honcho-exporter-pg-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let data = dir.join("data");
    let password_file = dir.join("superuser-password");
    std::fs::write(&password_file, SUPERUSER_PASSWORD).expect("write password file");
    if is_root() {
        run(
            {
                let mut command = Command::new("chown");
                command.args(["-R", "postgres:postgres"]).arg(&dir);
                command
            },
            "chown the cluster directory",
        );
    }
    let mut initdb = pg_command("initdb");
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .arg(format!("--pwfile={}", password_file.display()))
        .args(["-E", "UTF8", "--no-sync"]);
    run(initdb, "initdb");
    let port = free_port();
    let mut start = pg_command("pg_ctl");
    start
        .arg("-D")
        .arg(&data)
        .args(["-w", "-l"])
        .arg(dir.join("log"))
        .arg("-o")
        .arg(format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c full_page_writes=off",
            dir.display()
        ))
        .arg("start");
    run(start, "pg_ctl start");
    // Stop the cluster and remove its directory when this test process ends (statics are
    // never dropped, so a watchdog does it).
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         {stop} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        stop = if is_root() {
            format!("runuser -u postgres -- {BIN}/pg_ctl")
        } else {
            format!("{BIN}/pg_ctl")
        },
        data = data.display(),
        dir = dir.display(),
    );
    let mut watchdog = Command::new("sh")
        .args(["-c", &watchdog])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the cluster watchdog");
    // Reaped if it ever ends while we live (it outlives us by design).
    std::thread::spawn(move || watchdog.wait());
    let cluster = Cluster { port };
    for (template, ddl) in [("honcho3", "honcho-3.x.sql"), ("honcho2", "honcho-2.x.sql")] {
        cluster.psql("postgres", &format!("CREATE DATABASE {template}"));
        cluster.psql_file(template, &util::data_dir().join("postgres").join(ddl), &[]);
        cluster.psql_file(
            template,
            &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/postgres/grant.sql"),
            &[("password", EXPORTER_PASSWORD)],
        );
    }
    cluster
}

impl Cluster {
    fn psql_command(&self, database: &str) -> Command {
        let mut command = Command::new(format!("{BIN}/psql"));
        command
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &self.port.to_string(), "-d", database])
            .env("PGPASSWORD", SUPERUSER_PASSWORD);
        command
    }

    /// Runs SQL as the superuser (test setup only; the exporter never connects as it).
    fn psql(&self, database: &str, sql: &str) {
        let mut command = self.psql_command(database);
        command.args(["-c", sql]);
        run(command, &format!("psql {sql}"));
    }

    fn psql_file(&self, database: &str, file: &Path, variables: &[(&str, &str)]) {
        let mut command = self.psql_command(database);
        for (name, value) in variables {
            command.args(["-v", &format!("{name}={value}")]);
        }
        command.arg("-f").arg(file);
        run(command, &format!("psql -f {}", file.display()));
    }

    /// A fresh database cloned from a revision's template.
    fn database(&self, revision: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}_{}", revision, NEXT.fetch_add(1, Ordering::SeqCst));
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {name} TEMPLATE {revision}"),
        );
        name
    }

    fn url(&self, database: &str) -> String {
        format!(
            "postgres://honcho_exporter@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }
}

fn ready() -> bool {
    util::require_tool(&format!("{BIN}/initdb"), "Debian package `postgresql`")
}

/// Settings for the database source against `database`, polling fast.
fn settings(database: &str, password: TokenSource) -> Settings {
    let mut settings = Settings::with_url(url::Url::parse("http://127.0.0.1:9").expect("url"));
    settings.source = Source::Postgres;
    settings.postgres.url = Some(cluster().url(database));
    settings.postgres.password = Some(password);
    settings.postgres.statement_timeout = Duration::from_millis(500);
    settings.poll.interval = Duration::from_millis(200);
    settings.poll.timeout = Duration::from_secs(5);
    settings.poll.max_staleness = Duration::from_secs(600);
    settings.honcho.deriver_representation_batch_max_tokens = 100;
    settings
}

fn env_password() -> TokenSource {
    TokenSource::Env(Secret::new(EXPORTER_PASSWORD.to_string()))
}

struct Harness {
    source: PostgresSource,
    published: SharedPublished,
}

impl Harness {
    fn new(settings: Settings) -> Harness {
        let settings = Arc::new(settings);
        let published: SharedPublished =
            Arc::new(RwLock::new(Arc::new(initial_published(&settings))));
        let source =
            PostgresSource::new(Arc::clone(&settings), Arc::clone(&published)).expect("source");
        Harness { source, published }
    }

    /// One cycle, then the poll-time exposition (text format).
    async fn cycle(&mut self) -> String {
        self.source.poll_once().await;
        let snapshot = &poller::current(&self.published).snapshot;
        let mut text = Vec::new();
        exposition::render(&families::poll_families(snapshot), Format::Text, &mut text);
        String::from_utf8(text).expect("utf-8")
    }
}

/// A small queue: in workspace `acme`, a stalled representation unit (2 rows, 60 tokens), a
/// representation unit exactly at the threshold (100 tokens), a claimed summary unit, a
/// session-less dream, completed rows, and an internal `deletion` row (not tracked);
/// workspace `empty` has no rows.
const QUEUE: &str = "
INSERT INTO workspaces (id, name) VALUES ('w1', 'acme'), ('w2', 'empty');
INSERT INTO sessions (id, name, workspace_name) VALUES
  ('S1aaaaaaaaaaaaaaaaaaa', 'chat \"one\"', 'acme'), ('S2aaaaaaaaaaaaaaaaaaa', 'chat-two', 'acme');
INSERT INTO messages (id, workspace_name, content, token_count) VALUES
  (1, 'acme', 'secret text', 30), (2, 'acme', 'secret text', 30), (3, 'acme', 'secret text', 100),
  (4, 'acme', 'secret text', 7);
INSERT INTO queue (session_id, payload, processed, task_type, work_unit_key, created_at, workspace_name, message_id) VALUES
  ('S1aaaaaaaaaaaaaaaaaaa', '{}', false, 'representation', 'representation:acme:chat-one:bob', '2026-01-01T00:00:00Z', 'acme', 1),
  ('S1aaaaaaaaaaaaaaaaaaa', '{}', false, 'representation', 'representation:acme:chat-one:bob', '2026-01-01T00:01:00Z', 'acme', 2),
  ('S2aaaaaaaaaaaaaaaaaaa', '{}', false, 'representation', 'representation:acme:chat-two:bob', '2026-01-01T00:02:00Z', 'acme', 3),
  ('S2aaaaaaaaaaaaaaaaaaa', '{}', false, 'summary', 'summary:acme:chat-two:None:None', '2026-01-01T00:03:00Z', 'acme', 4),
  (NULL, '{}', false, 'dream', 'dream:omni:acme:alice:bob', '2026-01-01T00:04:00Z', 'acme', NULL),
  ('S2aaaaaaaaaaaaaaaaaaa', '{}', true, 'summary', 'summary:acme:chat-two:None:None', '2026-01-01T00:00:00Z', 'acme', NULL),
  ('S2aaaaaaaaaaaaaaaaaaa', '{}', true, 'representation', 'representation:acme:chat-two:bob', '2026-01-01T00:00:00Z', 'acme', NULL),
  (NULL, '{}', false, 'deletion', 'deletion:acme:x', '2026-01-01T00:00:00Z', 'acme', NULL);
INSERT INTO active_queue_sessions (id, work_unit_key) VALUES ('a1', 'summary:acme:chat-two:None:None');
";

fn assert_has(text: &str, line: &str) {
    assert!(
        text.lines().any(|candidate| candidate == line),
        "missing {line:?} in:\n{text}"
    );
}

async fn numbers_on(revision: &str) {
    let cluster = cluster();
    let database = cluster.database(revision);
    cluster.psql(&database, QUEUE);
    let mut harness = Harness::new(settings(&database, env_password()));
    let text = harness.cycle().await;
    assert_has(&text, r#"honcho_exporter_up{upstream="postgres"} 1"#);
    assert_has(
        &text,
        r#"honcho_queue_items{workspace="acme",state="completed"} 2"#,
    );
    assert_has(
        &text,
        r#"honcho_queue_items{workspace="acme",state="in_progress"} 1"#,
    );
    assert_has(
        &text,
        r#"honcho_queue_items{workspace="acme",state="pending_stalled"} 2"#,
    );
    assert_has(
        &text,
        r#"honcho_queue_items{workspace="acme",state="pending_ready"} 2"#,
    );
    assert_has(
        &text,
        r#"honcho_queue_items{workspace="empty",state="pending_stalled"} 0"#,
    );
    assert_has(
        &text,
        r#"honcho_queue_session_items{workspace="acme",session_id="__none__",state="pending_ready"} 1"#,
    );
    assert_has(
        &text,
        r#"honcho_queue_session_info{workspace="acme",session_id="S1aaaaaaaaaaaaaaaaaaa",session_name="chat \"one\""} 1"#,
    );
    assert_has(
        &text,
        r#"honcho_queue_work_units{workspace="acme",task_type="representation",state="overdue"} 1"#,
    );
    assert_has(
        &text,
        r#"honcho_queue_work_units{workspace="acme",task_type="representation",state="ready"} 1"#,
    );
    assert_has(
        &text,
        r#"honcho_queue_work_units{workspace="acme",task_type="summary",state="in_progress"} 1"#,
    );
    assert_has(
        &text,
        r#"honcho_queue_pending_tokens{workspace="acme",task_type="representation",state="overdue"} 60"#,
    );
    assert_has(
        &text,
        r#"honcho_queue_tokens_until_threshold{workspace="acme",task_type="representation"} 40"#,
    );
    assert_has(&text, "honcho_deriver_representation_batch_max_tokens 100");
    assert_has(&text, r#"honcho_exporter_source{source="postgres"} 1"#);
    let honcho = if revision == "honcho3" { "3.x" } else { "2.x" };
    assert!(
        text.contains(&format!("honcho=\"{honcho}\"")),
        "schema revision of {honcho}:\n{text}"
    );
    assert!(!text.contains("secret text") && !text.contains(EXPORTER_PASSWORD));
}

#[tokio::test]
async fn honcho_3_schema_gives_every_generation_c_number() {
    if !ready() {
        return;
    }
    numbers_on("honcho3").await;
}

#[tokio::test]
async fn honcho_2_schema_gives_every_generation_c_number() {
    if !ready() {
        return;
    }
    numbers_on("honcho2").await;
}

/// The reason counted on the last failed cycle.
fn error_count(text: &str, reason: &str) -> u64 {
    let prefix =
        format!(r#"honcho_exporter_poll_errors_total{{upstream="postgres",reason="{reason}"}} "#);
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_wrong_password_is_auth_and_a_rotated_password_file_recovers() {
    if !ready() {
        return;
    }
    let cluster = cluster();
    let database = cluster.database("honcho3");
    cluster.psql(&database, QUEUE);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("password");
    std::fs::write(&file, "wrong-password-77\n").expect("write");
    let mut harness = Harness::new(settings(&database, TokenSource::File(file.clone())));
    let text = harness.cycle().await;
    assert_has(&text, r#"honcho_exporter_up{upstream="postgres"} 0"#);
    assert_eq!(error_count(&text, "auth"), 1, "{text}");
    assert!(
        !text.contains("honcho_queue_items{"),
        "no queue numbers without a read"
    );
    assert!(!text.contains("wrong-password-77"));
    std::fs::write(&file, format!("{EXPORTER_PASSWORD}\n")).expect("rotate");
    let text = harness.cycle().await;
    assert_has(&text, r#"honcho_exporter_up{upstream="postgres"} 1"#);
    assert!(text.contains(r#"honcho_queue_items{workspace="acme",state="completed"} 2"#));
    assert!(!text.contains(EXPORTER_PASSWORD));
}

#[tokio::test]
async fn a_database_that_is_down_is_connect() {
    if !ready() {
        return;
    }
    let mut settings = settings("honcho3", env_password());
    settings.postgres.url = Some(format!(
        "postgres://honcho_exporter@127.0.0.1:{}/honcho3?sslmode=disable",
        free_port()
    ));
    let mut harness = Harness::new(settings);
    let text = harness.cycle().await;
    assert_has(&text, r#"honcho_exporter_up{upstream="postgres"} 0"#);
    assert_eq!(error_count(&text, "connect"), 1, "{text}");
}

#[tokio::test]
async fn a_revoked_column_is_permission_a_dropped_one_is_schema_and_both_recover() {
    if !ready() {
        return;
    }
    let cluster = cluster();
    let database = cluster.database("honcho3");
    cluster.psql(&database, QUEUE);
    let mut harness = Harness::new(settings(&database, env_password()));
    assert!(
        harness
            .cycle()
            .await
            .contains(r#"honcho_exporter_up{upstream="postgres"} 1"#)
    );

    cluster.psql(
        &database,
        "REVOKE SELECT (token_count) ON messages FROM honcho_exporter",
    );
    let text = harness.cycle().await;
    assert_has(&text, r#"honcho_exporter_up{upstream="postgres"} 0"#);
    assert_eq!(error_count(&text, "permission"), 1, "{text}");
    cluster.psql(
        &database,
        "GRANT SELECT (token_count) ON messages TO honcho_exporter",
    );
    assert!(
        harness
            .cycle()
            .await
            .contains(r#"honcho_exporter_up{upstream="postgres"} 1"#)
    );

    cluster.psql(
        &database,
        "ALTER TABLE queue RENAME COLUMN work_unit_key TO unit_key",
    );
    let text = harness.cycle().await;
    assert_has(&text, r#"honcho_exporter_up{upstream="postgres"} 0"#);
    assert_eq!(error_count(&text, "schema"), 1, "{text}");
    cluster.psql(
        &database,
        "ALTER TABLE queue RENAME COLUMN unit_key TO work_unit_key",
    );
    let text = harness.cycle().await;
    assert_has(&text, r#"honcho_exporter_up{upstream="postgres"} 1"#);
}

#[tokio::test]
async fn a_lock_held_past_the_statement_timeout_is_timeout_and_then_recovers() {
    if !ready() {
        return;
    }
    let cluster = cluster();
    let database = cluster.database("honcho3");
    cluster.psql(&database, QUEUE);
    let mut harness = Harness::new(settings(&database, env_password()));
    // Hold an exclusive lock on the queue for 3 s from another session.
    let mut locker = cluster.psql_command(&database);
    locker.args([
        "-c",
        "BEGIN; LOCK TABLE queue IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;",
    ]);
    locker.stdout(std::process::Stdio::null());
    let mut locker = locker.spawn().expect("locker");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let text = harness.cycle().await;
    assert_has(&text, r#"honcho_exporter_up{upstream="postgres"} 0"#);
    assert_eq!(error_count(&text, "timeout"), 1, "{text}");
    locker.wait().expect("locker ends");
    let text = harness.cycle().await;
    assert_has(&text, r#"honcho_exporter_up{upstream="postgres"} 1"#);
}
