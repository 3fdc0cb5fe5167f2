//! The simulator's contract: for the recorded scenario of each generation, every recorded
//! real response in `tests/data/honcho/index.json` (folders `dev-1790`, `dev-1790-auth`,
//! `dev-1790-flush`, `main`, `v2.5.1`) is replayed against the simulator over loopback HTTP
//! and compared field for field (the parsed JSON body, every field including `created_at`,
//! timestamps and cursors), plus the status, `content-type`, `server`, `allow` and the exact
//! `content-length` (so the bytes match too, not only the values).
//!
//! Not replayed: `dev-1790-metrics/metrics.txt` (Honcho's own Prometheus text with
//! `METRICS_ENABLED=true`: process and request counters the simulator does not imitate; the
//! simulator serves the `METRICS_ENABLED=false` answer, which `dev-1790/metrics__disabled.txt`
//! pins). Peer-card and 405 fixtures are replayed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use honcho_sim::{Generation, SimAuth, Simulator, SimulatorConfig};
use serde_json::Value;

const ADMIN_TOKEN: &str = "<admin JWT {t:'', ad:true}>";
const GLOBEX_TOKEN: &str = "<workspace JWT {t:'', w:'globex-research'}>";

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/honcho")
}

fn config_for_folder(folder: &str) -> Option<SimulatorConfig> {
    let config = match folder {
        "dev-1790" => SimulatorConfig::recorded(Generation::C),
        "dev-1790-auth" => SimulatorConfig {
            auth: Some(SimAuth {
                admin_tokens: BTreeSet::from([ADMIN_TOKEN.to_owned()]),
                workspace_tokens: BTreeMap::from([(
                    GLOBEX_TOKEN.to_owned(),
                    "globex-research".to_owned(),
                )]),
            }),
            ..SimulatorConfig::recorded(Generation::C)
        },
        "dev-1790-flush" => SimulatorConfig {
            flush_enabled: true,
            ..SimulatorConfig::recorded(Generation::C)
        },
        "main" => SimulatorConfig::recorded(Generation::B),
        "v2.5.1" => SimulatorConfig::recorded(Generation::A),
        _ => return None,
    };
    Some(config)
}

pub(crate) fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .build()
        .expect("a plain reqwest client builds")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Replays one recorded request and returns the differences (empty = identical).
async fn replay(client: &reqwest::Client, base: &str, entry: &Value) -> Vec<String> {
    let file = entry["file"]
        .as_str()
        .expect("index entries name their file");
    let request = &entry["request"];
    let method = request["method"].as_str().expect("method");
    let mut url = format!("{base}{}", request["url_path"].as_str().expect("path"));
    let query = request["query"].as_str().unwrap_or("");
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    let mut builder = client.request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("valid method"),
        &url,
    );
    if !request["body"].is_null() {
        builder = builder
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&request["body"]).expect("body serializes"));
    }
    if let Some(extra) = request["extra_headers"].as_object() {
        for (name, value) in extra {
            builder = builder.header(name, value.as_str().expect("header value"));
        }
    }
    let response = builder
        .send()
        .await
        .unwrap_or_else(|error| panic!("{file}: request failed: {error}"));
    let status = response.status().as_u16();
    let text_header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("").to_owned())
    };
    let content_type = text_header("content-type");
    let server = text_header("server");
    let allow = text_header("allow");
    let www_authenticate = response.headers().contains_key("www-authenticate");
    let body = response.bytes().await.expect("body readable");

    let recorded_headers: Vec<(String, String)> = entry["response_headers"]
        .as_array()
        .expect("headers list")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().expect("name").to_owned(),
                pair[1].as_str().expect("value").to_owned(),
            )
        })
        .collect();
    let mut differences = Vec::new();
    let recorded_status = entry["status"].as_u64().expect("status") as u16;
    if status != recorded_status {
        differences.push(format!("status {status}, recorded {recorded_status}"));
    }
    if content_type.as_deref() != header(&recorded_headers, "content-type") {
        differences.push(format!(
            "content-type {content_type:?}, recorded {:?}",
            header(&recorded_headers, "content-type")
        ));
    }
    if server.as_deref() != Some("uvicorn") {
        differences.push(format!("server header {server:?}"));
    }
    if allow.as_deref() != header(&recorded_headers, "allow") {
        differences.push(format!(
            "allow {allow:?}, recorded {:?}",
            header(&recorded_headers, "allow")
        ));
    }
    if www_authenticate {
        differences.push("unexpected www-authenticate header".to_owned());
    }
    let recorded_length =
        header(&recorded_headers, "content-length").and_then(|v| v.parse::<usize>().ok());
    if recorded_length != Some(body.len()) {
        differences.push(format!(
            "content-length {}, recorded {recorded_length:?}; body {}",
            body.len(),
            String::from_utf8_lossy(&body)
        ));
    }
    let recorded_text = std::fs::read_to_string(data_dir().join(file))
        .unwrap_or_else(|error| panic!("{file}: fixture unreadable: {error}"));
    if file.ends_with(".json") {
        let recorded: Value = serde_json::from_str(&recorded_text).expect("fixture is JSON");
        match serde_json::from_slice::<Value>(&body) {
            Ok(answered) if answered == recorded => {}
            Ok(answered) => differences.push(format!(
                "body differs:\n  answered {answered}\n  recorded {recorded}"
            )),
            Err(error) => differences.push(format!("body is not JSON: {error}")),
        }
    } else if body.as_ref() != recorded_text.trim_end().as_bytes() {
        differences.push(format!(
            "body {:?}, recorded {:?}",
            String::from_utf8_lossy(&body),
            recorded_text
        ));
    }
    differences
}

#[tokio::test]
async fn every_recorded_fixture_is_answered_identically_by_the_recorded_scenario() {
    let index: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(data_dir().join("index.json")).expect("index.json readable"),
    )
    .expect("index.json is JSON");
    let client = http_client();
    let mut handles = BTreeMap::new();
    let mut failures = Vec::new();
    let mut replayed = 0;
    for entry in &index {
        let file = entry["file"].as_str().expect("file");
        let folder = file.split('/').next().expect("folder");
        let Some(config) = config_for_folder(folder) else {
            continue;
        };
        if !handles.contains_key(folder) {
            let handle = Simulator::start(config)
                .await
                .expect("simulator binds loopback");
            handles.insert(folder.to_owned(), handle);
        }
        let base = handles[folder].url();
        let differences = replay(&client, &base, entry).await;
        replayed += 1;
        if !differences.is_empty() {
            failures.push(format!("{file}:\n  {}", differences.join("\n  ")));
        }
    }
    for (_, handle) in handles {
        handle.shutdown().await;
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} fixtures differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        replayed, 67,
        "every fixture except dev-1790-metrics/metrics.txt is replayed"
    );
}

#[test]
fn recorded_truth_matches_the_recorded_queue_status() {
    let simulator = Simulator::new(SimulatorConfig::recorded(Generation::C));
    let truth = simulator.truth();
    let recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(data_dir().join("dev-1790/queue-status__globex-research.json"))
            .expect("fixture readable"),
    )
    .expect("fixture is JSON");
    let globex = &truth.workspaces["globex-research"];
    assert_eq!(
        globex.status.total,
        recorded["total_work_units"].as_u64().expect("n")
    );
    assert_eq!(
        globex.status.pending_stalled,
        recorded["pending_stalled_work_units"].as_u64().expect("n")
    );
    assert_eq!(globex.work_units.len(), 6, "globex has six work units");
    assert_eq!(
        globex
            .session_names
            .get("tJhLMX6-Pf-uO64KP3wK7")
            .map(String::as_str),
        Some("interview-01")
    );
}
