//! The database source against a real PostgreSQL 15 (Debian's `postgresql`): one cluster per
//! test process (initdb in a temp dir, a free loopback port, run as the `postgres` OS user when
//! the tests run as root, since Postgres refuses root), a database per test cloned from a
//! template holding the test DDL of one Honcho schema revision (`tests/data/postgres/`) and the
//! grants of `deploy/postgres/grant.sql`, executed as is. Every exporter connection uses that
//! restricted role. A watchdog stops the cluster and removes its directory when the test
//! process ends.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use honcho_exporter::config::postgres_url::ConnectOptions;
use honcho_exporter::config::{Secret, Settings, Source, TokenSource};
use honcho_exporter::exposition::{self, Format};
use honcho_exporter::families;
use honcho_exporter::publication::{self, SharedPublished};
use honcho_exporter::source::initial_publication;
use honcho_exporter::source::postgres::PostgresSource;

use crate::util;

const BIN: &str = "/usr/lib/postgresql/15/bin";
const SUPERUSER_PASSWORD: &str = "superuser-secret-9f3k";
pub(crate) const EXPORTER_PASSWORD: &str = "exporter-secret-Zq81x";

pub(crate) struct Cluster {
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

pub(crate) fn cluster() -> &'static Cluster {
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
    pub(crate) fn psql(&self, database: &str, sql: &str) {
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

    /// The unaligned, tuples-only output of one query run as the superuser.
    fn query(&self, database: &str, sql: &str) -> String {
        let mut command = self.psql_command(database);
        command.args(["-A", "-t", "-c", sql]);
        let output = command
            .output()
            .unwrap_or_else(|error| panic!("psql {sql}: {error}"));
        assert!(
            output.status.success(),
            "psql {sql} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// The relation locks on `database`'s `queue` table in `pg_locks`, as (held by the locking
    /// session in access exclusive mode, waiting), for tests that must see a lock held before
    /// relying on it.
    fn queue_locks(&self, database: &str) -> (u64, u64) {
        let counts = self.query(
            database,
            "SELECT count(*) FILTER (WHERE granted AND mode = 'AccessExclusiveLock'), \
             count(*) FILTER (WHERE NOT granted) FROM pg_locks \
             WHERE locktype = 'relation' AND relation = 'queue'::regclass \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        );
        let (held, waiting) = counts.split_once('|').expect("two counts");
        (
            held.parse().expect("a count"),
            waiting.parse().expect("a count"),
        )
    }

    /// Waits (bounded, failing loudly) until `accept` holds for [`Cluster::queue_locks`].
    fn await_queue_locks(&self, database: &str, what: &str, accept: impl Fn(u64, u64) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (held, waiting) = self.queue_locks(database);
            if accept(held, waiting) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not within 20 s: {what} (pg_locks on queue: {held} held exclusively, {waiting} waiting)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A fresh database cloned from a revision's template.
    pub(crate) fn database(&self, revision: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}_{}", revision, NEXT.fetch_add(1, Ordering::SeqCst));
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {name} TEMPLATE {revision}"),
        );
        name
    }

    pub(crate) fn url(&self, database: &str) -> String {
        format!(
            "postgres://honcho_exporter@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }
}

pub(crate) fn ready() -> bool {
    util::require_tool(&format!("{BIN}/initdb"), "Debian package `postgresql`")
}

/// Settings for the database source against `database`, polling fast.
fn settings(database: &str, password: TokenSource) -> Settings {
    let mut settings = Settings::with_url(url::Url::parse("http://127.0.0.1:9").expect("url"));
    settings.source = Source::Postgres;
    settings.postgres.url = Some(
        ConnectOptions::parse(&cluster().url(database)).expect("the test cluster's URL is valid"),
    );
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
            Arc::new(RwLock::new(Arc::new(initial_publication(&settings))));
        let source =
            PostgresSource::new(Arc::clone(&settings), Arc::clone(&published)).expect("source");
        Harness { source, published }
    }

    /// One cycle, then the poll-time exposition (text format).
    async fn cycle(&mut self) -> String {
        self.source.poll_once().await;
        let snapshot = publication::current(&self.published).snapshot(publication::unix_now());
        let mut text = Vec::new();
        exposition::render(&families::poll_families(&snapshot), Format::Text, &mut text);
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

/// The database source's health line when the last cycle worked, and when it failed.
const POSTGRES_UP: &str = r#"honcho_exporter_up{upstream="postgres"} 1"#;
const POSTGRES_DOWN: &str = r#"honcho_exporter_up{upstream="postgres"} 0"#;

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
    assert_has(&text, POSTGRES_UP);
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

#[tokio::test]
async fn beyond_the_workspace_ceiling_the_database_source_exports_other_with_exact_sums() {
    if !ready() {
        return;
    }
    let cluster = cluster();
    let database = cluster.database("honcho3");
    cluster.psql(&database, QUEUE);
    let mut settings = settings(&database, env_password());
    settings.export.max_exported_workspaces = 1;
    let mut harness = Harness::new(settings);
    let text = harness.cycle().await;
    // acme has the backlog and is exported in full; empty is the whole of __other__.
    assert_has(
        &text,
        r#"honcho_queue_items{workspace="acme",state="pending_ready"} 2"#,
    );
    assert_has(
        &text,
        r#"honcho_queue_items{workspace="__other__",state="pending_stalled"} 0"#,
    );
    assert!(
        !text.contains(r#"workspace="empty""#),
        "a folded workspace has no series of its own:\n{text}"
    );
    assert_has(&text, "honcho_exporter_workspaces 2");
    assert_has(&text, "honcho_exporter_workspaces_rolled_up 1");
    assert_has(
        &text,
        r#"honcho_exporter_series_capped_total{family="workspaces"} 1"#,
    );
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

/// A harness on the honcho3 queue whose password comes from a file holding `password` (the
/// directory lives as long as the harness is used).
fn harness_with_password_file(password: &str) -> (Harness, tempfile::TempDir, PathBuf) {
    let cluster = cluster();
    let database = cluster.database("honcho3");
    cluster.psql(&database, QUEUE);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{password}\n")).expect("write");
    let harness = Harness::new(settings(&database, TokenSource::File(file.clone())));
    (harness, dir, file)
}

#[tokio::test]
async fn a_wrong_password_is_auth_and_a_rotated_password_file_recovers() {
    if !ready() {
        return;
    }
    let (mut harness, _dir, file) = harness_with_password_file("wrong-password-77");
    let text = harness.cycle().await;
    assert_has(&text, POSTGRES_DOWN);
    assert_eq!(error_count(&text, "auth"), 1, "{text}");
    assert!(
        !text.contains("honcho_queue_items{"),
        "no queue numbers without a read"
    );
    assert!(!text.contains("wrong-password-77"));
    std::fs::write(&file, format!("{EXPORTER_PASSWORD}\n")).expect("rotate");
    let text = harness.cycle().await;
    assert_has(&text, POSTGRES_UP);
    assert!(text.contains(r#"honcho_queue_items{workspace="acme",state="completed"} 2"#));
    assert!(!text.contains(EXPORTER_PASSWORD));
}

#[tokio::test]
async fn a_database_that_is_down_is_connect() {
    if !ready() {
        return;
    }
    let mut settings = settings("honcho3", env_password());
    settings.postgres.url = Some(
        ConnectOptions::parse(&format!(
            "postgres://honcho_exporter@127.0.0.1:{}/honcho3?sslmode=disable",
            free_port()
        ))
        .expect("valid URL"),
    );
    let mut harness = Harness::new(settings);
    let text = harness.cycle().await;
    assert_has(&text, POSTGRES_DOWN);
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
    assert_has(&harness.cycle().await, POSTGRES_UP);

    cluster.psql(
        &database,
        "REVOKE SELECT (token_count) ON messages FROM honcho_exporter",
    );
    let text = harness.cycle().await;
    assert_has(&text, POSTGRES_DOWN);
    assert_eq!(error_count(&text, "permission"), 1, "{text}");
    cluster.psql(
        &database,
        "GRANT SELECT (token_count) ON messages TO honcho_exporter",
    );
    assert_has(&harness.cycle().await, POSTGRES_UP);

    cluster.psql(
        &database,
        "ALTER TABLE queue RENAME COLUMN work_unit_key TO unit_key",
    );
    let text = harness.cycle().await;
    assert_has(&text, POSTGRES_DOWN);
    assert_eq!(error_count(&text, "schema"), 1, "{text}");
    cluster.psql(
        &database,
        "ALTER TABLE queue RENAME COLUMN unit_key TO work_unit_key",
    );
    let text = harness.cycle().await;
    assert_has(&text, POSTGRES_UP);
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
    // Hold an exclusive lock on the queue from another session until this test releases it.
    let mut locker = cluster.psql_command(&database);
    locker
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut locker = locker.spawn().expect("locker");
    let mut locker_input = locker.stdin.take().expect("the locker's stdin is piped");
    locker_input
        .write_all(b"BEGIN;\nLOCK TABLE queue IN ACCESS EXCLUSIVE MODE;\n")
        .expect("send the lock to the locker");
    locker_input.flush().expect("flush the locker's input");
    cluster.await_queue_locks(
        &database,
        "the locker holds the queue's access exclusive lock",
        |held, _| held == 1,
    );
    let text = harness.cycle().await;
    assert_has(&text, POSTGRES_DOWN);
    assert_eq!(error_count(&text, "timeout"), 1, "{text}");
    locker_input
        .write_all(b"COMMIT;\n")
        .expect("send the commit to the locker");
    drop(locker_input);
    let status = locker.wait().expect("locker ends");
    assert!(status.success(), "the locker's psql failed: {status}");
    let text = harness.cycle().await;
    assert_has(&text, POSTGRES_UP);
}

// ---------------------------------------------------------------------------------------------
// Equivalence: the same queue state in the simulator (served over HTTP as generation C) and in
// Postgres (as Honcho's 3.x tables) gives the same pinned families.

mod equivalence {
    use super::*;
    use honcho_exporter::config::Scope;
    use honcho_exporter::honcho::Client;
    use honcho_exporter::snapshot::{roll_up, select_exported};
    use honcho_exporter::source::api::Poller;
    use honcho_sim::{
        Generation, LoadedTask, LoadedUnit, LoadedWorkspace, QueueState, Simulator, SimulatorConfig,
    };
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// splitmix64: a small deterministic generator driven by proptest's seed.
    struct Draw(u64);

    impl Draw {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound.max(1)
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    /// Peer and session names, some needing label escaping (`"` and `\`); no `:` (Honcho's
    /// names never hold one, and work unit keys are split on it).
    const PEERS: &[&str] = &["alice", "bob", "agent \"x\"", "back\\slash", "carol"];
    const SESSIONS: &[&str] = &[
        "chat-1",
        "chat \"two\"",
        "c\\3",
        "chat-4",
        "chat-5",
        "chat-6",
    ];

    struct Generated {
        state: QueueState,
        threshold: u32,
        flush: bool,
    }

    /// A random queue state; `many`: 4–6 workspaces, a quarter of them without rows (for the
    /// ceiling), else 1–3.
    fn generate(seed: u64, now_micros: i64, many: bool) -> Generated {
        let mut draw = Draw(seed);
        let threshold = [50u32, 100, 300][draw.below(3) as usize];
        let flush = draw.chance(20);
        let mut workspaces = Vec::new();
        let first = if many { 4 } else { 1 };
        for w in 0..first + draw.below(3) {
            let name = format!("ws-{w}");
            let session_count = 1 + draw.below(SESSIONS.len() as u64) as usize;
            let sessions: Vec<(String, String)> = (0..session_count)
                .map(|s| {
                    (
                        format!("S{w}{s}{}", "x".repeat(18)),
                        SESSIONS[s].to_string(),
                    )
                })
                .collect();
            let mut units: Vec<LoadedUnit> = Vec::new();
            let mut identities = std::collections::HashSet::new();
            let unit_count = if many && draw.chance(25) {
                0
            } else {
                draw.below(14)
            };
            for _ in 0..unit_count {
                let task = match draw.below(5) {
                    0 => LoadedTask::Summary,
                    1 => LoadedTask::Dream,
                    _ => LoadedTask::Representation,
                };
                let session =
                    (task != LoadedTask::Dream).then(|| draw.below(session_count as u64) as usize);
                let observer = (task == LoadedTask::Dream)
                    .then(|| PEERS[draw.below(PEERS.len() as u64) as usize].to_string());
                let observed = (task != LoadedTask::Summary)
                    .then(|| PEERS[draw.below(PEERS.len() as u64) as usize].to_string());
                if !identities.insert((task as u8, session, observer.clone(), observed.clone())) {
                    continue;
                }
                // Honcho 3.x keeps at most one pending dream row per key (a partial unique
                // index).
                let pending_items = if draw.chance(20) {
                    0
                } else if task == LoadedTask::Dream {
                    1
                } else {
                    1 + draw.below(5) as u32
                };
                // Tokens around the threshold, exactly at it included.
                let pending_tokens = match draw.below(4) {
                    0 => threshold,
                    1 => threshold - 1,
                    2 => threshold + 1,
                    _ => draw.below(u64::from(threshold) * 2) as u32,
                };
                // Ages well away from the overdue boundary (1815 s): the two cycles run a few
                // milliseconds apart.
                let age_seconds = if draw.chance(50) {
                    30 + draw.below(1000)
                } else {
                    3000 + draw.below(80_000)
                } as i64;
                let oldest_micros =
                    now_micros - age_seconds * 1_000_000 - draw.below(1_000_000) as i64;
                units.push(LoadedUnit {
                    task,
                    session,
                    observer,
                    observed,
                    pending_items,
                    pending_tokens: if pending_items == 0 {
                        0
                    } else {
                        pending_tokens
                    },
                    in_progress: pending_items > 0 && draw.chance(25),
                    oldest_micros,
                    newest_micros: oldest_micros + draw.below(20_000_000) as i64,
                    completed_items: if pending_items == 0 || draw.chance(30) {
                        1 + draw.below(4) as u32
                    } else {
                        0
                    },
                });
            }
            workspaces.push(LoadedWorkspace {
                name,
                sessions,
                units,
            });
        }
        Generated {
            state: QueueState { workspaces },
            threshold,
            flush,
        }
    }

    fn literal(text: &str) -> String {
        format!("'{}'", text.replace('\'', "''"))
    }

    fn timestamp(micros: i64) -> String {
        format!("(timestamptz 'epoch' + interval '{micros} microseconds')")
    }

    /// The same state as Honcho's rows, plus rows of untracked task types (which neither the
    /// API on 3.x nor the database source counts).
    fn load_sql(state: &QueueState) -> String {
        let mut sql = String::new();
        let mut message_id = 0u64;
        for workspace in &state.workspaces {
            let ws = literal(&workspace.name);
            sql += &format!("INSERT INTO workspaces (id, name) VALUES ({ws}, {ws});\n");
            for (id, name) in &workspace.sessions {
                sql += &format!(
                    "INSERT INTO sessions (id, name, workspace_name) VALUES ({}, {}, {ws});\n",
                    literal(id),
                    literal(name)
                );
            }
            for unit in &workspace.units {
                let key = literal(&workspace.work_unit_key(unit));
                let task = match unit.task {
                    LoadedTask::Representation => "representation",
                    LoadedTask::Summary => "summary",
                    LoadedTask::Dream => "dream",
                };
                let session = unit.session.map_or("NULL".to_string(), |index| {
                    literal(&workspace.sessions[index].0)
                });
                for row in 0..unit.pending_items {
                    message_id += 1;
                    let tokens = if row == 0 { unit.pending_tokens } else { 0 };
                    let created = if row + 1 == unit.pending_items && row > 0 {
                        unit.newest_micros
                    } else {
                        unit.oldest_micros
                    };
                    sql += &format!(
                        "INSERT INTO messages (id, workspace_name, content, token_count) VALUES ({message_id}, {ws}, 'private', {tokens});\n\
                         INSERT INTO queue (session_id, payload, processed, task_type, work_unit_key, created_at, workspace_name, message_id) \
                         VALUES ({session}, '{{}}', false, '{task}', {key}, {}, {ws}, {message_id});\n",
                        timestamp(created)
                    );
                }
                for _ in 0..unit.completed_items {
                    sql += &format!(
                        "INSERT INTO queue (session_id, payload, processed, task_type, work_unit_key, workspace_name) \
                         VALUES ({session}, '{{}}', true, '{task}', {key}, {ws});\n"
                    );
                }
                if unit.in_progress && unit.pending_items > 0 {
                    sql += &format!(
                        "INSERT INTO active_queue_sessions (id, work_unit_key) VALUES (md5({key}), {key});\n"
                    );
                }
            }
            sql += &format!(
                "INSERT INTO queue (payload, task_type, work_unit_key, workspace_name) VALUES \
                 ('{{}}', 'deletion', 'deletion:x', {ws}), ('{{}}', 'webhook', 'webhook:y', {ws});\n"
            );
        }
        sql
    }

    fn scopes() -> Vec<Scope> {
        let scope = |name: &str,
                     observer: Option<&str>,
                     sender: Option<&str>,
                     session: Option<&str>| Scope {
            name: name.to_string(),
            workspaces: Vec::new(),
            observer_id: observer.map(str::to_string),
            sender_id: sender.map(str::to_string),
            session_id: session.map(str::to_string),
        };
        vec![
            scope("observer-alice", Some("alice"), None, None),
            scope("alice-or-bob", Some("alice"), Some("bob"), None),
            scope(
                "quoted-session",
                None,
                Some("agent \"x\""),
                Some("chat \"two\""),
            ),
        ]
    }

    /// The pinned families' sample lines.
    fn pinned(text: &str) -> Vec<String> {
        text.lines()
            .filter(|line| line.starts_with("honcho_queue_") || line.starts_with("honcho_deriver_"))
            .map(str::to_string)
            .collect()
    }

    /// The same state through both sources; `ceiling` > 0: the database source runs with
    /// `workspaces.max_exported = ceiling` (its query folds what the ceiling cannot choose) and
    /// the API side's complete snapshot goes through the ceiling's own rules, from no history.
    async fn compare(seed: u64, ceiling: usize) {
        let now_micros = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_micros(),
        )
        .expect("fits");
        let generated = generate(seed, now_micros, ceiling > 0);
        let state = &generated.state;

        // The simulator, as generation C, through the API poller.
        let config = SimulatorConfig {
            batch_max_tokens: generated.threshold,
            flush_enabled: generated.flush,
            ..SimulatorConfig::recorded(Generation::C)
        };
        let simulator = Simulator::start_with_state(config, state)
            .await
            .expect("simulator");
        let mut api_settings = Settings::with_url(url::Url::parse(&simulator.url()).expect("url"));
        api_settings.sessions.max_per_workspace = 3;
        api_settings.work_units.detail_limit = 4;
        api_settings.scopes = scopes();
        api_settings.poll.interval = Duration::from_millis(300);
        api_settings.poll.timeout = Duration::from_millis(250);
        api_settings.poll.max_staleness = Duration::from_secs(60);
        let api_settings = Arc::new(api_settings);
        let published: SharedPublished = Arc::new(RwLock::new(Arc::new(
            honcho_exporter::source::initial_publication(&api_settings),
        )));
        let client = Client::from_settings(&api_settings).expect("client");
        let poller = Poller::new(Arc::clone(&api_settings), client, Arc::clone(&published));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(poller.run(async move {
            let _ = stopped.await;
        }));
        // Until every workspace has its status, every scope and a complete walk.
        let complete = |snapshot: &honcho_exporter::snapshot::Snapshot| {
            snapshot.workspaces.len() == state.workspaces.len()
                && snapshot.workspaces.values().all(|workspace| {
                    workspace.status.is_some()
                        && workspace.work_units.is_some()
                        && !workspace.head_only
                        && workspace.scopes.len() == scopes().len()
                })
        };
        let mut api_snapshot = None;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let snapshot = publication::current(&published).snapshot(publication::unix_now());
            if complete(&snapshot) {
                api_snapshot = Some(snapshot);
                break;
            }
        }
        let _ = stop.send(());
        let _ = running.await;
        let mut api_snapshot =
            api_snapshot.expect("the API poller completed a walk of every workspace");
        if ceiling > 0 {
            let exported = select_exported(&api_snapshot, ceiling, &BTreeSet::new())
                .expect("a ceiling chooses");
            roll_up(&mut api_snapshot, &exported);
        }
        let mut api_text = Vec::new();
        exposition::render(
            &families::poll_families(&api_snapshot),
            Format::Text,
            &mut api_text,
        );
        let api_text = String::from_utf8(api_text).expect("utf-8");
        simulator.shutdown().await;

        // Postgres, through the database source.
        let cluster = cluster();
        let database = cluster.database("honcho3");
        let sql_file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(sql_file.path(), load_sql(state)).expect("write load sql");
        cluster.psql_file(&database, sql_file.path(), &[]);
        let mut db_settings = settings(&database, env_password());
        db_settings.sessions.max_per_workspace = 3;
        db_settings.work_units.detail_limit = 4;
        db_settings.scopes = scopes();
        db_settings.honcho.deriver_representation_batch_max_tokens = u64::from(generated.threshold);
        db_settings.honcho.deriver_flush_enabled = generated.flush;
        db_settings.classify.overdue_after = api_settings.classify.overdue_after;
        if ceiling > 0 {
            db_settings.export.max_exported_workspaces = ceiling;
        }
        let mut harness = Harness::new(db_settings);
        let db_text = harness.cycle().await;
        assert!(db_text.contains(POSTGRES_UP), "{db_text}");
        if ceiling > 0 {
            let rolled = state.workspaces.len() - ceiling;
            assert_has(
                &db_text,
                &format!("honcho_exporter_workspaces_rolled_up {rolled}"),
            );
        }

        // The one documented difference: the database names every exported session, the API
        // only those with unprocessed rows.
        let without_live_units: Vec<String> = state
            .workspaces
            .iter()
            .flat_map(|workspace| {
                workspace
                    .sessions
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| {
                        !workspace
                            .units
                            .iter()
                            .any(|unit| unit.session == Some(*index) && unit.pending_items > 0)
                    })
                    .map(|(_, (id, _))| format!("session_id=\"{id}\""))
                    .collect::<Vec<_>>()
            })
            .collect();
        let db_lines: Vec<String> = pinned(&db_text)
            .into_iter()
            .filter(|line| {
                !(line.starts_with("honcho_queue_session_info")
                    && without_live_units
                        .iter()
                        .any(|id| line.contains(id.as_str())))
            })
            .collect();
        let api_lines = pinned(&api_text);
        assert!(
            !api_lines.is_empty(),
            "the API side exported nothing:\n{api_text}"
        );
        let only_db: Vec<&String> = db_lines
            .iter()
            .filter(|line| !api_lines.contains(line))
            .collect();
        let only_api: Vec<&String> = api_lines
            .iter()
            .filter(|line| !db_lines.contains(line))
            .collect();
        assert!(
            only_db.is_empty() && only_api.is_empty() && db_lines == api_lines,
            "seed {seed}: database and API differ\nonly from the database: {only_db:#?}\nonly from the API: {only_api:#?}\n--- state: {state:#?}"
        );
    }

    /// [`compare`] on its own runtime (proptest's cases are synchronous); nothing without a
    /// PostgreSQL to run.
    fn compare_on_a_runtime(seed: u64, ceiling: usize) {
        if !ready() {
            return;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(compare(seed, ceiling));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn the_database_and_the_api_give_the_same_pinned_families(seed in any::<u64>()) {
            compare_on_a_runtime(seed, 0);
        }

        /// Over the ceiling the query folds every workspace the ceiling cannot choose: what is
        /// exported is still exactly what the ceiling makes of every workspace's numbers.
        #[test]
        fn over_the_ceiling_the_database_folds_exactly_as_the_ceiling_does(seed in any::<u64>()) {
            compare_on_a_runtime(seed, 1 + (seed % 2) as usize);
        }
    }
}

#[tokio::test]
async fn the_password_never_reaches_the_logs_even_at_debug_level() {
    if !ready() {
        return;
    }
    let cluster = cluster();
    let database = cluster.database("honcho3");
    let wrong = "wrong-pw-Lq93hx-never-log";
    for (password, health) in [(wrong, 0.0), (EXPORTER_PASSWORD, 1.0)] {
        // A clean environment: only what the test sets (the exporter rejects unknown
        // HONCHO_EXPORTER_* variables, such as the suite's HONCHO_EXPORTER_FULL_TESTS).
        let (mut exporter, base) = crate::daemon::start_exporter(
            &[
                "--source=postgres",
                &format!("--postgres.url={}", cluster.url(&database)),
                "--poll.interval=300ms",
                "--poll.timeout=250ms",
                "--postgres.statement-timeout=200ms",
                "--log.level=debug",
            ],
            &[("HONCHO_EXPORTER_POSTGRES_PASSWORD", password)],
        )
        .await;
        // Evidence that a database cycle ran (and so connected, or failed to) before the logs
        // are read: the cycle counter and the database source's health line.
        util::scrape_until(
            &base,
            &format!(
                "a database cycle ran: poll cycles >= 1, up{{upstream=\"postgres\"}} {health}"
            ),
            |samples| {
                util::sum(samples, "honcho_exporter_poll_cycles_total", &[]) >= 1.0
                    && util::select(samples, "honcho_exporter_up", &[("upstream", "postgres")])
                        .first()
                        .map(|sample| sample.value)
                        == Some(health)
            },
        )
        .await;
        exporter.signal("TERM");
        exporter
            .wait_exit(Duration::from_secs(20))
            .await
            .expect("the exporter stops on SIGTERM");
        let logs = format!("{}{}", exporter.stdout(), exporter.stderr());
        assert!(
            !logs.contains(password),
            "the password leaked into the logs:\n{logs}"
        );
        if password == wrong {
            assert!(
                logs.contains("auth"),
                "the failure is logged with its reason:\n{logs}"
            );
        }
    }
}

#[test]
fn settings_debug_output_redacts_the_password() {
    let mut settings = Settings::with_url(url::Url::parse("http://127.0.0.1:9").expect("url"));
    settings.postgres.password = Some(TokenSource::Env(Secret::new(EXPORTER_PASSWORD.to_string())));
    let debug = format!("{settings:?}");
    assert!(!debug.contains(EXPORTER_PASSWORD), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
}

#[tokio::test]
async fn an_unknown_revision_with_every_column_works_and_says_so() {
    if !ready() {
        return;
    }
    let cluster = cluster();
    let database = cluster.database("honcho3");
    cluster.psql(&database, QUEUE);
    cluster.psql(
        &database,
        "UPDATE alembic_version SET version_num = 'a1b2c3d4e5f6'",
    );
    let mut harness = Harness::new(settings(&database, env_password()));
    let text = harness.cycle().await;
    assert_has(&text, POSTGRES_UP);
    assert!(
        text.contains(r#"revision="a1b2c3d4e5f6",honcho="unknown""#),
        "{text}"
    );
    assert_has(
        &text,
        r#"honcho_queue_items{workspace="acme",state="completed"} 2"#,
    );
}

#[tokio::test]
async fn a_connection_killed_mid_run_is_replaced() {
    if !ready() {
        return;
    }
    let cluster = cluster();
    let database = cluster.database("honcho3");
    cluster.psql(&database, QUEUE);
    let mut harness = Harness::new(settings(&database, env_password()));
    assert_has(&harness.cycle().await, POSTGRES_UP);
    cluster.psql(
        "postgres",
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'honcho_exporter' AND datname = '{database}'"
        ),
    );
    // The broken connection is either noticed before the cycle (a silent reconnect) or fails
    // one cycle with reason connect; either way the next cycles read again.
    let mut recovered = false;
    for _ in 0..3 {
        let text = harness.cycle().await;
        if text.contains(POSTGRES_UP) {
            recovered = true;
            assert_has(
                &text,
                r#"honcho_queue_items{workspace="acme",state="completed"} 2"#,
            );
            break;
        }
        assert_eq!(error_count(&text, "connect"), 1, "{text}");
    }
    assert!(recovered, "the source reconnected");
}

#[tokio::test]
async fn an_emptied_or_deleted_password_file_keeps_the_working_connection() {
    if !ready() {
        return;
    }
    let (mut harness, _dir, file) = harness_with_password_file(EXPORTER_PASSWORD);
    assert_has(&harness.cycle().await, POSTGRES_UP);

    std::fs::write(&file, "").expect("empty the file");
    let text = harness.cycle().await;
    assert_has(&text, POSTGRES_UP);
    assert_eq!(error_count(&text, "auth"), 0, "{text}");
    assert_has(
        &text,
        r#"honcho_exporter_postgres_password_reload_errors_total{reason="empty"} 1"#,
    );
    let text = harness.cycle().await;
    assert_has(
        &text,
        r#"honcho_exporter_postgres_password_reload_errors_total{reason="empty"} 1"#,
    );

    std::fs::remove_file(&file).expect("delete the file");
    let text = harness.cycle().await;
    assert_has(&text, POSTGRES_UP);
    assert_eq!(error_count(&text, "auth"), 0, "{text}");
    assert_has(
        &text,
        r#"honcho_exporter_postgres_password_reload_errors_total{reason="unreadable"} 1"#,
    );
    assert!(text.contains(r#"honcho_queue_items{workspace="acme",state="completed"} 2"#));
}

#[tokio::test]
async fn a_database_that_does_not_exist_is_connect_not_query() {
    if !ready() {
        return;
    }
    let mut harness = Harness::new(settings("no_such_database", env_password()));
    let text = harness.cycle().await;
    assert_has(&text, POSTGRES_DOWN);
    assert_eq!(error_count(&text, "query"), 0, "{text}");
    assert_eq!(error_count(&text, "connect"), 1, "{text}");
}

#[tokio::test]
async fn the_landing_page_and_start_up_log_name_the_database_and_its_health() {
    if !ready() {
        return;
    }
    let cluster = cluster();
    let database = cluster.database("honcho3");
    cluster.psql(&database, QUEUE);
    let url = cluster.url(&database);
    let (mut exporter, base) = crate::daemon::start_exporter(
        &[
            "--source=postgres",
            &format!("--postgres.url={url}"),
            "--poll.interval=300ms",
            "--poll.timeout=250ms",
            "--postgres.statement-timeout=200ms",
        ],
        &[("HONCHO_EXPORTER_POSTGRES_PASSWORD", EXPORTER_PASSWORD)],
    )
    .await;
    util::scrape_until(&base, "the database read, acme exported", |samples| {
        util::sum(samples, "honcho_exporter_up", &[("upstream", "postgres")]) == 1.0
            && !util::select(samples, "honcho_queue_items", &[("workspace", "acme")]).is_empty()
    })
    .await;
    let page = reqwest::get(format!("{base}/"))
        .await
        .expect("the landing page answers")
        .text()
        .await
        .expect("a body");
    assert!(
        page.contains(&format!("Honcho&#39;s database <code>{url}</code>")),
        "the page names the database:\n{page}"
    );
    assert!(
        !page.contains(":8000"),
        "the unused Honcho URL is not named:\n{page}"
    );
    let acme_row = page
        .lines()
        .find(|line| line.starts_with("<tr><td>acme</td>"))
        .unwrap_or_else(|| panic!("a polling row for acme:\n{page}"));
    assert!(
        acme_row.contains("<td>up</td>") && !acme_row.contains("never"),
        "acme's row shows the database's health and read time: {acme_row}"
    );
    exporter.signal("TERM");
    exporter
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("the exporter stops on SIGTERM");
    let logs = format!("{}{}", exporter.stdout(), exporter.stderr());
    let started = logs
        .lines()
        .find(|line| line.contains("honcho_exporter started"))
        .unwrap_or_else(|| panic!("a start-up line:\n{logs}"));
    assert!(
        started.contains("Honcho's database postgres://") && !started.contains(":8000"),
        "{started}"
    );
}

/// A workspace whose one queue row the cycle query cannot aggregate (its `created_at` is
/// `infinity`, which has no microseconds since the epoch): a cycle that reads its rows fails
/// with reason `query`, so a cycle that succeeds did not read them.
fn poisoned_workspace(name: &str) -> String {
    format!(
        "INSERT INTO workspaces (id, name) VALUES ('{name}', '{name}');
         INSERT INTO queue (session_id, payload, processed, task_type, work_unit_key, created_at, workspace_name)
         VALUES (NULL, '{{}}', false, 'dream', 'dream:omni:{name}:a:b', 'infinity', '{name}');"
    )
}

/// A workspace name whose shard of `count` differs from `acme`'s.
fn name_outside_acmes_shard(count: u32) -> String {
    use honcho_exporter::source::selection::shard_of;
    (0..)
        .map(|index| format!("poison-{index}"))
        .find(|name| shard_of(name, count) != shard_of("acme", count))
        .expect("some name hashes elsewhere")
}

#[tokio::test]
async fn the_database_reads_only_the_selected_workspaces_rows() {
    if !ready() {
        return;
    }
    let cluster = cluster();
    let database = cluster.database("honcho3");
    cluster.psql(&database, QUEUE);
    let poison = name_outside_acmes_shard(4);
    cluster.psql(&database, &poisoned_workspace(&poison));

    // Everything selected: the poisoned row is read and the cycle fails (the control).
    let mut everything = Harness::new(settings(&database, env_password()));
    let text = everything.cycle().await;
    assert_has(&text, POSTGRES_DOWN);
    assert_eq!(error_count(&text, "query"), 1, "{text}");

    // A static list and a shard: only acme's rows are read, its numbers exact.
    let mut listed = settings(&database, env_password());
    listed.workspaces.static_list = vec!["acme".to_string()];
    let mut sharded = settings(&database, env_password());
    sharded.shard = honcho_exporter::config::ShardSettings {
        count: 4,
        index: honcho_exporter::source::selection::shard_of("acme", 4),
    };
    for (what, settings) in [
        ("--workspaces acme", listed),
        ("acme's shard of 4", sharded),
    ] {
        let text = Harness::new(settings).cycle().await;
        assert_has(&text, POSTGRES_UP);
        assert_has(
            &text,
            r#"honcho_queue_items{workspace="acme",state="pending_stalled"} 2"#,
        );
        assert_has(
            &text,
            r#"honcho_queue_work_units{workspace="acme",task_type="summary",state="in_progress"} 1"#,
        );
        assert!(
            !text.contains(&format!("workspace=\"{poison}\"")),
            "{what}: the poisoned workspace is not exported:\n{text}"
        );
    }
}
