//! Shared test helpers: fixture access, a replay server that answers each recorded request
//! with the recorded status and body, byte for byte, over real loopback HTTP, the parsing of an
//! exposition into samples, the suite's one way to scrape `/metrics` ([`Scrape`], [`scrape`],
//! [`scrape_until`]: bounded waits on evidence, never a sleep then an assertion), and the test
//! tiers for outside tools.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The repository's `tests/data` directory.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// A recorded Honcho fixture's bytes (`tests/data/honcho/<relative>`).
pub fn fixture(relative: &str) -> Vec<u8> {
    let path = data_dir().join("honcho").join(relative);
    std::fs::read(&path)
        .unwrap_or_else(|error| panic!("cannot read fixture {}: {error}", path.display()))
}

/// One entry of `tests/data/honcho/index.json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Recorded {
    /// Path of the body file relative to `tests/data/honcho`.
    pub file: String,
    /// The request that produced it.
    pub request: RecordedRequest,
    /// The response status.
    pub status: u16,
}

/// The recorded request.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RecordedRequest {
    /// `GET` / `POST`.
    pub method: String,
    /// The path.
    pub url_path: String,
    /// The raw query string (may be empty).
    pub query: String,
    /// Extra headers sent (Authorization for the auth fixtures).
    pub extra_headers: BTreeMap<String, String>,
}

/// Every recorded fixture.
pub fn recorded() -> Vec<Recorded> {
    serde_json::from_slice(&fixture("index.json")).expect("index.json parses")
}

/// A route of the replay server.
#[derive(Debug, Clone)]
pub struct Route {
    /// The fixture it came from (for messages).
    pub file: String,
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Raw query; an empty one also answers requests whose only parameters are `page`/`size`.
    pub query: String,
    /// Required `Authorization` header, if any.
    pub authorization: Option<String>,
    /// Status to answer.
    pub status: u16,
    /// Body to answer.
    pub body: Bytes,
}

/// The routes of one recorded server (a folder of `tests/data/honcho`).
pub fn routes_of(folder: &str) -> Vec<Route> {
    recorded()
        .into_iter()
        .filter(|entry| entry.file.starts_with(&format!("{folder}/")))
        .map(|entry| Route {
            body: Bytes::from(fixture(&entry.file)),
            file: entry.file,
            method: entry.request.method,
            path: entry.request.url_path,
            query: entry.request.query,
            authorization: entry.request.extra_headers.get("Authorization").cloned(),
            status: entry.status,
        })
        .collect()
}

/// A loopback server replaying recorded responses; unknown routes get Honcho's 404 body.
pub struct ReplayServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Requests received: `METHOD path?query`.
    pub log: Arc<Mutex<Vec<String>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl ReplayServer {
    /// Starts serving `routes` on a free loopback port.
    pub async fn start(routes: Vec<Route>) -> ReplayServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address: SocketAddr = listener.local_addr().expect("local address");
        let routes = Arc::new(routes);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let server_log = Arc::clone(&log);
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = &mut stopped => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                };
                let routes = Arc::clone(&routes);
                let log = Arc::clone(&server_log);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: Request<hyper::body::Incoming>| {
                            let routes = Arc::clone(&routes);
                            let log = Arc::clone(&log);
                            async move { Ok::<_, Infallible>(answer(&routes, &log, &request)) }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ReplayServer {
            url: format!("http://{address}"),
            log,
            stop: Some(stop),
        }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn answer(
    routes: &[Route],
    log: &Mutex<Vec<String>>,
    request: &Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let method = request.method().as_str();
    let path = request.uri().path();
    let query = request.uri().query().unwrap_or("");
    log.lock()
        .expect("log lock")
        .push(format!("{method} {path}?{query}"));
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    let paging_only = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .all(|pair| pair.starts_with("page=") || pair.starts_with("size="));
    let auth_matches = |route: &Route| match &route.authorization {
        Some(required) => authorization == Some(required.as_str()),
        None => authorization.is_none() || !routes.iter().any(|r| r.authorization.is_some()),
    };
    let candidates = routes
        .iter()
        .filter(|route| route.method == method && route.path == path && auth_matches(route));
    let exact = candidates.clone().find(|route| route.query == query);
    let chosen = exact.or_else(|| {
        if paging_only {
            candidates.clone().find(|route| route.query.is_empty())
        } else {
            None
        }
    });
    let (status, body) = match chosen {
        Some(route) => (route.status, route.body.clone()),
        None => (404, Bytes::from_static(br#"{"detail":"Not Found"}"#)),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("recorded status is valid");
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert("server", hyper::header::HeaderValue::from_static("uvicorn"));
    response
}

/// One parsed sample of a text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// The sample name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// Parses the samples of a text 0.0.4 or OpenMetrics body (comments skipped; label values
/// unescaped). Enough for assertions; the strict validation is done by real parsers.
pub fn parse_samples(body: &str) -> Vec<ParsedSample> {
    let mut samples = Vec::new();
    for line in body.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name_end, mut rest) = match line.find(['{', ' ']) {
            Some(index) => (index, &line[index..]),
            None => panic!("bad sample line: {line}"),
        };
        let name = line[..name_end].to_string();
        let mut labels = BTreeMap::new();
        if rest.starts_with('{') {
            rest = &rest[1..];
            loop {
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let equals = rest.find('=').expect("label =");
                let label = rest[..equals].trim_start_matches(',').to_string();
                rest = &rest[equals + 2..];
                let mut value = String::new();
                let mut characters = rest.char_indices();
                let end = loop {
                    let (index, character) = characters.next().expect("closing quote");
                    match character {
                        '\\' => match characters.next().expect("escape").1 {
                            'n' => value.push('\n'),
                            other => value.push(other),
                        },
                        '"' => break index,
                        other => value.push(other),
                    }
                };
                labels.insert(label, value);
                rest = rest[end + 1..].trim_start_matches(',');
            }
        }
        let value_text = rest.split_whitespace().next().expect("a value");
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            number => number
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        samples.push(ParsedSample {
            name,
            labels,
            value,
        });
    }
    samples
}

/// The samples named `name` whose labels include all of `matching`.
pub fn select<'a>(
    samples: &'a [ParsedSample],
    name: &str,
    matching: &[(&str, &str)],
) -> Vec<&'a ParsedSample> {
    samples
        .iter()
        .filter(|sample| sample.name == name)
        .filter(|sample| {
            matching
                .iter()
                .all(|(label, value)| sample.labels.get(*label).map(String::as_str) == Some(*value))
        })
        .collect()
}

/// Sum of the samples `select` returns.
pub fn sum(samples: &[ParsedSample], name: &str, matching: &[(&str, &str)]) -> f64 {
    select(samples, name, matching)
        .iter()
        .map(|sample| sample.value)
        .sum()
}

/// Test tiers. Returns true when `tool` (a program on `PATH`, or an absolute path) can run.
/// When it cannot: with `HONCHO_EXPORTER_FULL_TESTS=1` (set by `scripts/test.sh`, which
/// installs every tool) the test fails naming the tool; otherwise it prints one line naming the
/// tool and the Debian/PyPI package that provides it and returns false, and the caller returns
/// early (the test is skipped on a machine with only a Rust toolchain).
///
/// ```ignore
/// if !util::require_tool("promtool", "Debian package `prometheus`") { return; }
/// ```
pub fn require_tool(tool: &str, provided_by: &str) -> bool {
    let found = if tool.contains('/') {
        std::path::Path::new(tool).is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
    };
    found || missing(tool, provided_by)
}

/// Test tiers for a Python module: true when `python3` runs and can `import module`; otherwise
/// the same skip line (or, under `HONCHO_EXPORTER_FULL_TESTS=1`, failure) as [`require_tool`],
/// naming the module and its package (e.g. "PyPI package `prometheus_client`").
pub fn require_python_module(module: &str, provided_by: &str) -> bool {
    if !require_tool("python3", "Debian package `python3`") {
        return false;
    }
    let importable = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    importable || missing(&format!("the Python module {module}"), provided_by)
}

/// A missing outside tool: fails under `HONCHO_EXPORTER_FULL_TESTS=1`, else one skip line.
fn missing(what: &str, provided_by: &str) -> bool {
    if full_tests() {
        panic!(
            "{what} is required (HONCHO_EXPORTER_FULL_TESTS=1) but not installed: {provided_by}; \
             ./scripts/test.sh installs it"
        );
    }
    // Written to the process's stderr directly rather than with `eprintln!`, which the test
    // harness captures for passing tests: the skip line must show in a plain `cargo test`.
    // libtest names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .map(|name| format!(" {name}"))
        .unwrap_or_default();
    let _ = writeln!(
        std::io::stderr().lock(),
        "skipped{test}: needs {what} ({provided_by}); ./scripts/test.sh installs it"
    );
    false
}

/// Runs `check` and returns the message it panicked with; fails the test when it does not
/// panic. For "this validator rejects that" tests, which must be able to skip first (a
/// `#[should_panic]` test cannot skip).
pub fn panic_message(check: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let payload = std::panic::catch_unwind(check).expect_err("the check was expected to fail");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| {
            payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_string())
        })
        .unwrap_or_default()
}

/// True when `HONCHO_EXPORTER_FULL_TESTS=1`: a missing outside tool is a failure, not a skip.
pub fn full_tests() -> bool {
    std::env::var("HONCHO_EXPORTER_FULL_TESTS").is_ok_and(|value| value == "1")
}

/// How a test scrapes `/metrics` over loopback: the one `scrape` / `scrape_until` of the suite.
/// [`scrape`] and [`scrape_until`] are the defaults; a module that needs more (a liveness
/// ceiling per scrape, another deadline, an exporter that may not answer yet) sets it here.
#[derive(Debug, Clone, Copy)]
pub struct Scrape {
    /// How long `until` keeps scraping before it fails, naming what it waited for.
    deadline: std::time::Duration,
    /// A liveness ceiling every scrape must answer within (not a performance assertion).
    ceiling: Option<std::time::Duration>,
    /// Whether a scrape that fails (not answering, not 200) is retried within the deadline
    /// rather than failing the test (a daemon that is still starting or restarting).
    retry_unanswered: bool,
    /// The pause between two scrapes of `until`.
    pause: std::time::Duration,
}

impl Default for Scrape {
    fn default() -> Self {
        Scrape::new()
    }
}

impl Scrape {
    /// Every scrape must answer 200; `until` waits up to 20 s, scraping every 50 ms.
    pub const fn new() -> Scrape {
        Scrape {
            deadline: std::time::Duration::from_secs(20),
            ceiling: None,
            retry_unanswered: false,
            pause: std::time::Duration::from_millis(50),
        }
    }

    /// `until` fails after `deadline`.
    pub const fn deadline(self, deadline: std::time::Duration) -> Scrape {
        Scrape { deadline, ..self }
    }

    /// Every scrape must answer within `ceiling` (a liveness bound).
    pub const fn ceiling(self, ceiling: std::time::Duration) -> Scrape {
        Scrape {
            ceiling: Some(ceiling),
            ..self
        }
    }

    /// `until` retries a scrape that is not answered (or not 200) until the deadline.
    pub const fn retry_unanswered(self) -> Scrape {
        Scrape {
            retry_unanswered: true,
            ..self
        }
    }

    /// `until` pauses `pause` between scrapes.
    pub const fn pause(self, pause: std::time::Duration) -> Scrape {
        Scrape { pause, ..self }
    }

    /// A client for one `once` or `until` call: never shared between tests, whose runtimes
    /// differ (a pooled connection outlives the runtime that opened it).
    fn client() -> reqwest::Client {
        honcho_exporter::install_crypto_provider();
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("client builds")
    }

    /// `{base}/metrics` as text, or why not (not answering, or the status it answered).
    async fn text(&self, client: &reqwest::Client, base: &str) -> Result<String, String> {
        let started = std::time::Instant::now();
        let response = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .map_err(|error| format!("{base}/metrics not answering: {error}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|error| format!("{base}/metrics body: {error}"))?;
        if let Some(ceiling) = self.ceiling {
            let took = started.elapsed();
            assert!(
                took < ceiling,
                "/metrics took {took:?} (liveness ceiling {ceiling:?})"
            );
        }
        if status != 200 {
            return Err(format!("{base}/metrics answered {status}:\n{text}"));
        }
        Ok(text)
    }

    /// Scrapes `{base}/metrics` once; fails unless it answers 200 (within the ceiling, if set).
    pub async fn once(&self, base: &str) -> Vec<ParsedSample> {
        match self.text(&Scrape::client(), base).await {
            Ok(text) => parse_samples(&text),
            Err(why) => panic!("{why}"),
        }
    }

    /// Scrapes until `done` holds for the samples, running `invariant` on every scrape's
    /// samples; returns the samples `done` accepted. Fails after the deadline, naming `what`
    /// and showing the last `/metrics`.
    pub async fn until(
        &self,
        base: &str,
        what: &str,
        mut invariant: impl FnMut(&[ParsedSample]),
        done: impl Fn(&[ParsedSample]) -> bool,
    ) -> Vec<ParsedSample> {
        let deadline = std::time::Instant::now() + self.deadline;
        let client = Scrape::client();
        loop {
            let last = match self.text(&client, base).await {
                Ok(text) => {
                    let samples = parse_samples(&text);
                    invariant(&samples);
                    if done(&samples) {
                        return samples;
                    }
                    text
                }
                Err(why) if self.retry_unanswered => why,
                Err(why) => panic!("{why}\n(while waiting for: {what})"),
            };
            assert!(
                std::time::Instant::now() < deadline,
                "not within {:?}: {what}\nlast /metrics:\n{last}",
                self.deadline
            );
            tokio::time::sleep(self.pause).await;
        }
    }
}

/// Scrapes `{base}/metrics` once; fails unless it answers 200.
pub async fn scrape(base: &str) -> Vec<ParsedSample> {
    Scrape::new().once(base).await
}

/// Scrapes `{base}/metrics` until `done` holds (within 20 s, else fails naming `what`);
/// returns the accepted samples.
pub async fn scrape_until(
    base: &str,
    what: &str,
    done: impl Fn(&[ParsedSample]) -> bool,
) -> Vec<ParsedSample> {
    Scrape::new().until(base, what, |_| {}, done).await
}

/// Python truthiness of a JSON value (null, false, 0, "", [] and {} are false), the rule the
/// dashboard and deploy file checks were first written in.
pub fn truthy(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64() != Some(0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(entries) => !entries.is_empty(),
    }
}
