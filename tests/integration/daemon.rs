//! Process-level behaviour of the real binaries (`honcho_exporter`, `honcho-sim`) run as child
//! processes over loopback, plus two in-process checks that need a TLS front: token secrecy
//! and rotation, upstream TLS with a custom CA, `--web.config.file` through the real server,
//! request limits (slowloris, concurrency cap → 503, a bounded load test), SIGTERM mid-poll,
//! SIGHUP reload, and a time-compressed soak (series count and RSS stay flat).
//!
//! Every child is owned by a [`Running`] guard that kills and reaps it on drop, so a failing
//! assertion never leaves processes behind. Timing is only ever a generous upper bound on a
//! wait; the load and soak figures are printed (`-- --nocapture`), not asserted.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use honcho_sim::{Generation, Simulator, SimulatorConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::end_to_end::{free_port, test_settings};
use crate::util::{ParsedSample, Scrape, parse_samples, select, sum};

const EXPORTER: &str = env!("CARGO_BIN_EXE_honcho_exporter");

/// The `honcho-sim` binary of the workspace crate `crates/honcho-sim`, next to the exporter's
/// binary. `cargo test` at the workspace root builds it; a run limited to this package
/// (`cargo test -p honcho_exporter`) does not, so it is built here once when missing.
fn simulator_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let binary = Path::new(EXPORTER).with_file_name("honcho-sim");
        if !binary.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
            let mut build = Command::new(cargo);
            build.args([
                "build",
                "--quiet",
                "-p",
                "honcho-sim",
                "--bin",
                "honcho-sim",
            ]);
            if !cfg!(debug_assertions) {
                build.arg("--release");
            }
            let status = build
                .status()
                .unwrap_or_else(|error| panic!("cannot run cargo to build honcho-sim: {error}"));
            assert!(status.success(), "cargo build -p honcho-sim failed");
        }
        assert!(binary.exists(), "{} is missing", binary.display());
        binary
    })
}

/// The token the simulated Honcho accepts; distinctive so a leak cannot hide in other text.
const RIGHT_TOKEN: &str = "hx-RIGHT-7c1f9e2d4b6a8c0e-token";
/// A token Honcho rejects (401); it must not leak either.
const WRONG_TOKEN: &str = "hx-WRONG-3d5b7f9a1c2e4f6b-token";

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// A child process with its stdout and stderr captured; killed and reaped on drop.
pub(crate) struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// The threads copying the pipes; joined once the child exits so no output is missed.
    capturing: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    fn spawn(command: &mut Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let capturing = vec![
            capture(child.stdout.take().expect("stdout is piped"), &stdout),
            capture(child.stderr.take().expect("stderr is piped"), &stderr),
        ];
        Running {
            child,
            stdout,
            stderr,
            capturing,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().expect("stdout lock").clone()
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Waits (bounded) until stdout or stderr contains `needle`; returns the line holding it.
    pub(crate) async fn wait_for_output(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            for text in [self.stdout(), self.stderr()] {
                if let Some(line) = text.lines().find(|line| line.contains(needle)) {
                    return line.to_string();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not printed within {timeout:?}; stdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a signal with the `kill` command (`TERM`, `HUP`, …).
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Waits (bounded) for the process to exit, then for its last output to be captured.
    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                for thread in self.capturing.drain(..) {
                    let _ = thread.join();
                }
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Resident set size in bytes, from `/proc/PID/status`.
    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status readable");
        let line = status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .expect("VmRSS line");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|value| value.parse().ok())
            .expect("VmRSS value in kB");
        kib * 1024
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies a pipe into `sink` on a thread (ends when the child closes the pipe).
fn capture(
    pipe: impl Read + Send + 'static,
    sink: &Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    let sink = Arc::clone(sink);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|read| read > 0) {
            sink.lock().expect("capture lock").push_str(&line);
            line.clear();
        }
    })
}

/// Starts `honcho-sim` on a free loopback port; returns it and its base URL.
async fn start_simulator(args: &[&str]) -> (Running, String) {
    let sim = Running::spawn(
        Command::new(simulator_binary())
            .args(["--listen", "127.0.0.1:0"])
            .args(args),
    );
    let line = sim
        .wait_for_output("listening on http://", Duration::from_secs(20))
        .await;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("the announced line")
        .to_string();
    (sim, url)
}

/// Starts `honcho_exporter` with `args` plus `--web.listen-address` on a free loopback port
/// and `env` (nothing else from the test's environment); returns it and its base URL once
/// `/-/healthy` answers.
pub(crate) async fn start_exporter(args: &[&str], env: &[(&str, &str)]) -> (Running, String) {
    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let mut all = args.to_vec();
    all.push(&listen);
    launch_exporter(&all, env, port).await
}

/// Starts `honcho_exporter` with exactly `args` and `env`, expecting it to listen on
/// `127.0.0.1:port`; returns it and its base URL once `/-/healthy` answers.
async fn launch_exporter(args: &[&str], env: &[(&str, &str)], port: u16) -> (Running, String) {
    let mut command = Command::new(EXPORTER);
    command.args(args).env_clear().env("PATH", path_env());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut exporter = Running::spawn(&mut command);
    let base = format!("http://127.0.0.1:{port}");
    let client = http_client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = client.get(format!("{base}/-/healthy")).send().await
            && response.status() == 200
        {
            return (exporter, base);
        }
        assert!(
            exporter.is_running(),
            "the exporter exited at start; stderr:\n{}",
            exporter.stderr()
        );
        assert!(
            Instant::now() < deadline,
            "the exporter did not answer on {base} within 20 s; stderr:\n{}",
            exporter.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replaces a file the running exporter reads in one step (a new file renamed over it, as a
/// Kubernetes Secret update swaps its files): a plain `write` truncates first, and a poll that
/// reads between the truncation and the write sees one more version of the file (an empty one).
fn replace_atomically(path: &std::path::Path, contents: &str) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, contents).expect("write the new version beside the file");
    std::fs::rename(&staged, path).expect("rename the new version over the file");
}

fn path_env() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_string())
}

// ---------------------------------------------------------------------------------------------
// Scraping
// ---------------------------------------------------------------------------------------------

fn http_client() -> reqwest::Client {
    honcho_exporter::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client builds")
}

/// `/metrics` as text, or `None` while the exporter is not answering.
async fn metrics_text(client: &reqwest::Client, base: &str) -> Option<String> {
    let response = client.get(format!("{base}/metrics")).send().await.ok()?;
    if response.status() != 200 {
        return None;
    }
    response.text().await.ok()
}

/// Every scrape of a daemon: one that is not answered yet (starting, reloading) is retried
/// within the deadline each call sets.
const SCRAPE: Scrape = Scrape::new().retry_unanswered();

fn value(samples: &[ParsedSample], name: &str, matching: &[(&str, &str)]) -> Option<f64> {
    select(samples, name, matching)
        .first()
        .map(|sample| sample.value)
}

fn poll_cycles(samples: &[ParsedSample]) -> f64 {
    sum(samples, "honcho_exporter_poll_cycles_total", &[])
}

/// The configured poll interval the exporter reports.
fn poll_interval(samples: &[ParsedSample]) -> Option<f64> {
    value(samples, "honcho_exporter_poll_interval_seconds", &[])
}

/// Series in a text exposition: sample lines.
fn series_count(text: &str) -> usize {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .count()
}

fn web_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/web")
        .join(name)
}

fn certificates(name: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(web_fixture(name))
        .expect("readable PEM")
        .collect::<Result<_, _>>()
        .expect("valid PEM")
}

// ---------------------------------------------------------------------------------------------
// 1. Token secrecy and rotation
// ---------------------------------------------------------------------------------------------

fn assert_no_token(text: &str, where_: &str) {
    for token in [RIGHT_TOKEN, WRONG_TOKEN] {
        assert!(
            !text.contains(token),
            "the Honcho token leaked into {where_}:\n{text}"
        );
    }
}

async fn token_never_leaks_and_rotation_needs_no_restart(log_format: &str) {
    let (sim, sim_url) =
        start_simulator(&["--admin-token", RIGHT_TOKEN, "--workspaces", "2"]).await;
    let directory = tempfile::tempdir().expect("temp dir");
    let token_file = directory.path().join("token");
    std::fs::write(&token_file, format!("{WRONG_TOKEN}\n")).expect("write token file");
    let token_path = token_file.to_str().expect("UTF-8 path");
    let (mut exporter, base) = start_exporter(
        &[
            &format!("--honcho.url={sim_url}"),
            &format!("--honcho.token-file={token_path}"),
            "--log.level=debug",
            &format!("--log.format={log_format}"),
            "--poll.interval=300ms",
            "--poll.timeout=250ms",
        ],
        &[],
    )
    .await;
    let client = http_client();

    // 401 phase: Honcho rejects the token; nothing is up.
    let rejected = SCRAPE
        .deadline(Duration::from_secs(30))
        .until(
            &base,
            "two poll cycles with the wrong token",
            |_| {},
            |samples| poll_cycles(samples) >= 2.0,
        )
        .await;
    assert!(
        select(&rejected, "honcho_exporter_up", &[])
            .iter()
            .all(|sample| sample.value == 0.0),
        "nothing can be up with a rejected token"
    );
    assert!(
        sum(
            &rejected,
            "honcho_exporter_poll_errors_total",
            &[("reason", "http_401")]
        ) >= 1.0,
        "the 401s are counted"
    );

    // Rotation: the file now holds the right token; no restart.
    replace_atomically(&token_file, &format!("{RIGHT_TOKEN}\n"));
    let accepted = SCRAPE
        .deadline(Duration::from_secs(30))
        .until(
            &base,
            "discovery up after the token rotation",
            |_| {},
            |samples| {
                value(samples, "honcho_exporter_up", &[("upstream", "discovery")]) == Some(1.0)
                    && value(samples, "honcho_exporter_up", &[("upstream", "status")]) == Some(1.0)
            },
        )
        .await;
    assert!(exporter.is_running(), "rotation needed no restart");
    assert!(sum(&accepted, "honcho_queue_items", &[]) >= 0.0);

    // Emptied while running: the last good token stays in use, counted once.
    let rejected_401 = |samples: &[ParsedSample]| {
        sum(
            samples,
            "honcho_exporter_poll_errors_total",
            &[("reason", "http_401")],
        )
    };
    let before = rejected_401(&accepted);
    replace_atomically(&token_file, "\n");
    let emptied = SCRAPE
        .deadline(Duration::from_secs(30))
        .until(
            &base,
            "the emptied token file counted",
            |_| {},
            |samples| {
                value(
                    samples,
                    "honcho_exporter_token_reload_errors_total",
                    &[("reason", "empty")],
                ) == Some(1.0)
            },
        )
        .await;
    let cycles = poll_cycles(&emptied);
    let later = SCRAPE
        .deadline(Duration::from_secs(30))
        .until(
            &base,
            "two more poll cycles with the emptied token file",
            |_| {},
            |samples| poll_cycles(samples) >= cycles + 2.0,
        )
        .await;
    assert_eq!(
        rejected_401(&later),
        before,
        "no request went without the token"
    );
    assert_eq!(
        value(&later, "honcho_exporter_up", &[("upstream", "discovery")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &later,
            "honcho_exporter_token_reload_errors_total",
            &[("reason", "empty")]
        ),
        Some(1.0),
        "one version of the file counts once"
    );

    for path in [
        "/metrics",
        "/",
        "/-/healthy",
        "/-/ready",
        "/nope",
        "/metrics?token=x",
    ] {
        let response = client
            .get(format!("{base}{path}"))
            .header("accept", "application/openmetrics-text;version=1.0.0")
            .send()
            .await
            .expect("exporter answers");
        let headers = format!("{:?}", response.headers());
        let body = response.text().await.expect("body");
        assert_no_token(&headers, &format!("the headers of {path}"));
        assert_no_token(&body, path);
    }

    exporter.signal("TERM");
    let status = exporter.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.and_then(|status| status.code()), Some(0));
    let stderr = exporter.stderr();
    assert!(
        stderr.contains("token file changed"),
        "the rotation is logged (without the token): {stderr}"
    );
    assert_eq!(
        stderr
            .matches("cannot be used; keeping the previous token")
            .count(),
        1,
        "the emptied file is logged once: {stderr}"
    );
    assert!(
        stderr.contains("http_401"),
        "the rejected polls are logged (without the token): {stderr}"
    );
    assert_no_token(&stderr, "stderr");
    assert_no_token(&exporter.stdout(), "stdout");
    drop(sim);
}

#[tokio::test]
async fn the_token_never_appears_in_logfmt_debug_logs_metrics_or_pages_and_rotates_live() {
    token_never_leaks_and_rotation_needs_no_restart("logfmt").await;
}

#[tokio::test]
async fn the_token_never_appears_in_json_debug_logs_metrics_or_pages_and_rotates_live() {
    token_never_leaks_and_rotation_needs_no_restart("json").await;
}

/// A configuration that must be refused: (what it is, arguments, environment).
type ConfigCase<'a> = (&'a str, Vec<&'a str>, &'a [(&'a str, &'a str)]);

/// Runs the exporter to completion (for `--config.check` and configuration errors).
fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(EXPORTER);
    command.args(args).env_clear().env("PATH", path_env());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("the exporter runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[test]
fn config_check_and_configuration_errors_never_print_the_token() {
    let directory = tempfile::tempdir().expect("temp dir");
    let token_file = directory.path().join("token");
    std::fs::write(&token_file, RIGHT_TOKEN).expect("write token");
    let token_flag = format!("--honcho.token-file={}", token_file.display());
    let token_in_yaml = directory.path().join("token-in-yaml.yml");
    std::fs::write(&token_in_yaml, format!("honcho:\n  token: {RIGHT_TOKEN}\n"))
        .expect("write config");
    let yaml_flag = format!("--config.file={}", token_in_yaml.display());
    let env_token = [("HONCHO_EXPORTER_HONCHO_TOKEN", RIGHT_TOKEN)];
    let token_on_command_line = format!("--honcho.token={RIGHT_TOKEN}");

    let (code, output) = run_to_exit(&["--config.check", &token_flag], &[]);
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("configuration OK"), "{output}");
    assert_no_token(&output, "--config.check output");
    let (code, output) = run_to_exit(&["--config.check"], &env_token);
    assert_eq!(code, Some(0), "{output}");
    assert_no_token(&output, "--config.check output (env token)");

    let failing: [ConfigCase; 4] = [
        (
            "token on the command line",
            vec!["--config.check", &token_on_command_line],
            &[],
        ),
        (
            "bad setting next to an env token",
            vec!["--config.check", "--poll.interval=soon"],
            &env_token,
        ),
        (
            "bad setting next to a token file",
            vec!["--config.check", &token_flag, "--poll.timeout=1h"],
            &[],
        ),
        (
            "token as a YAML key",
            vec!["--config.check", &yaml_flag],
            &[],
        ),
    ];
    for (case, args, env) in failing {
        let (code, output) = run_to_exit(&args, env);
        assert_eq!(code, Some(2), "{case}: exit code 2; output:\n{output}");
        assert!(!output.trim().is_empty(), "{case}: an error is printed");
        assert_no_token(&output, case);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Upstream TLS with a custom CA
// ---------------------------------------------------------------------------------------------

/// A TLS front (test PKI, `server.crt` for 127.0.0.1) forwarding bytes to `upstream`.
struct TlsFront {
    address: SocketAddr,
    accept_loop: JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

async fn tls_front(upstream: SocketAddr) -> TlsFront {
    let key = PrivateKeyDer::from_pem_file(web_fixture("server.key")).expect("server key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default versions")
    .with_no_client_auth()
    .with_single_cert(certificates("server.crt"), key)
    .expect("certificate and key match");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let accept_loop = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            connections.spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    TlsFront {
        address,
        accept_loop,
    }
}

#[tokio::test]
async fn an_https_honcho_signed_by_a_custom_ca_is_up_only_with_that_ca_file() {
    let honcho = Simulator::start(SimulatorConfig::recorded(Generation::C))
        .await
        .expect("simulator starts");
    let front = tls_front(honcho.addr).await;
    let https_url = format!("https://127.0.0.1:{}", front.address.port());

    let mut trusted = test_settings(&https_url);
    trusted.honcho.ca_file = Some(web_fixture("ca.crt"));
    trusted.poll.interval = Duration::from_millis(500);
    trusted.poll.timeout = Duration::from_millis(400);
    let (exporter, base) = crate::end_to_end::start_unready(trusted).await;
    let samples = SCRAPE
        .deadline(Duration::from_secs(30))
        .until(
            &base,
            "discovery and status up over TLS",
            |_| {},
            |samples| {
                value(samples, "honcho_exporter_up", &[("upstream", "discovery")]) == Some(1.0)
                    && value(samples, "honcho_exporter_up", &[("upstream", "status")]) == Some(1.0)
            },
        )
        .await;
    assert!(
        select(&samples, "honcho_exporter_up", &[])
            .iter()
            .all(|sample| sample.value == 1.0),
        "every endpoint up over TLS with the CA trusted"
    );
    exporter.stop().await;

    let mut untrusted = test_settings(&https_url);
    untrusted.poll.interval = Duration::from_millis(500);
    untrusted.poll.timeout = Duration::from_millis(400);
    let (exporter, base) = crate::end_to_end::start_unready(untrusted).await;
    let samples = SCRAPE
        .deadline(Duration::from_secs(30))
        .until(
            &base,
            "a connect error for the untrusted certificate",
            |_| {},
            |samples| {
                sum(
                    samples,
                    "honcho_exporter_poll_errors_total",
                    &[("reason", "connect")],
                ) >= 1.0
            },
        )
        .await;
    assert!(
        select(&samples, "honcho_exporter_up", &[])
            .iter()
            .all(|sample| sample.value == 0.0),
        "nothing up when the certificate is not trusted"
    );
    assert!(select(&samples, "honcho_queue_items", &[]).is_empty());
    let reasons: Vec<_> = select(&samples, "honcho_exporter_poll_errors_total", &[])
        .iter()
        .map(|sample| sample.labels["reason"].clone())
        .collect();
    assert!(
        reasons.iter().all(|reason| reason == "connect"),
        "{reasons:?}"
    );
    exporter.stop().await;
    drop(front);
    honcho.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 3. --web.config.file through the real server
// ---------------------------------------------------------------------------------------------

fn client_trusting_test_ca() -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates("ca.crt") {
        roots.add(certificate).expect("usable CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client builds")
}

/// With TLS and basic auth configured, `/metrics` and `/` need the password, while `/-/healthy`
/// and `/-/ready` stay reachable without credentials (deliberately, unlike exporter-toolkit:
/// orchestrator probes then need no secret, and they reveal only liveness and readiness).
#[tokio::test]
async fn web_config_tls_and_basic_auth_guard_the_real_server_but_not_its_probes() {
    let honcho = Simulator::start(SimulatorConfig::recorded(Generation::C))
        .await
        .expect("simulator starts");
    let mut settings = test_settings(&honcho.url());
    settings.web.config_file = Some(web_fixture("tls-basic-auth.yml"));
    let (exporter, plain_base) = crate::end_to_end::start_unready(settings).await;
    let base = plain_base.replace("http://", "https://");
    let client = client_trusting_test_ca();
    let metrics = format!("{base}/metrics");

    let anonymous = client.get(&metrics).send().await.expect("TLS handshake");
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        honcho_exporter::web_config::WWW_AUTHENTICATE
    );
    let wrong = client
        .get(&metrics)
        .basic_auth("alice", Some("Tr0ub4dor&3"))
        .send()
        .await
        .expect("TLS handshake");
    assert_eq!(wrong.status(), 401);
    let unknown_user = client
        .get(&metrics)
        .basic_auth("mallory", Some("correct horse battery"))
        .send()
        .await
        .expect("TLS handshake");
    assert_eq!(unknown_user.status(), 401);
    let landing = client.get(format!("{base}/")).send().await.expect("TLS");
    assert_eq!(landing.status(), 401, "the landing page needs the password");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/-/ready"))
        .send()
        .await
        .expect("TLS handshake")
        .status()
        != 200
    {
        assert!(Instant::now() < deadline, "not ready within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let alice = client
            .get(&metrics)
            .basic_auth("alice", Some("correct horse battery"))
            .send()
            .await
            .expect("TLS handshake");
        assert_eq!(alice.status(), 200);
        let body = alice.text().await.expect("body");
        if body.contains("honcho_queue_items{") {
            break;
        }
        assert!(Instant::now() < deadline, "no queue data over TLS: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for probe in ["/-/healthy", "/-/ready"] {
        let response = client
            .get(format!("{base}{probe}"))
            .send()
            .await
            .expect("TLS");
        assert_eq!(response.status(), 200, "{probe} without credentials");
    }
    // The handshake fails for a client that does not trust the test CA, and plain HTTP fails.
    let untrusting = reqwest::Client::builder()
        .tls_backend_preconfigured(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        )
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client builds");
    assert!(untrusting.get(&metrics).send().await.is_err());
    let plain = http_client()
        .get(format!("{plain_base}/metrics"))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.is_ok_and(|response| response.status() != 200),
        "plain HTTP to the TLS port must not get metrics"
    );
    exporter.stop().await;
    honcho.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Request limits and load
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_slowloris_client_is_cut_off_at_the_request_timeout_while_scrapes_go_on() {
    let (_sim, sim_url) = start_simulator(&["--workspaces", "2"]).await;
    let (_exporter, base) = start_exporter(
        &[
            &format!("--honcho.url={sim_url}"),
            "--poll.interval=1s",
            "--poll.timeout=500ms",
        ],
        &[("HONCHO_EXPORTER_WEB_REQUEST_TIMEOUT", "1s")],
    )
    .await;
    let address = base.trim_start_matches("http://").to_string();
    let client = http_client();
    SCRAPE
        .deadline(Duration::from_secs(30))
        .until(&base, "first poll", |_| {}, |s| poll_cycles(s) >= 1.0)
        .await;

    let mut slow = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let (mut reader, mut writer) = slow.split();
    let cut_off = Arc::new(AtomicBool::new(false));
    let request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let started = Instant::now();
    let mut scrapes_during = 0;
    let trickle = async {
        // Headers that never end, one byte every 100 ms.
        for byte in request.iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let watch = async {
        let mut buffer = [0_u8; 1024];
        // EOF, a reset or an error status (408) all mean the server gave up on this client.
        let _ = reader.read(&mut buffer).await;
        cut_off.store(true, Ordering::SeqCst);
    };
    let others = async {
        loop {
            let (status, body) = match client.get(format!("{base}/metrics")).send().await {
                Ok(response) => (
                    response.status().as_u16(),
                    response.text().await.unwrap_or_default(),
                ),
                Err(error) => panic!("a scrape failed during the slowloris: {error}"),
            };
            assert_eq!(status, 200);
            assert!(body.contains("honcho_exporter_up"));
            scrapes_during += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        _ = trickle => {}
        _ = watch => {}
        _ = others => {}
        _ = tokio::time::sleep(Duration::from_secs(8)) => {}
    }
    assert!(
        cut_off.load(Ordering::SeqCst),
        "the slow client was not cut off within 8 s (web.request_timeout is 1 s)"
    );
    println!(
        "slowloris cut off after {:?}; {scrapes_during} scrapes answered meanwhile",
        started.elapsed()
    );
    assert!(scrapes_during >= 1, "other scrapes were served meanwhile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_concurrency_cap_get_a_quick_503_not_a_hang() {
    let directory = tempfile::tempdir().expect("temp dir");
    // A deliberately costly hash: each wrong password keeps a request slot busy with bcrypt.
    let hash = bcrypt::hash("the right one", 10).expect("bcrypt hash");
    let web_config = directory.path().join("web.yml");
    std::fs::write(&web_config, format!("basic_auth_users:\n  carol: {hash}\n")).expect("write");
    let (_sim, sim_url) = start_simulator(&["--workspaces", "1"]).await;
    let (_exporter, base) = start_exporter(
        &[
            &format!("--honcho.url={sim_url}"),
            &format!("--web.config.file={}", web_config.display()),
            "--web.max-concurrent-requests=2",
        ],
        &[],
    )
    .await;
    let client = http_client();
    let mut requests = tokio::task::JoinSet::new();
    for attempt in 0..40 {
        let client = client.clone();
        let url = format!("{base}/metrics");
        requests.spawn(async move {
            let response = client
                .get(url)
                .basic_auth("carol", Some(format!("wrong-{attempt}")))
                .send()
                .await
                .expect("every request is answered");
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|value| value.to_str().unwrap_or("").to_string());
            (response.status().as_u16(), retry_after)
        });
    }
    let answers = tokio::time::timeout(Duration::from_secs(60), requests.join_all())
        .await
        .expect("all 40 requests answered within 60 s: none hangs");
    let unavailable = answers.iter().filter(|(status, _)| *status == 503).count();
    let unauthorized = answers.iter().filter(|(status, _)| *status == 401).count();
    println!(
        "concurrency cap 2, 40 wrong-password requests: {unauthorized} × 401, {unavailable} × 503"
    );
    assert_eq!(
        unavailable + unauthorized,
        40,
        "only 401 or 503: {answers:?}"
    );
    assert!(unauthorized >= 1, "slot holders are answered");
    assert!(unavailable >= 1, "requests past the cap are refused");
    assert!(
        answers
            .iter()
            .filter(|(status, _)| *status == 503)
            .all(|(_, retry_after)| retry_after.as_deref() == Some("1")),
        "503s carry Retry-After: 1"
    );
}

/// Latency percentile (nearest rank) of sorted durations.
fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let rank = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The load test: 200 concurrent scrapers for at most 6 s and at most 100 requests each.
/// Prints p50/p99 and throughput; asserts only that every answer was 200 or 503 and that the
/// poll loop kept cycling: at least a sixth of elapsed / interval, a bound generous enough for
/// two loaded cores shared with the scrapers, yet one a starved or stuck loop (0–1 cycles)
/// fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_concurrent_scrapers_gets_200_or_503_and_the_poll_loop_keeps_time() {
    const SCRAPERS: usize = 200;
    const REQUESTS_PER_SCRAPER: usize = 100;
    const DURATION: Duration = Duration::from_secs(6);
    let interval = Duration::from_millis(250);
    let (_sim, sim_url) = start_simulator(&["--workspaces", "4", "--speed", "120"]).await;
    let (_exporter, base) = start_exporter(
        &[
            &format!("--honcho.url={sim_url}"),
            "--poll.interval=250ms",
            "--poll.timeout=200ms",
            "--log.level=warn",
        ],
        &[("HONCHO_EXPORTER_HONCHO_MAX_REQUESTS_PER_SECOND", "1000")],
    )
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(SCRAPERS)
        .build()
        .expect("client");
    let before = SCRAPE
        .deadline(Duration::from_secs(30))
        .until(&base, "first poll", |_| {}, |s| poll_cycles(s) >= 1.0)
        .await;
    let cycles_before = poll_cycles(&before);
    let started = Instant::now();
    let deadline = started + DURATION;
    let mut scrapers = tokio::task::JoinSet::new();
    for _ in 0..SCRAPERS {
        let client = client.clone();
        let url = format!("{base}/metrics");
        scrapers.spawn(async move {
            let mut results = Vec::new();
            for _ in 0..REQUESTS_PER_SCRAPER {
                if Instant::now() >= deadline {
                    break;
                }
                let sent = Instant::now();
                let status = match client.get(&url).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match response.bytes().await {
                            Ok(_) => status,
                            Err(_) => 0,
                        }
                    }
                    Err(_) => 0,
                };
                results.push((status, sent.elapsed()));
            }
            results
        });
    }
    let results: Vec<(u16, Duration)> = scrapers.join_all().await.into_iter().flatten().collect();
    let elapsed = started.elapsed();
    let after = SCRAPE
        .deadline(Duration::from_secs(30))
        .until(&base, "scrape", |_| {}, |_| true)
        .await;
    let cycles = poll_cycles(&after) - cycles_before;

    let mut latencies: Vec<Duration> = results.iter().map(|(_, latency)| *latency).collect();
    latencies.sort();
    let ok = results.iter().filter(|(status, _)| *status == 200).count();
    let refused = results.iter().filter(|(status, _)| *status == 503).count();
    println!(
        "load: {SCRAPERS} scrapers, {} requests in {elapsed:.2?} = {:.0} req/s; 200: {ok}, 503: {refused}; \
         p50 {:.2?}, p99 {:.2?}, max {:.2?}; poll cycles {cycles} (elapsed/interval {:.1})",
        results.len(),
        results.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        elapsed.as_secs_f64() / interval.as_secs_f64(),
    );
    let others: Vec<u16> = results
        .iter()
        .map(|(status, _)| *status)
        .filter(|status| *status != 200 && *status != 503)
        .collect();
    assert!(
        others.is_empty(),
        "every answer is 200 or 503; also got {} others: {:?}",
        others.len(),
        &others[..others.len().min(20)]
    );
    assert!(ok > 0, "scrapes were served");
    let expected = (started.elapsed().as_secs_f64() / interval.as_secs_f64()).floor();
    assert!(
        cycles >= (expected / 6.0).floor().max(2.0),
        "the poll loop fell behind under load: {cycles} cycles in {elapsed:?} at {interval:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Signals
// ---------------------------------------------------------------------------------------------

/// A TCP listener that accepts and never answers; counts connections; stops on drop.
struct SilentHoncho {
    url: String,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl SilentHoncho {
    fn start() -> SilentHoncho {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopping) = (Arc::clone(&accepted), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        held.push(stream);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        SilentHoncho {
            url,
            accepted,
            stop,
        }
    }
}

impl Drop for SilentHoncho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn sigterm_during_a_hanging_poll_exits_zero_promptly() {
    let honcho = SilentHoncho::start();
    let (mut exporter, _base) = start_exporter(
        &[
            &format!("--honcho.url={}", honcho.url),
            "--poll.interval=60s",
            "--poll.timeout=30s",
        ],
        &[],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while honcho.accepted.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the exporter never called Honcho"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let signalled = Instant::now();
    exporter.signal("TERM");
    let status = exporter.wait_exit(Duration::from_secs(8)).await;
    assert!(
        status.is_some(),
        "still running 8 s after SIGTERM mid-poll; stderr:\n{}",
        exporter.stderr()
    );
    assert_eq!(
        status.and_then(|status| status.code()),
        Some(0),
        "{}",
        exporter.stderr()
    );
    println!("exited {:?} after SIGTERM mid-poll", signalled.elapsed());
    exporter
        .wait_for_output("SIGTERM: shutting down", Duration::from_secs(5))
        .await;
}

/// An exporter started from a config file (so that SIGHUP reloads it) against a one-workspace
/// simulator, with everything a reload test needs. Bind `_sim` and `_directory` too: they keep
/// the simulator running and the config file on disk.
struct Reloadable {
    _sim: Running,
    _directory: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    sim_url: String,
    exporter: Running,
    base: String,
}

async fn start_reloadable(interval: &str) -> Reloadable {
    let (sim, sim_url) = start_simulator(&["--workspaces", "1"]).await;
    let directory = tempfile::tempdir().expect("temp dir");
    let config = directory.path().join("honcho_exporter.yml");
    let port = free_port();
    write_config(&config, port, &sim_url, interval);
    let (exporter, base) =
        launch_exporter(&[&format!("--config.file={}", config.display())], &[], port).await;
    Reloadable {
        _sim: sim,
        _directory: directory,
        config,
        port,
        sim_url,
        exporter,
        base,
    }
}

fn write_config(path: &Path, port: u16, honcho_url: &str, interval: &str) {
    std::fs::write(
        path,
        format!(
            "web:\n  listen_addresses: [\"127.0.0.1:{port}\"]\nhoncho:\n  url: {honcho_url}\npoll:\n  interval: {interval}\n  timeout: 500ms\n"
        ),
    )
    .expect("write config");
}

#[tokio::test]
async fn sighup_reloads_the_config_file_and_keeps_the_old_one_when_the_new_is_invalid() {
    let Reloadable {
        _sim,
        _directory,
        config,
        port,
        sim_url,
        mut exporter,
        base,
    } = start_reloadable("2s").await;
    SCRAPE
        .deadline(Duration::from_secs(30))
        .until(
            &base,
            "interval 2",
            |_| {},
            |s| poll_interval(s) == Some(2.0),
        )
        .await;

    write_config(&config, port, &sim_url, "3s");
    exporter.signal("HUP");
    SCRAPE
        .deadline(Duration::from_secs(30))
        .until(
            &base,
            "interval 3 after SIGHUP",
            |_| {},
            |s| poll_interval(s) == Some(3.0),
        )
        .await;
    exporter
        .wait_for_output("configuration reloaded", Duration::from_secs(10))
        .await;

    std::fs::write(
        &config,
        format!("honcho:\n  url: {sim_url}\npoll:\n  interval: soon\n"),
    )
    .expect("write invalid config");
    exporter.signal("HUP");
    let logged = exporter
        .wait_for_output("new configuration is invalid", Duration::from_secs(20))
        .await;
    assert!(
        logged.contains("poll.interval"),
        "the error names the key: {logged}"
    );
    let samples = SCRAPE
        .deadline(Duration::from_secs(10))
        .until(&base, "scrape", |_| {}, |_| true)
        .await;
    assert_eq!(
        poll_interval(&samples),
        Some(3.0),
        "the running configuration is kept"
    );
    assert!(exporter.is_running());
}

/// How often `needle` occurs in `text`.
fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[tokio::test]
async fn sighup_with_a_listen_address_taken_keeps_the_running_config_and_goes_on_serving() {
    let Reloadable {
        _sim,
        _directory,
        config,
        port,
        sim_url,
        mut exporter,
        base,
    } = start_reloadable("2s").await;
    SCRAPE
        .deadline(Duration::from_secs(30))
        .until(
            &base,
            "interval 2",
            |_| {},
            |s| poll_interval(s) == Some(2.0),
        )
        .await;

    // A valid configuration whose new listen address another process holds.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let taken_port = taken.local_addr().expect("bound address").port();
    write_config(&config, taken_port, &sim_url, "3s");
    exporter.signal("HUP");
    let logged = exporter
        .wait_for_output(
            "cannot apply the new configuration",
            Duration::from_secs(20),
        )
        .await;
    assert!(
        logged.contains(&format!("127.0.0.1:{taken_port}")),
        "the error names the address: {logged}"
    );
    assert_eq!(
        occurrences(&logged, "Address already in use"),
        1,
        "the cause once: {logged}"
    );
    assert!(
        exporter.is_running(),
        "the exporter must keep running; stderr:\n{}",
        exporter.stderr()
    );
    let samples = SCRAPE
        .deadline(Duration::from_secs(10))
        .until(&base, "scrape", |_| {}, |_| true)
        .await;
    assert_eq!(
        poll_interval(&samples),
        Some(2.0),
        "the running configuration is kept, still served on its address"
    );
    drop(taken);

    // At start, a taken address is fatal (exit 1), and the message gives its cause once.
    let (code, stderr) = run_to_exit(
        &[
            &format!("--honcho.url={sim_url}"),
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert_eq!(
        occurrences(&stderr, "Address already in use"),
        1,
        "the cause once: {stderr}"
    );
}

#[tokio::test]
async fn no_scrape_fails_across_sighup_reloads_that_keep_the_listen_address() {
    const RELOADS: usize = 10;
    let Reloadable {
        _sim,
        _directory,
        config,
        port,
        sim_url,
        exporter,
        base,
    } = start_reloadable("1s").await;

    // Scrape back to back, as a Prometheus with a short interval would (one client, so
    // keep-alive connections are reused across the reloads).
    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let scraper = {
        let (stop, scrapes, failures) = (stop.clone(), scrapes.clone(), failures.clone());
        let (client, url) = (http_client(), format!("{base}/metrics"));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let outcome = match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => match response.text().await {
                        Ok(body) if body.contains("honcho_exporter_build_info") => Ok(()),
                        Ok(_) => Err("a body without the exporter's metrics".to_string()),
                        Err(error) => Err(format!("body: {error}")),
                    },
                    Ok(response) => Err(format!("HTTP {}", response.status())),
                    Err(error) => Err(format!("{error:?}")),
                };
                scrapes.fetch_add(1, Ordering::Relaxed);
                if let Err(failure) = outcome {
                    failures.lock().expect("failures lock").push(failure);
                }
            }
        })
    };
    for reload in 0..RELOADS {
        // Something changes each time (the interval), the listen address never does.
        let interval = if reload % 2 == 0 { "2s" } else { "1s" };
        write_config(&config, port, &sim_url, interval);
        exporter.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(20);
        while occurrences(&exporter.stderr(), "configuration reloaded") <= reload {
            assert!(
                Instant::now() < deadline,
                "reload {reload} not logged; stderr:\n{}",
                exporter.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    scraper.await.expect("scraper task");
    let failures = failures.lock().expect("failures lock").clone();
    let scrapes = scrapes.load(Ordering::Relaxed);
    println!(
        "{scrapes} scrapes across {RELOADS} reloads, {} failed",
        failures.len()
    );
    assert!(scrapes >= RELOADS, "the scraper ran ({scrapes} scrapes)");
    assert!(
        failures.is_empty(),
        "{} of {scrapes} scrapes failed across {RELOADS} reloads: {failures:?}",
        failures.len()
    );
}

/// The simulator's cost meter (`GET /_sim/cost`).
async fn cost_meter(client: &reqwest::Client, sim_url: &str) -> honcho_sim::CostMeter {
    let body = client
        .get(format!("{sim_url}/_sim/cost"))
        .send()
        .await
        .expect("the simulator answers /_sim/cost")
        .bytes()
        .await
        .expect("the cost meter's body");
    serde_json::from_slice(&body).expect("a cost meter")
}

/// Waits (bounded) until the simulator has answered `requests` costed requests since its meter
/// was last reset; returns the meter.
async fn cost_meter_after(
    client: &reqwest::Client,
    sim_url: &str,
    requests: u64,
    what: &str,
) -> honcho_sim::CostMeter {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let meter = cost_meter(client, sim_url).await;
        if meter.requests >= requests {
            return meter;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {requests} costed requests within 60 s ({meter:?})",
            meter.requests
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 18, bug 1: the reload built the Honcho client without the in-flight cap, so after a
/// SIGHUP up to ~64 requests were in flight at once with `poll.concurrency: 2`.
#[tokio::test]
async fn sighup_keeps_the_bound_on_requests_in_flight_to_honcho() {
    const CONCURRENCY: u64 = 2;
    const WORKSPACES: u64 = 30;
    // Every request costs Honcho time (a queue/status of 3,000 rows ~27 ms, a page ~16 ms), so
    // requests sent together overlap at the simulator and its meter sees them.
    let (_sim, sim_url) = start_simulator(&[
        "--workspaces",
        &WORKSPACES.to_string(),
        "--cost-speed",
        "4",
        "--cost-default-rows",
        "3000",
    ])
    .await;
    let directory = tempfile::tempdir().expect("temp dir");
    let config = directory.path().join("honcho_exporter.yml");
    let port = free_port();
    // A request-rate bound far above the test's load: only the in-flight cap limits overlap.
    std::fs::write(
        &config,
        format!(
            "web:\n  listen_addresses: [\"127.0.0.1:{port}\"]\nhoncho:\n  url: {sim_url}\n  max_requests_per_second: 10000\npoll:\n  interval: 2s\n  concurrency: {CONCURRENCY}\n"
        ),
    )
    .expect("write config");
    let (exporter, _base) =
        launch_exporter(&[&format!("--config.file={}", config.display())], &[], port).await;
    let client = http_client();

    // Two rounds of status polls before the reload.
    let before = cost_meter_after(&client, &sim_url, 2 * WORKSPACES, "before SIGHUP").await;
    client
        .post(format!("{sim_url}/_sim/cost/reset"))
        .send()
        .await
        .expect("the simulator resets its meter");
    exporter.signal("HUP");
    exporter
        .wait_for_output("configuration reloaded", Duration::from_secs(20))
        .await;
    // Three rounds after it.
    let after = cost_meter_after(&client, &sim_url, 3 * WORKSPACES, "after SIGHUP").await;
    eprintln!(
        "peak requests in flight: {} before SIGHUP, {} after (poll.concurrency {CONCURRENCY}, {WORKSPACES} workspaces, {} costed requests after)",
        before.peak_in_flight, after.peak_in_flight, after.requests
    );
    assert!(
        before.peak_in_flight <= CONCURRENCY,
        "{} requests in flight at once before SIGHUP, poll.concurrency {CONCURRENCY}",
        before.peak_in_flight
    );
    assert!(
        after.peak_in_flight <= CONCURRENCY,
        "{} requests in flight at once after SIGHUP, poll.concurrency {CONCURRENCY}",
        after.peak_in_flight
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Soak (time-compressed)
// ---------------------------------------------------------------------------------------------

/// One step of the simulator churn: an admin endpoint and its JSON body.
const CHURN: [(&str, &str); 8] = [
    ("scenario", r#"{"scenario":"mixed"}"#),
    (
        "faults",
        r#"{"rules":[{"endpoint":"work_units","times":1,"action":{"kind":"vanish_mid_walk"}}]}"#,
    ),
    ("generation", r#"{"generation":"b"}"#),
    ("generation", r#"{"generation":"c"}"#),
    ("scenario", r#"{"scenario":"healthy"}"#),
    (
        "faults",
        r#"{"rules":[{"endpoint":"work_units","times":2,"action":{"kind":"vanish_mid_walk"}}]}"#,
    ),
    ("scenario", r#"{"scenario":"stall_then_overdue"}"#),
    ("scenario", r#"{"scenario":"healthy"}"#),
];

/// 20 s at a 50 ms poll interval against a churning simulator: the series count never grows
/// past what the first half saw (plus slack) and RSS stays flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_compressed_soak_keeps_series_and_memory_flat() {
    const RUN: Duration = Duration::from_secs(20);
    const CHURN_EVERY: Duration = Duration::from_millis(500);
    let (_sim, sim_url) = start_simulator(&[
        "--scenario",
        "healthy",
        "--speed",
        "600",
        "--workspaces",
        "4",
        "--sessions-per-workspace",
        "8",
        "--work-units-per-workspace",
        "60",
    ])
    .await;
    let (exporter, base) = start_exporter(
        &[
            &format!("--honcho.url={sim_url}"),
            "--poll.interval=50ms",
            "--poll.timeout=45ms",
            "--log.level=error",
        ],
        &[
            ("HONCHO_EXPORTER_HONCHO_MAX_REQUESTS_PER_SECOND", "2000"),
            ("HONCHO_EXPORTER_HONCHO_RETRIES", "0"),
        ],
    )
    .await;
    let client = http_client();
    // The run starts once every workspace has been walked: on a loaded machine the first
    // walks can take seconds, and a first half without them would make any later half look
    // like growth.
    let first = SCRAPE
        .deadline(Duration::from_secs(30))
        .until(
            &base,
            "every workspace walked",
            |_| {},
            |s| {
                poll_cycles(s) >= 1.0
                    && crate::util::select(s, "honcho_exporter_walk_duration_seconds", &[]).len()
                        >= 4
            },
        )
        .await;
    let cycles_at_start = poll_cycles(&first);
    let started = Instant::now();
    let mut next_churn = started;
    let mut step = 0;
    // (seconds since start, series, RSS bytes)
    let mut samples: Vec<(f64, usize, u64)> = Vec::new();
    let mut last_text = String::new();
    while started.elapsed() < RUN {
        if Instant::now() >= next_churn {
            let (endpoint, body) = CHURN[step % CHURN.len()];
            let answer = client
                .post(format!("{sim_url}/_sim/{endpoint}"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("simulator admin answers");
            assert_eq!(answer.status(), 200, "{endpoint} {body}");
            step += 1;
            next_churn += CHURN_EVERY;
        }
        if let Some(text) = metrics_text(&client, &base).await {
            samples.push((
                started.elapsed().as_secs_f64(),
                series_count(&text),
                exporter.rss_bytes(),
            ));
            last_text = text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cycles = poll_cycles(&parse_samples(&last_text)) - cycles_at_start;
    let half = RUN.as_secs_f64() / 2.0;
    let (first_half, second_half): (Vec<_>, Vec<_>) =
        samples.iter().partition(|(at, _, _)| *at < half);
    let max_series = |part: &[&(f64, usize, u64)]| part.iter().map(|s| s.1).max().unwrap_or(0);
    let (first_max, second_max) = (max_series(&first_half), max_series(&second_half));
    let early_rss = samples
        .iter()
        .find(|(at, _, _)| *at >= RUN.as_secs_f64() / 4.0)
        .map(|s| s.2)
        .expect("a sample after a quarter of the run");
    let final_rss = samples.last().map(|s| s.2).expect("samples");
    let peak_rss = samples.iter().map(|s| s.2).max().unwrap_or(0);
    println!(
        "soak: {cycles} poll cycles in {:.1?}, {step} churn steps, {} scrapes; series max first half {first_max}, \
         second half {second_max}, last {}; RSS early {} KiB, final {} KiB, peak {} KiB",
        started.elapsed(),
        samples.len(),
        samples.last().map_or(0, |s| s.1),
        early_rss / 1024,
        final_rss / 1024,
        peak_rss / 1024,
    );
    assert!(cycles >= 40.0, "only {cycles} poll cycles in {RUN:?}");
    assert!(first_max > 0 && second_max > 0);
    assert!(
        second_max as f64 <= first_max as f64 * 1.1 + 20.0,
        "series grew: max {first_max} in the first half, {second_max} in the second"
    );
    assert!(
        final_rss as f64 <= early_rss as f64 * 1.5 + 8.0 * 1024.0 * 1024.0,
        "RSS grew from {early_rss} to {final_rss} bytes"
    );
}
