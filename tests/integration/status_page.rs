//! The landing page in a real browser: headless Chromium (Debian `chromium`), driven through
//! `chromedriver` (Debian `chromium-driver`) by a small WebDriver client over reqwest (WebDriver
//! is JSON over HTTP), JavaScript disabled in the browser: the page must be readable without
//! it. Against a frozen simulator holding one workspace per verdict, it asserts what a person
//! sees: the verdict rows in order (worst first), a hostile session name rendered as text (no
//! element made from it), and the page reloading itself to a new verdict when the simulator
//! starts failing a workspace's status polls. Saves a screenshot to
//! `target/status-page.png` (`UPDATE_SCREENSHOT=1` also writes `docs/status-page.png`, the one
//! README shows).
//!
//! Skipped with one line in a plain `cargo test` when chromedriver or chromium is missing; a
//! failure under `HONCHO_EXPORTER_FULL_TESTS=1` (see [`util::require_tool`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use honcho_sim::{
    EndpointKind, FaultAction, FaultRule, Faults, LoadedUnit, LoadedWorkspace, QueueState,
};
use serde_json::{Value, json};

use crate::end_to_end::start_ready;
use crate::util;
use crate::verdicts::{fast_settings, frozen, one_unit};

/// A session name that is HTML.
const HOSTILE_SESSION: &str = "<img src=x onerror=alert(1)>";

/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver, killed (by its pid) when dropped.
struct Driver {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("chromedriver")
            .args([
                format!("--port={port}"),
                "--allowed-ips=127.0.0.1".to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        honcho_exporter::install_crypto_provider();
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(response) = driver
                .client
                .get(format!("{}/status", driver.base))
                .send()
                .await
                && let Ok(body) = response.bytes().await
                && let Ok(status) = serde_json::from_slice::<Value>(&body)
                && status["value"]["ready"] == true
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let body = request
            .send()
            .await
            .expect("chromedriver answers")
            .bytes()
            .await
            .expect("chromedriver's answer");
        let answer: Value = serde_json::from_slice(&body).expect("chromedriver answers JSON");
        answer["value"].clone()
    }
}

/// One browser session.
struct Browser<'a> {
    driver: &'a Driver,
    session: String,
}

impl<'a> Browser<'a> {
    async fn open(driver: &'a Driver) -> Browser<'a> {
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1100,760"],
                // The page must not need JavaScript.
                "prefs": {"profile.managed_default_content_settings.javascript": 2}
            }
        }}});
        let value = driver
            .call(reqwest::Method::POST, "/session", Some(capabilities))
            .await;
        let session = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {value}"))
            .to_string();
        Browser { driver, session }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The elements matching `css`, or `None` when the page changed under the query.
    async fn elements(&self, css: &str) -> Option<Vec<String>> {
        let value = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        value.as_array().map(|elements| {
            elements
                .iter()
                .filter_map(|element| element[ELEMENT].as_str().map(str::to_string))
                .collect()
        })
    }

    async fn text_of(&self, element: &str, css: &str) -> Option<String> {
        let found = self
            .call(
                reqwest::Method::POST,
                &format!("/element/{element}/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let inner = found[ELEMENT].as_str()?;
        self.call(
            reqwest::Method::GET,
            &format!("/element/{inner}/text"),
            None,
        )
        .await
        .as_str()
        .map(str::to_string)
    }

    /// The verdict rows as (workspace, verdict, reason), as displayed; `None` mid-reload.
    async fn rows(&self) -> Option<Vec<(String, String, String)>> {
        let mut rows = Vec::new();
        for row in self.elements("#verdicts tbody tr").await? {
            rows.push((
                self.text_of(&row, "td.workspace").await?,
                self.text_of(&row, "td.verdict").await?,
                self.text_of(&row, "td.reason").await?,
            ));
        }
        Some(rows)
    }

    /// Waits (bounded) until the rows satisfy `wanted`, never navigating: the page must reload
    /// itself.
    async fn rows_until(
        &self,
        what: &str,
        wanted: impl Fn(&[(String, String, String)]) -> bool,
    ) -> Vec<(String, String, String)> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = None;
        loop {
            if let Some(rows) = self.rows().await {
                if wanted(&rows) {
                    return rows;
                }
                last = Some(rows);
            }
            if Instant::now() >= deadline {
                let source = self.call(reqwest::Method::GET, "/source", None).await;
                panic!("{what}: never shown; last rows {last:#?}; page source: {source}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&self) -> Vec<u8> {
        let value = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(value.as_str().expect("a base64 screenshot"))
            .expect("valid base64")
    }

    async fn close(self) {
        self.driver
            .call(
                reqwest::Method::DELETE,
                &format!("/session/{}", self.session),
                None,
            )
            .await;
    }
}

/// One workspace per verdict: a hung unit in a hostile-named session (stuck_in_progress), a
/// sub-threshold unit past the max age (overdue), one below the threshold (waiting_for_tokens)
/// and an empty queue (ok).
fn page_state() -> QueueState {
    let mut workspaces = Vec::new();
    let mut add = |state: QueueState| workspaces.extend(state.workspaces);
    add(one_unit(
        "hooli",
        HOSTILE_SESSION,
        80,
        Duration::from_secs(40 * 60),
        true,
    ));
    add(one_unit(
        "initech",
        "chat",
        60,
        Duration::from_secs(45 * 60),
        false,
    ));
    add(one_unit(
        "acme",
        "chat",
        50,
        Duration::from_secs(5 * 60),
        false,
    ));
    workspaces.push(LoadedWorkspace {
        name: "globex".to_string(),
        sessions: Vec::new(),
        units: Vec::<LoadedUnit>::new(),
    });
    QueueState { workspaces }
}

fn verdict_order(rows: &[(String, String, String)]) -> Vec<(&str, &str)> {
    rows.iter()
        .map(|(workspace, verdict, _)| (workspace.as_str(), verdict.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_landing_page_shows_the_verdicts_worst_first_and_refreshes_itself() {
    if !util::require_tool("chromedriver", "Debian package `chromium-driver`")
        || !util::require_tool("chromium", "Debian package `chromium`")
    {
        return;
    }
    let honcho = frozen(&page_state()).await;
    let (exporter, base) = start_ready(fast_settings(&honcho.url())).await;
    let driver = Driver::start().await;
    let browser = Browser::open(&driver).await;
    browser.go(&format!("{base}/")).await;

    let rows = browser
        .rows_until("the four verdicts", |rows| rows.len() == 4)
        .await;
    assert_eq!(
        verdict_order(&rows),
        [
            ("hooli", "stuck_in_progress"),
            ("initech", "overdue"),
            ("acme", "waiting_for_tokens"),
            ("globex", "ok"),
        ]
    );
    // The hostile session name is text in the reason, and no element was made of it.
    assert!(
        rows[0]
            .2
            .contains(&format!("session \"{HOSTILE_SESSION}\"")),
        "{}",
        rows[0].2
    );
    assert_eq!(browser.elements("img").await, Some(Vec::new()));
    // The links to the numbers.
    for href in ["/metrics", "/status"] {
        let links = browser
            .elements(&format!("a[href=\"{href}\"]"))
            .await
            .unwrap_or_default();
        assert_eq!(links.len(), 1, "a link to {href}");
    }

    let screenshot = browser.screenshot().await;
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG screenshot");
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/status-page.png");
    std::fs::write(&target, &screenshot).expect("write the screenshot");
    if std::env::var("UPDATE_SCREENSHOT").is_ok_and(|value| value == "1") {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png");
        std::fs::write(docs, &screenshot).expect("write docs/status-page.png");
    }

    // Honcho starts failing globex's status polls: once its status is past poll.max_staleness,
    // the page (reloading itself; the test does not navigate) says the exporter cannot see it.
    honcho.simulator.set_faults(Faults::one(
        FaultRule::new(FaultAction::ServerError { status: 500 })
            .for_workspace("globex")
            .for_endpoint(EndpointKind::Status),
    ));
    let rows = browser
        .rows_until("globex unknown", |rows| {
            rows.iter()
                .any(|(workspace, verdict, _)| workspace == "globex" && verdict == "unknown")
        })
        .await;
    assert_eq!(
        verdict_order(&rows),
        [
            ("hooli", "stuck_in_progress"),
            ("initech", "overdue"),
            ("globex", "unknown"),
            ("acme", "waiting_for_tokens"),
        ]
    );
    assert!(rows[2].2.contains("polls of status fail"), "{}", rows[2].2);
    browser.close().await;
    exporter.stop().await;
}
