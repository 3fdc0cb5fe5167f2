//! End to end over loopback: recorded real Honcho responses served by the replay server, the
//! real exporter (poller + HTTP server) polling them, and `/metrics` scraped over HTTP; then a
//! real Prometheus (Debian's `prometheus`) scraping the exporter.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use honcho_exporter::app::Exporter;
use honcho_exporter::config::Settings;

use crate::util::{ReplayServer, Route, routes_of, scrape, select, sum};

/// Settings for a test exporter on a free loopback port polling `url`.
pub fn test_settings(url: &str) -> Settings {
    let mut settings = Settings::with_url(url.parse().expect("URL"));
    settings.web.listen_addresses = vec!["127.0.0.1:0".parse().expect("address")];
    settings.poll.interval = Duration::from_secs(60);
    settings.poll.max_staleness = Duration::from_secs(180);
    settings.honcho.retries = 0;
    settings
}

/// Starts an exporter without waiting for its first poll; returns it and its base URL.
pub async fn start_unready(settings: Settings) -> (Exporter, String) {
    let settings = Arc::new(settings);
    let listeners = honcho_exporter::app::bind(&settings).await.expect("bind");
    let exporter = Exporter::start(settings, listeners).expect("exporter starts");
    let base = format!("http://{}", exporter.addresses[0]);
    (exporter, base)
}

/// Starts an exporter and waits for its first complete poll.
pub async fn start_ready(settings: Settings) -> (Exporter, String) {
    let (exporter, base) = start_unready(settings).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !exporter.is_ready() {
        assert!(Instant::now() < deadline, "no complete poll within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (exporter, base)
}

/// GET `url` with optional Accept/Accept-Encoding; returns (status, content-type, body bytes).
pub async fn get(url: &str, accept: Option<&str>, gzip: bool) -> (u16, String, Vec<u8>) {
    honcho_exporter::install_crypto_provider();
    let client = reqwest::Client::builder().build().expect("client");
    let mut request = client.get(url);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let response = request.send().await.expect("response");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.bytes().await.expect("body").to_vec();
    (status, content_type, body)
}

fn dev_routes() -> Vec<Route> {
    let mut routes = routes_of("dev-1790");
    // initech-empty's walk was not recorded; real Honcho answers an empty workspace exactly
    // like an unknown one (200, empty page).
    let empty_page = routes
        .iter()
        .find(|route| route.file.ends_with("work-units__unknown-workspace.json"))
        .cloned()
        .expect("unknown-workspace page");
    routes.push(Route {
        path: "/v3/workspaces/initech-empty/queue/work-units".into(),
        ..empty_page
    });
    routes
}

#[tokio::test]
async fn generation_c_exports_what_the_api_returned() {
    let honcho = ReplayServer::start(dev_routes()).await;
    let mut settings = test_settings(&honcho.url);
    // The recorded globex walk is in pages of 2.
    settings.work_units.page_size = 2;
    let (exporter, base) = start_ready(settings).await;
    let samples = scrape(&base).await;
    for (workspace, total) in [
        ("acme-support", 14.0),
        ("globex-research", 25.0),
        ("initech-empty", 0.0),
        ("umbrella-archive", 5.0),
    ] {
        assert_eq!(
            sum(&samples, "honcho_queue_items", &[("workspace", workspace)]),
            total,
            "{workspace}"
        );
        for endpoint in ["status", "work_units"] {
            assert_eq!(
                sum(
                    &samples,
                    "honcho_exporter_up",
                    &[("workspace", workspace), ("upstream", endpoint)]
                ),
                1.0,
                "{workspace}/{endpoint} up"
            );
        }
    }
    assert_eq!(
        sum(
            &samples,
            "honcho_queue_items",
            &[
                ("workspace", "globex-research"),
                ("state", "pending_stalled")
            ]
        ),
        21.0
    );
    let globex = [
        ("workspace", "globex-research"),
        ("task_type", "representation"),
    ];
    let stalled_or_overdue = sum(
        &samples,
        "honcho_queue_work_units",
        &[globex[0], globex[1], ("state", "stalled")],
    ) + sum(
        &samples,
        "honcho_queue_work_units",
        &[globex[0], globex[1], ("state", "overdue")],
    );
    assert_eq!(stalled_or_overdue, 3.0);
    assert_eq!(
        sum(
            &samples,
            "honcho_queue_work_units",
            &[globex[0], globex[1], ("state", "in_progress")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &samples,
            "honcho_exporter_api_generation",
            &[("generation", "c")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &samples,
            "honcho_exporter_feature_available",
            &[("feature", "work_units")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &samples,
            "honcho_exporter_feature_available",
            &[("feature", "status_split")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &samples,
            "honcho_deriver_representation_batch_max_tokens",
            &[]
        ),
        200.0
    );
    assert_eq!(
        sum(&samples, "honcho_exporter_up", &[("upstream", "discovery")]),
        1.0
    );
    assert_eq!(sum(&samples, "honcho_exporter_workspaces", &[]), 4.0);
    assert!(!select(&samples, "process_resident_memory_bytes", &[]).is_empty());
    exporter.stop().await;
}

#[tokio::test]
async fn generation_b_shows_no_stalled_series_and_no_walk() {
    let honcho = ReplayServer::start(routes_of("main")).await;
    let mut settings = test_settings(&honcho.url);
    settings.workspaces.static_list = vec!["globex-research".into()];
    let (exporter, base) = start_ready(settings).await;
    let samples = scrape(&base).await;
    assert_eq!(
        sum(
            &samples,
            "honcho_queue_items",
            &[("workspace", "globex-research")]
        ),
        25.0
    );
    assert!(
        select(
            &samples,
            "honcho_queue_items",
            &[("state", "pending_stalled")]
        )
        .is_empty()
    );
    assert_eq!(
        sum(&samples, "honcho_queue_items", &[("state", "pending")]),
        23.0
    );
    assert!(select(&samples, "honcho_queue_work_units", &[]).is_empty());
    assert_eq!(
        sum(
            &samples,
            "honcho_exporter_feature_available",
            &[("feature", "work_units")]
        ),
        0.0
    );
    assert_eq!(
        sum(
            &samples,
            "honcho_exporter_feature_available",
            &[("feature", "status_split")]
        ),
        0.0
    );
    assert_eq!(
        sum(
            &samples,
            "honcho_exporter_api_generation",
            &[("generation", "b")]
        ),
        1.0
    );
    // The 404 of work-units is a missing feature, not an error.
    assert!(
        select(
            &samples,
            "honcho_exporter_poll_errors_total",
            &[("upstream", "work_units")]
        )
        .is_empty()
    );
    assert!(
        select(
            &samples,
            "honcho_exporter_up",
            &[("upstream", "work_units")]
        )
        .is_empty()
    );
    exporter.stop().await;
}

#[tokio::test]
async fn generation_a_is_detected_and_discovered_on_v2() {
    let honcho = ReplayServer::start(routes_of("v2.5.1")).await;
    let mut settings = test_settings(&honcho.url);
    // Only these two were recorded on the 2.x server.
    settings.workspaces.allow =
        Some(regex::Regex::new("^(?:acme-support|globex-research)$").expect("regex"));
    let (exporter, base) = start_ready(settings).await;
    let samples = scrape(&base).await;
    assert_eq!(
        sum(
            &samples,
            "honcho_exporter_api_generation",
            &[("generation", "a")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &samples,
            "honcho_queue_items",
            &[("workspace", "acme-support")]
        ),
        22.0
    );
    assert_eq!(
        sum(
            &samples,
            "honcho_queue_items",
            &[("workspace", "globex-research")]
        ),
        24.0
    );
    assert_eq!(
        sum(&samples, "honcho_exporter_workspaces", &[]),
        2.0,
        "allow regex applied"
    );
    assert!(
        honcho
            .requests()
            .iter()
            .any(|request| request.starts_with("POST /v2/workspaces/list"))
    );
    assert!(
        select(
            &samples,
            "honcho_queue_items",
            &[("state", "pending_stalled")]
        )
        .is_empty()
    );
    exporter.stop().await;
}

#[tokio::test]
async fn metrics_are_negotiated_with_exact_content_types_and_gzip() {
    let honcho = ReplayServer::start(dev_routes()).await;
    let (exporter, base) = start_ready(test_settings(&honcho.url)).await;
    let url = format!("{base}/metrics");
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (_, content_type, body) = get(&url, Some(prometheus_accept), false).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with(b"# EOF\n"));
    crate::validators::assert_valid_openmetrics(&body);
    let (_, content_type, text) = get(&url, None, false).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    crate::validators::assert_valid_text(&text);
    // gzip: one member (cached compressed pieces + the scrape-time tail compressed per scrape),
    // which a decoder of a single member reads whole.
    let client = reqwest::Client::builder().build().expect("client");
    let response = client
        .get(&url)
        .header("accept", prometheus_accept)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("gzip response");
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let compressed = response.bytes().await.expect("body");
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut decoded)
        .expect("valid gzip");
    assert!(decoded.starts_with(b"# HELP honcho_queue_items"));
    assert!(decoded.ends_with(b"# EOF\n"));
    crate::validators::assert_valid_openmetrics(&decoded);
    // curl (zlib) stops after the first gzip member: it must see the whole body too.
    if crate::util::require_tool("curl", "Debian package `curl`") {
        // Off the test's one runtime thread, which also serves the exporter.
        let curl_url = url.clone();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-sS", "--max-time", "30", "--compressed", "-H"])
                .arg(format!("Accept: {prometheus_accept}"))
                .arg(&curl_url)
                .output()
                .expect("curl runs")
        })
        .await
        .expect("the curl task ends");
        assert!(output.status.success(), "curl failed: {output:?}");
        let body = output.stdout;
        assert!(
            body.ends_with(b"# EOF\n"),
            "curl --compressed got a cut body"
        );
        crate::validators::assert_valid_openmetrics(&body);
    }
    exporter.stop().await;
}

#[tokio::test]
async fn landing_health_and_readiness_pages_answer() {
    let honcho = ReplayServer::start(dev_routes()).await;
    let (exporter, base) = start_ready(test_settings(&honcho.url)).await;
    let (status, content_type, body) = get(&format!("{base}/"), None, false).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"));
    let page = String::from_utf8(body).expect("UTF-8");
    assert!(
        page.contains("globex-research") && page.contains("/metrics"),
        "{page}"
    );
    assert_eq!(get(&format!("{base}/-/healthy"), None, false).await.0, 200);
    assert_eq!(get(&format!("{base}/-/ready"), None, false).await.0, 200);
    assert_eq!(get(&format!("{base}/nope"), None, false).await.0, 404);
    exporter.stop().await;
}

#[tokio::test]
async fn readiness_is_503_until_the_first_poll_completes() {
    // A Honcho that never answers: the first poll cannot complete within the test.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent = format!("http://{}", listener.local_addr().expect("address"));
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let mut settings = test_settings(&silent);
    settings.poll.timeout = Duration::from_secs(30);
    let (exporter, base) = start_unready(settings).await;
    assert_eq!(get(&format!("{base}/-/ready"), None, false).await.0, 503);
    assert_eq!(get(&format!("{base}/-/healthy"), None, false).await.0, 200);
    let (status, _, body) = get(&format!("{base}/metrics"), None, false).await;
    assert_eq!(status, 200, "metrics answer while Honcho hangs");
    assert!(String::from_utf8_lossy(&body).contains("honcho_exporter_build_info"));
    exporter.stop().await;
    held.abort();
}

/// A real Prometheus process, stopped on drop.
pub struct PrometheusProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _data: tempfile::TempDir,
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, then released for the child process to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// Starts Debian's `prometheus` with `config` (YAML) and optional rule files.
pub fn start_prometheus(config: &str) -> PrometheusProcess {
    let data = tempfile::tempdir().expect("temp dir");
    let config_path = data.path().join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write config");
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!("--storage.tsdb.path={}", data.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.console.templates=/dev/null")
        .arg("--web.console.libraries=/dev/null")
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start prometheus ({error}); run ./scripts/test.sh, which installs Debian's prometheus package"));
    PrometheusProcess {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _data: data,
    }
}

/// Runs an instant query until `accept` says yes or `timeout` passes; returns the last result.
pub async fn query_until(
    prometheus: &PrometheusProcess,
    query: &str,
    timeout: Duration,
    accept: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    honcho_exporter::install_crypto_provider();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    loop {
        let result = match client
            .get(
                url::Url::parse_with_params(
                    &format!("{}/api/v1/query", prometheus.url),
                    [("query", query)],
                )
                .expect("query URL"),
            )
            .send()
            .await
        {
            Ok(response) => match response.bytes().await {
                Ok(body) => serde_json::from_slice(&body).unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            },
            Err(_) => serde_json::Value::Null,
        };
        let data = result["data"]["result"].clone();
        if accept(&data) || Instant::now() > deadline {
            return data;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_exporter() {
    if !crate::util::require_tool("prometheus", "Debian package `prometheus`") {
        return;
    }
    let honcho = ReplayServer::start(dev_routes()).await;
    let mut settings = test_settings(&honcho.url);
    settings.poll.interval = Duration::from_secs(1);
    settings.work_units.page_size = 2;
    let (exporter, base) = start_ready(settings).await;
    let target = base.trim_start_matches("http://");
    let prometheus = start_prometheus(&format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: honcho\n    static_configs:\n      - targets: ['{target}']\n"
    ));
    let up = query_until(
        &prometheus,
        "up{job=\"honcho\"}",
        Duration::from_secs(60),
        |data| data[0]["value"][1] == "1",
    )
    .await;
    assert_eq!(
        up[0]["value"][1], "1",
        "Prometheus scraped the exporter: {up}"
    );
    for family in [
        "honcho_queue_items",
        "honcho_queue_session_items",
        "honcho_queue_session_info",
        "honcho_queue_work_units",
        "honcho_queue_oldest_item_age_seconds",
        "honcho_queue_work_unit_age_seconds",
        "honcho_exporter_up",
        "honcho_exporter_build_info",
        "process_resident_memory_bytes",
    ] {
        let data = query_until(&prometheus, family, Duration::from_secs(10), |data| {
            data.as_array().is_some_and(|series| !series.is_empty())
        })
        .await;
        assert!(
            data.as_array().is_some_and(|series| !series.is_empty()),
            "{family} missing in Prometheus"
        );
    }
    let total = query_until(
        &prometheus,
        "sum(honcho_queue_items{workspace=\"globex-research\"})",
        Duration::from_secs(10),
        |data| data[0]["value"][1] == "25",
    )
    .await;
    assert_eq!(total[0]["value"][1], "25");
    drop(prometheus);
    exporter.stop().await;
}

#[tokio::test]
async fn shards_poll_disjoint_workspaces_whose_union_is_all_of_them() {
    use honcho_sim::{Generation, Scale, Scenario, Simulator, SimulatorConfig};
    let simulator = Simulator::start(SimulatorConfig {
        scenario: Scenario::Healthy,
        scale: Scale {
            workspaces: 12,
            sessions_per_workspace: 2,
            work_units_per_workspace: 5,
        },
        speed: 0.0,
        ..SimulatorConfig::recorded(Generation::C)
    })
    .await
    .expect("simulator starts");
    let all: std::collections::BTreeSet<String> = simulator
        .simulator
        .truth()
        .workspaces
        .keys()
        .cloned()
        .collect();
    assert_eq!(all.len(), 12);
    let mut seen = std::collections::BTreeSet::new();
    for index in 0..3 {
        let mut settings = test_settings(&simulator.url());
        settings.shard = honcho_exporter::config::ShardSettings { count: 3, index };
        let (exporter, base) = start_ready(settings).await;
        let samples = scrape(&base).await;
        for sample in select(&samples, "honcho_exporter_up", &[("upstream", "status")]) {
            let workspace = sample.labels["workspace"].clone();
            assert_eq!(sample.value, 1.0, "{workspace} up");
            assert!(
                seen.insert(workspace.clone()),
                "{workspace} polled by two shards"
            );
        }
        exporter.stop().await;
    }
    assert_eq!(
        seen, all,
        "the shards together poll every workspace exactly once"
    );
    simulator.shutdown().await;
}

/// One work unit of a work-units page, stalled (unclaimed, below the threshold).
fn stalled_unit(key: &str, oldest_item_at: &str) -> String {
    format!(
        r#"{{"work_unit_key":"representation:acme-support:{key}:alice","task_type":"representation","session_id":"id-{key}","session_name":"{key}","observed":"alice","pending_items":1,"pending_tokens":10,"tokens_until_threshold":90,"hit_threshold":false,"in_progress":false,"oldest_item_at":"{oldest_item_at}"}}"#
    )
}

#[tokio::test]
async fn a_naive_oldest_item_at_is_utc_and_an_unparseable_one_gets_no_made_up_age() {
    let two_hours_ago = chrono::Utc::now() - chrono::TimeDelta::hours(2);
    let naive = two_hours_ago.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    let page = format!(
        r#"{{"items":[{},{}],"total":2,"next_page":null,"representation_batch_max_tokens":100,"flush_enabled":false}}"#,
        stalled_unit("naive", &naive),
        stalled_unit("garbled", "the day before yesterday"),
    );
    let mut routes: Vec<Route> = routes_of("dev-1790")
        .into_iter()
        .filter(|route| route.path == "/v3/workspaces/acme-support/queue/status")
        .collect();
    assert_eq!(routes.len(), 1, "the recorded acme-support status");
    routes.push(Route {
        path: "/v3/workspaces/acme-support/queue/work-units".into(),
        file: "(built in the test)".into(),
        body: bytes::Bytes::from(page),
        ..routes[0].clone()
    });
    let honcho = ReplayServer::start(routes).await;
    let mut settings = test_settings(&honcho.url);
    settings.workspaces.static_list = vec!["acme-support".to_string()];
    let (exporter, base) = start_ready(settings).await;
    let samples = scrape(&base).await;
    let units = |state: &str| {
        sum(
            &samples,
            "honcho_queue_work_units",
            &[("task_type", "representation"), ("state", state)],
        )
    };
    // Two hours without an offset is two hours in UTC: past the 30 min (+ interval) cut-off.
    assert_eq!(units("overdue"), 1.0, "the naive timestamp read as UTC");
    let age = sum(
        &samples,
        "honcho_queue_oldest_item_age_seconds",
        &[("task_type", "representation"), ("state", "overdue")],
    );
    assert!((7100.0..7300.0).contains(&age), "age {age}");
    // The unparseable one is in no state (no made-up age), and visible as such.
    assert_eq!(
        units("stalled"),
        0.0,
        "no unit is made up to be freshly stalled"
    );
    assert_eq!(
        sum(
            &samples,
            "honcho_exporter_work_units_invalid_timestamp",
            &[("workspace", "acme-support")]
        ),
        1.0
    );
    assert!(
        select(&samples, "honcho_queue_work_unit_age_seconds", &[])
            .iter()
            .all(|sample| !sample.labels.iter().any(|(_, value)| value == "garbled")),
        "no age for the unparseable unit"
    );
    exporter.stop().await;
}
