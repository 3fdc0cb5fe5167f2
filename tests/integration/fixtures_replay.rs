//! Every recorded real Honcho response (`tests/data/honcho/`) replayed through the client over
//! loopback: parsed into the right values, or turned into the right error. A fixture the table
//! does not classify fails the test, so new recordings cannot be silently ignored.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use honcho_exporter::config::{Secret, Settings, TokenSource};
use honcho_exporter::honcho::types::ItemCounts;
use honcho_exporter::honcho::{ApiVersion, Client, Endpoint, StatusFilter, UpstreamError};
use honcho_exporter::snapshot::WorkUnitAggregator;

use crate::util::{ReplayServer, recorded, routes_of};

/// Fixtures of routes the exporter never requests, with the reason.
const NOT_REQUESTED: &[(&str, &str)] = &[
    (
        "health.json",
        "the exporter does not use /health: it is static and says nothing about the queue",
    ),
    (
        "sessions-list__",
        "sessions/list never exposes internal session ids; names come from work-units",
    ),
    (
        "peer-card",
        "a peer route, only recorded to show the error body shape",
    ),
    (
        "error-405__",
        "there is no GET of one workspace; the exporter never sends it",
    ),
    (
        "metrics",
        "Honcho's own /metrics is scraped by Prometheus directly, not by the exporter",
    ),
    (
        "error-404__health_absent",
        "2.x has no /health; the exporter does not use it",
    ),
    (
        "workspaces-list__filter_metadata",
        "the exporter lists all workspaces and filters by name regex",
    ),
    (
        "error-422__workspaces-list_bad_body",
        "the exporter always sends {} as the body",
    ),
];

fn client(url: &str, token: Option<&str>) -> Client {
    let mut settings = Settings::with_url(url.parse().expect("replay URL"));
    settings.honcho.token = token.map(|token| TokenSource::Env(Secret::new(token.to_string())));
    settings.honcho.retries = 0;
    settings.honcho.max_requests_per_second = 0.0;
    settings.poll.timeout = Duration::from_secs(5);
    Client::from_settings(&settings).expect("client builds")
}

fn counts(
    total: u64,
    completed: u64,
    in_progress: u64,
    pending: u64,
    split: Option<(u64, u64)>,
) -> ItemCounts {
    ItemCounts {
        total,
        completed,
        in_progress,
        pending,
        pending_stalled: split.map(|(stalled, _)| stalled),
        pending_ready: split.map(|(_, ready)| ready),
    }
}

fn filter(query: &str) -> StatusFilter {
    let mut filter = StatusFilter::default();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').expect("name=value");
        let value = Some(value.to_string());
        match name {
            "observer_id" => filter.observer_id = value,
            "sender_id" => filter.sender_id = value,
            "session_id" => filter.session_id = value,
            other => panic!("unexpected status query parameter {other}"),
        }
    }
    filter
}

/// The expected counts of each recorded status body.
fn expected_status(file: &str) -> Option<(ItemCounts, Option<usize>)> {
    let c = |t, c, i, p, s| Some((counts(t, c, i, p, s), None::<usize>));
    let with_sessions = |value: Option<(ItemCounts, Option<usize>)>, sessions| {
        value.map(|(counts, _)| (counts, Some(sessions)))
    };
    Some(match file {
        "dev-1790/queue-status__globex-research.json"
        | "dev-1790-auth/auth-200__workspace_token_own_workspace.json"
        | "dev-1790-auth/auth-200__admin_queue_status.json" => {
            with_sessions(c(25, 0, 2, 23, Some((21, 2))), 3)?
        }
        "dev-1790/queue-status__acme-support.json" => {
            with_sessions(c(14, 0, 2, 12, Some((11, 1))), 3)?
        }
        "dev-1790/queue-status__umbrella-archive.json" => {
            with_sessions(c(5, 4, 0, 1, Some((1, 0))), 1)?
        }
        "dev-1790/queue-status__initech-empty.json"
        | "dev-1790/queue-status__unknown-workspace.json"
        | "dev-1790/queue-status__globex-research__session_id=internal-id.json"
        | "dev-1790/queue-status__globex-research__observer_id=subject-dan.json" => {
            // observer_id matches dream rows only: the fixture shows 1 item for subject-dan.
            if file.contains("observer_id=") {
                (counts(1, 0, 0, 1, Some((0, 1))), None)
            } else {
                (counts(0, 0, 0, 0, Some((0, 0))), None)
            }
        }
        "dev-1790/queue-status__globex-research__session_id=interview-01.json" => {
            c(21, 0, 0, 21, Some((20, 1)))?
        }
        "dev-1790/queue-status__globex-research__sender_id=subject-dan.json" => {
            with_sessions(c(18, 0, 0, 18, Some((17, 1))), 2)?
        }
        "dev-1790/queue-status__globex-research__observer_id+sender_id.json" => {
            with_sessions(c(7, 0, 2, 5, Some((4, 1))), 2)?
        }
        "dev-1790-flush/queue-status__globex-research.json" => {
            with_sessions(c(25, 0, 2, 23, Some((0, 23))), 3)?
        }
        "main/queue-status__globex-research.json" => with_sessions(c(25, 0, 2, 23, None), 3)?,
        "v2.5.1/deriver-status__globex-research.json" => with_sessions(c(24, 0, 2, 22, None), 3)?,
        "main/queue-status__globex-research__session_id=interview-01.json"
        | "v2.5.1/deriver-status__globex-research__session_id=interview-01.json" => {
            c(21, 0, 0, 21, None)?
        }
        "main/queue-status__globex-research__sender_id=subject-dan.json" => {
            with_sessions(c(18, 0, 0, 18, None), 2)?
        }
        "v2.5.1/deriver-status__globex-research__sender_id=subject-dan.json" => {
            with_sessions(c(17, 0, 0, 17, None), 2)?
        }
        "main/queue-status__unknown-workspace.json"
        | "v2.5.1/deriver-status__unknown-workspace.json" => c(0, 0, 0, 0, None)?,
        "v2.5.1/deriver-status__acme-support.json" => with_sessions(c(22, 0, 2, 20, None), 3)?,
        _ => return None,
    })
}

#[tokio::test]
async fn every_recorded_status_body_parses_into_the_recorded_counts() {
    let mut checked = BTreeSet::new();
    for folder in [
        "dev-1790",
        "dev-1790-auth",
        "dev-1790-flush",
        "main",
        "v2.5.1",
    ] {
        let routes = routes_of(folder);
        let server = ReplayServer::start(routes.clone()).await;
        for route in routes
            .iter()
            .filter(|route| route.status == 200 && route.path.ends_with("/status"))
        {
            let Some((expected, sessions)) = expected_status(&route.file) else {
                panic!("{}: no expected counts in the table", route.file);
            };
            let token = route
                .authorization
                .as_deref()
                .and_then(|header| header.strip_prefix("Bearer "));
            let client = client(&server.url, token);
            let workspace = route.path.split('/').nth(3).expect("workspace segment");
            let version = if route.path.starts_with("/v2/") {
                ApiVersion::V2
            } else {
                ApiVersion::V3
            };
            let status = client
                .fetch_status(version, workspace, &filter(&route.query), Endpoint::Status)
                .await
                .unwrap_or_else(|error| panic!("{}: {error}", route.file));
            let got = status.counts;
            // The recorded numbers, and the invariant that holds for every body.
            assert_eq!(got, expected, "{}", route.file);
            assert_eq!(
                got.total,
                got.completed + got.in_progress + got.pending,
                "{}: total = sum",
                route.file
            );
            if let (Some(stalled), Some(ready)) = (got.pending_stalled, got.pending_ready) {
                assert_eq!(
                    stalled + ready,
                    got.pending,
                    "{}: stalled + ready = pending",
                    route.file
                );
            }
            assert_eq!(
                status.sessions.as_ref().map(|sessions| sessions.len()),
                sessions,
                "{}: sessions",
                route.file
            );
            checked.insert(route.file.clone());
        }
    }
    assert!(
        checked.len() >= 20,
        "only {} status fixtures checked",
        checked.len()
    );
}

#[tokio::test]
async fn workspace_lists_of_both_api_versions_parse() {
    for (folder, version) in [
        ("dev-1790", ApiVersion::V3),
        ("main", ApiVersion::V3),
        ("v2.5.1", ApiVersion::V2),
    ] {
        let server = ReplayServer::start(routes_of(folder)).await;
        let names = client(&server.url, None)
            .list_workspaces(version)
            .await
            .unwrap_or_else(|error| panic!("{folder}: {error}"));
        assert_eq!(
            names,
            [
                "acme-support",
                "globex-research",
                "initech-empty",
                "umbrella-archive"
            ],
            "{folder}"
        );
    }
}

#[tokio::test]
async fn the_cursor_walk_follows_recorded_pages_verbatim_and_sees_every_unit_once() {
    let server = ReplayServer::start(routes_of("dev-1790")).await;
    let mut keys = Vec::new();
    let mut envelope = None;
    let outcome = client(&server.url, None)
        .walk_work_units("globex-research", 2, 10, |page| {
            keys.extend(page.items.iter().map(|row| row.work_unit_key.to_string()));
            envelope = Some((
                page.total,
                page.representation_batch_max_tokens,
                page.flush_enabled,
            ));
        })
        .await
        .expect("the recorded walk succeeds");
    assert_eq!(outcome.pages, 3);
    assert!(!outcome.truncated);
    assert_eq!(keys.len(), 6);
    assert_eq!(
        keys.iter().collect::<HashSet<_>>().len(),
        6,
        "no unit twice"
    );
    assert_eq!(envelope, Some((6, Some(200), Some(false))));
    let requests = server.requests();
    assert!(
        requests.iter().any(|request| request.ends_with("cursor=PmR0OjIwMjYtMTEtMjIgMDM6Mjc6NDguNTA3NTM3KzAwOjAwfnM6c3VtbWFyeTpnbG9iZXgtcmVzZWFyY2g6aW50ZXJ2aWV3LTAxOk5vbmU6Tm9uZQ%3D%3D")),
        "the percent-encoded cursor is sent verbatim, not re-encoded: {requests:?}"
    );
}

#[tokio::test]
async fn recorded_work_units_aggregate_into_the_recorded_states() {
    // 2026-11-22T03:28:00Z, just after the recording: interview-03 (02:42:51) is 45 min old.
    let recorded_at = 1_795_318_080.0;
    let server = ReplayServer::start(routes_of("dev-1790")).await;
    let mut aggregator = WorkUnitAggregator::new(
        recorded_at,
        Duration::from_secs(1815),
        10,
        HashSet::from(["tJhLMX6-Pf-uO64KP3wK7".to_string()]),
    );
    client(&server.url, None)
        .walk_work_units("globex-research", 2, 10, |page| aggregator.add_page(page))
        .await
        .expect("walk");
    let aggregate = aggregator.finish();
    use honcho_exporter::classify::{TaskType::*, UnitState::*};
    assert_eq!(
        aggregate.cell(Representation, Overdue).units,
        1,
        "interview-03, 45 min old"
    );
    assert_eq!(
        aggregate.cell(Representation, Stalled).units,
        2,
        "interview-01 carol + dan"
    );
    assert_eq!(
        aggregate.cell(Representation, InProgress).units,
        1,
        "interview-02"
    );
    assert_eq!(aggregate.cell(Summary, Ready).units, 1);
    assert_eq!(aggregate.cell(Dream, Ready).units, 1);
    assert_eq!(aggregate.cell(Representation, Stalled).items, 20);
    assert_eq!(aggregate.cell(Representation, Stalled).tokens, 240);
    assert_eq!(
        aggregate.tokens_until_threshold[Representation.index()],
        Some(8),
        "dan is 8 tokens short"
    );
    assert_eq!(
        aggregate
            .session_names
            .get("tJhLMX6-Pf-uO64KP3wK7")
            .map(String::as_str),
        Some("interview-01")
    );
    assert_eq!(
        aggregate.session_names.len(),
        1,
        "only wanted sessions keep names"
    );
    let detail_states: Vec<_> = aggregate.detail.iter().map(|unit| unit.state).collect();
    assert_eq!(
        detail_states,
        [Overdue, Stalled, Stalled, InProgress],
        "problem order, ready units excluded"
    );
}

/// Each recorded error response and the error the client turns it into.
#[tokio::test]
async fn recorded_error_responses_become_the_right_errors() {
    let dev = ReplayServer::start(routes_of("dev-1790")).await;
    let main = ReplayServer::start(routes_of("main")).await;
    let old = ReplayServer::start(routes_of("v2.5.1")).await;
    let auth = ReplayServer::start(routes_of("dev-1790-auth")).await;
    let unit = |e: UpstreamError| (e.reason(), e.to_string());

    // Work-units on generation B: 404 = feature unavailable.
    let error = client(&main.url, None)
        .walk_work_units("globex-research", 100, 10, |_| {})
        .await
        .expect_err("404");
    assert!(
        error.is_not_found(),
        "main/error-404__work-units_not_on_main.json: {error}"
    );
    // /v2 on generation B and C, /v3 on generation A: 404 (the detection signal).
    for (server, version, file) in [
        (
            &dev,
            ApiVersion::V2,
            "dev-1790/error-404__v2_deriver_status_gone.json",
        ),
        (
            &main,
            ApiVersion::V2,
            "main/error-404__v2_deriver_status_gone.json",
        ),
        (
            &old,
            ApiVersion::V3,
            "v2.5.1/error-404__v3_queue_status_absent.json",
        ),
    ] {
        let error = client(&server.url, None)
            .fetch_status(
                version,
                "globex-research",
                &StatusFilter::default(),
                Endpoint::Status,
            )
            .await
            .expect_err(file);
        assert!(error.is_not_found(), "{file}: {error}");
    }
    // The auth failures: 401 with Honcho's detail in the message, reason http_401.
    for (token, expected_detail, file) in [
        (None, "No access token provided", "auth-401__no_token.json"),
        (
            Some("not-a-jwt"),
            "Invalid JWT",
            "auth-401__invalid_jwt.json",
        ),
        (
            Some("<admin JWT with string exp 2099-01-01T00:00:00Z>"),
            "Invalid JWT",
            "auth-401__admin_token_with_exp_claim.json",
        ),
    ] {
        let error = client(&auth.url, token)
            .fetch_status(
                ApiVersion::V3,
                "globex-research",
                &StatusFilter::default(),
                Endpoint::Status,
            )
            .await
            .expect_err(file);
        let (reason, message) = unit(error);
        assert_eq!(reason, "http_401", "{file}");
        assert!(message.contains(expected_detail), "{file}: {message}");
    }
    let error = client(
        &auth.url,
        Some("<workspace JWT {t:'', w:'globex-research'}>"),
    )
    .fetch_status(
        ApiVersion::V3,
        "acme-support",
        &StatusFilter::default(),
        Endpoint::Status,
    )
    .await
    .expect_err("other workspace");
    assert!(
        error
            .to_string()
            .contains("JWT not permissioned for this resource"),
        "{error}"
    );
    let error = client(
        &auth.url,
        Some("<workspace JWT {t:'', w:'globex-research'}>"),
    )
    .list_workspaces(ApiVersion::V3)
    .await
    .expect_err("admin route");
    assert_eq!(error.reason(), "http_401");
    assert!(
        error
            .to_string()
            .contains("Resource requires admin privileges"),
        "{error}"
    );
    let names = client(&auth.url, Some("<admin JWT {t:'', ad:true}>"))
        .list_workspaces(ApiVersion::V3)
        .await
        .expect("admin lists");
    assert_eq!(names.len(), 4);
}

#[tokio::test]
async fn a_size_zero_page_that_points_back_to_the_start_is_a_cursor_loop() {
    // work-units__size0.json: empty items but next_page set: a naive walk never ends.
    // Recorded as `?size=0`; its next_page is the start cursor `Pg%3D%3D`, which answers the same.
    let mut routes = routes_of("dev-1790");
    let size0 = routes
        .iter_mut()
        .find(|route| route.file.ends_with("work-units__size0.json"))
        .expect("the size0 fixture");
    size0.query = "size=0".into();
    let again = crate::util::Route {
        query: "size=0&cursor=Pg%3D%3D".into(),
        ..size0.clone()
    };
    routes.push(again);
    let server = ReplayServer::start(routes).await;
    let error = client(&server.url, None)
        .walk_work_units("globex-research", 0, 1000, |_| {})
        .await
        .expect_err("must not loop forever");
    assert_eq!(error.reason(), "cursor_loop", "{error}");
    assert!(
        server.requests().len() <= 2,
        "stopped at once: {:?}",
        server.requests()
    );
}

#[tokio::test]
async fn recorded_bad_cursor_and_size_answers_are_client_errors() {
    let server = ReplayServer::start(routes_of("dev-1790")).await;
    for (size, file) in [(101, "error-422__work-units_size101.json")] {
        let error = client(&server.url, None)
            .walk_work_units("globex-research", size, 10, |_| {})
            .await
            .expect_err(file);
        assert_eq!(error.reason(), "http_4xx", "{file}: {error}");
        assert!(
            error.to_string().contains("less than or equal to 100"),
            "{file}: {error}"
        );
    }
}

#[test]
fn every_fixture_is_classified_by_this_module() {
    let classified = |file: &str| {
        expected_status(file).is_some()
            || NOT_REQUESTED
                .iter()
                .any(|(pattern, _)| file.contains(pattern))
            || file.contains("workspaces-list")
            || file.contains("work-units")
            || file.contains("error-404__v2_deriver_status_gone")
            || file.contains("error-404__v3_deriver_status_gone")
            || file.contains("error-404__v3_queue_status_absent")
            || file.contains("auth-401__")
            || file.contains("auth-200__")
    };
    let unclassified: Vec<String> = recorded()
        .into_iter()
        .map(|entry| entry.file)
        .filter(|file| !classified(file))
        .collect();
    assert!(
        unclassified.is_empty(),
        "fixtures with no expectation: {unclassified:?}"
    );
}
