//! Faults from Honcho, proven over real loopback HTTP: the in-process simulator with
//! one fault knob set, the real exporter (poller + HTTP server) polling it on a short timer, and
//! every assertion made on `/metrics` as Prometheus would see it, plus the simulator's own
//! request counts for retries and the rate bound.
//!
//! Timings are never asserted as performance: waits are bounded polls with generous deadlines,
//! and the only time bounds are liveness ceilings (a scrape answers within 2 s while Honcho
//! hangs for minutes) or lower bounds that a sleep guarantees (a `Retry-After: 1` retry cannot
//! come sooner than 1 s).

use std::time::{Duration, Instant};

use honcho_exporter::config::Settings;
use honcho_sim::{
    EndpointKind, FaultAction, FaultRule, Faults, Generation, Scale, Scenario, Simulator,
    SimulatorConfig, SimulatorHandle,
};

use crate::end_to_end::{start_ready, start_unready, test_settings};
use crate::util::{ParsedSample, Scrape, select, sum};

/// The workspace every scoped fault targets.
const TARGET: &str = "globex-research";
/// The recorded workspaces that must stay healthy while `TARGET` fails.
const BYSTANDERS: [&str; 3] = ["acme-support", "initech-empty", "umbrella-archive"];
/// Poll interval of the test exporters.
const INTERVAL: Duration = Duration::from_millis(300);
/// `poll.timeout` of the test exporters.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);
/// `poll.max_staleness` of the test exporters.
const MAX_STALENESS: Duration = Duration::from_millis(1500);
/// Generous bound for anything that should happen within a few poll cycles.
const DEADLINE: Duration = Duration::from_secs(20);
/// Liveness ceiling of one scrape while Honcho misbehaves (not a performance assertion).
const SCRAPE_CEILING: Duration = Duration::from_secs(2);

/// Settings for a fast-cycling exporter polling `url`: short interval, timeout and staleness,
/// one quick retry.
fn fast_settings(url: &str) -> Settings {
    let mut settings = test_settings(url);
    settings.poll.interval = INTERVAL;
    settings.poll.timeout = POLL_TIMEOUT;
    settings.poll.max_staleness = MAX_STALENESS;
    settings.honcho.retries = 1;
    settings.honcho.retry_initial_backoff = Duration::from_millis(50);
    settings.honcho.retry_max_backoff = Duration::from_millis(200);
    settings
}

async fn recorded(generation: Generation) -> SimulatorHandle {
    Simulator::start(SimulatorConfig::recorded(generation))
        .await
        .expect("simulator binds loopback")
}

/// Every scrape of these tests: 200 within the liveness ceiling whatever Honcho does, and
/// waits bounded by [`DEADLINE`].
const SCRAPE: Scrape = Scrape::new()
    .deadline(DEADLINE)
    .ceiling(SCRAPE_CEILING)
    .pause(Duration::from_millis(100));

fn debug_exporter_samples(samples: &[ParsedSample]) -> String {
    samples
        .iter()
        .filter(|sample| {
            sample.name.starts_with("honcho_exporter_up")
                || sample.name.starts_with("honcho_exporter_poll_errors")
                || sample.name.starts_with("honcho_exporter_api_generation")
                || sample.name.starts_with("honcho_exporter_feature")
        })
        .map(|sample| format!("{} {:?} {}", sample.name, sample.labels, sample.value))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `honcho_exporter_up` of one workspace endpoint, if exported.
fn up(samples: &[ParsedSample], workspace: &str, endpoint: &str) -> Option<f64> {
    let found = select(
        samples,
        "honcho_exporter_up",
        &[("workspace", workspace), ("upstream", endpoint)],
    );
    found.first().map(|sample| sample.value)
}

/// `honcho_exporter_poll_errors_total{endpoint,reason}`.
fn errors(samples: &[ParsedSample], endpoint: &str, reason: &str) -> f64 {
    sum(
        samples,
        "honcho_exporter_poll_errors_total",
        &[("upstream", endpoint), ("reason", reason)],
    )
}

/// The queue family an endpoint feeds.
fn queue_family(endpoint: &str) -> &'static str {
    match endpoint {
        "work_units" => "honcho_queue_work_units",
        _ => "honcho_queue_items",
    }
}

/// The workspace's samples of `family`, sorted, as comparable `(labels, value)` text.
fn values_of(samples: &[ParsedSample], family: &str, workspace: &str) -> Vec<String> {
    let mut values: Vec<String> = select(samples, family, &[("workspace", workspace)])
        .iter()
        .map(|sample| format!("{:?}={}", sample.labels, sample.value))
        .collect();
    values.sort();
    values
}

/// The workspace's `last_success_timestamp_seconds` for `endpoint` (an upstream), if exported.
pub fn last_success(samples: &[ParsedSample], workspace: &str, endpoint: &str) -> Option<f64> {
    select(
        samples,
        "honcho_exporter_last_success_timestamp_seconds",
        &[("workspace", workspace), ("upstream", endpoint)],
    )
    .first()
    .map(|sample| sample.value)
}

/// Every scrape of a failing workspace: its queue values are either the last good ones or
/// absent (never partial or garbage), and never older than max staleness plus the time it
/// takes to notice (one interval, one timed-out cycle, and scheduling slack).
fn assert_fresh_or_absent(
    samples: &[ParsedSample],
    workspace: &str,
    endpoint: &str,
    good: &[String],
) {
    let family = queue_family(endpoint);
    let now = honcho_exporter::publication::unix_now();
    let values = values_of(samples, family, workspace);
    if values.is_empty() {
        return;
    }
    assert_eq!(
        values, good,
        "{workspace}/{endpoint}: served values must be the last good ones"
    );
    let fetched = last_success(samples, workspace, endpoint)
        .expect("queue values are only served with a last success");
    let age = now - fetched;
    let bound = (MAX_STALENESS + INTERVAL + POLL_TIMEOUT + Duration::from_secs(2)).as_secs_f64();
    assert!(
        age <= bound,
        "{workspace}/{endpoint}: served a value {age:.1} s old (bound {bound:.1} s)"
    );
}

/// One fault scoped to [`TARGET`]'s `endpoint`, and what the exporter must say about it.
struct ScopedFault {
    action: FaultAction,
    endpoint: EndpointKind,
    /// The `reason` label of `honcho_exporter_poll_errors_total`.
    reason: &'static str,
    /// Settings changes (size cap, page size).
    tune: fn(&mut Settings),
}

fn no_tuning(_: &mut Settings) {}

fn label_of(endpoint: EndpointKind) -> &'static str {
    match endpoint {
        EndpointKind::WorkUnits => "work_units",
        _ => "status",
    }
}

/// The whole life of one scoped fault: healthy → fault → exactly the target endpoint is down
/// with the right reason while the others stay up → its queue series expire after max
/// staleness while up/last_success stay → the fault clears → it recovers with the same values.
async fn scoped_fault_lifecycle(fault: ScopedFault) {
    let honcho = recorded(Generation::C).await;
    let mut settings = fast_settings(&honcho.url());
    (fault.tune)(&mut settings);
    let (exporter, base) = start_ready(settings).await;
    let endpoint = label_of(fault.endpoint);
    let family = queue_family(endpoint);
    let reason = fault.reason;
    let healthy = SCRAPE
        .until(
            &base,
            "the target is polled successfully",
            |_| {},
            |samples| {
                up(samples, TARGET, endpoint) == Some(1.0)
                    && !values_of(samples, family, TARGET).is_empty()
            },
        )
        .await;
    let good = values_of(&healthy, family, TARGET);
    let errors_before = errors(&healthy, endpoint, reason);

    honcho.simulator.set_faults(Faults::one(
        FaultRule::new(fault.action.clone())
            .for_workspace(TARGET)
            .for_endpoint(fault.endpoint),
    ));
    let invariant =
        |samples: &[ParsedSample]| assert_fresh_or_absent(samples, TARGET, endpoint, &good);
    let failing = SCRAPE
        .until(
            &base,
            &format!("{reason}: {TARGET}/{endpoint} down with reason {reason}"),
            invariant,
            |samples| {
                up(samples, TARGET, endpoint) == Some(0.0)
                    && errors(samples, endpoint, reason) > 0.0
            },
        )
        .await;
    assert!(errors(&failing, endpoint, reason) > errors_before);
    for workspace in BYSTANDERS {
        for other in ["status", "work_units"] {
            assert_eq!(
                up(&failing, workspace, other),
                Some(1.0),
                "{reason}: bystander {workspace}/{other} stays up"
            );
        }
    }
    assert_eq!(
        sum(&failing, "honcho_exporter_up", &[("upstream", "discovery")]),
        1.0,
        "{reason}: discovery stays up"
    );

    let expired = SCRAPE
        .until(
            &base,
            &format!("{reason}: {TARGET}'s {family} expire after max staleness"),
            invariant,
            |samples| values_of(samples, family, TARGET).is_empty(),
        )
        .await;
    assert_eq!(up(&expired, TARGET, endpoint), Some(0.0), "{reason}");
    assert!(
        last_success(&expired, TARGET, endpoint).is_some(),
        "{reason}: last_success stays after the values expire"
    );
    for workspace in BYSTANDERS {
        assert!(
            !select(&expired, "honcho_queue_items", &[("workspace", workspace)]).is_empty(),
            "{reason}: bystander {workspace} keeps its values"
        );
    }

    honcho.simulator.set_faults(Faults::none());
    let recovered = SCRAPE
        .until(
            &base,
            &format!("{reason}: {TARGET}/{endpoint} recovers by itself"),
            |_| {},
            |samples| {
                up(samples, TARGET, endpoint) == Some(1.0)
                    && !values_of(samples, family, TARGET).is_empty()
            },
        )
        .await;
    assert_eq!(
        values_of(&recovered, family, TARGET),
        good,
        "{reason}: the same values come back"
    );
    exporter.stop().await;
    honcho.shutdown().await;
}

fn cap_bodies_at_4_kib(settings: &mut Settings) {
    settings.honcho.max_response_bytes = 4096;
}

fn walk_one_unit_per_page(settings: &mut Settings) {
    settings.work_units.page_size = 1;
}

/// Runs scoped faults concurrently (each with its own simulator and exporter).
async fn run_scoped(faults: Vec<ScopedFault>) {
    futures_util::future::join_all(faults.into_iter().map(scoped_fault_lifecycle)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_failures_mark_only_the_failing_endpoint_down_and_recover() {
    run_scoped(vec![
        ScopedFault {
            action: FaultAction::ServerError { status: 503 },
            endpoint: EndpointKind::Status,
            reason: "http_5xx",
            tune: no_tuning,
        },
        ScopedFault {
            action: FaultAction::ServerError { status: 500 },
            endpoint: EndpointKind::WorkUnits,
            reason: "http_5xx",
            tune: no_tuning,
        },
        ScopedFault {
            action: FaultAction::InvalidJwt,
            endpoint: EndpointKind::Status,
            reason: "http_401",
            tune: no_tuning,
        },
        ScopedFault {
            action: FaultAction::DropConnection,
            endpoint: EndpointKind::Status,
            reason: "body",
            tune: no_tuning,
        },
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_honcho_times_out_while_metrics_stays_prompt() {
    run_scoped(vec![
        ScopedFault {
            action: FaultAction::Hang,
            endpoint: EndpointKind::Status,
            reason: "timeout",
            tune: no_tuning,
        },
        ScopedFault {
            action: FaultAction::Hang,
            endpoint: EndpointKind::WorkUnits,
            reason: "timeout",
            tune: no_tuning,
        },
        ScopedFault {
            action: FaultAction::Slowloris {
                bytes_per_second: 1,
            },
            endpoint: EndpointKind::Status,
            reason: "timeout",
            tune: no_tuning,
        },
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_never_cached_as_good() {
    run_scoped(vec![
        ScopedFault {
            action: FaultAction::MalformedJson,
            endpoint: EndpointKind::Status,
            reason: "decode",
            tune: no_tuning,
        },
        // An honest short body: valid HTTP, invalid JSON.
        ScopedFault {
            action: FaultAction::TruncatedJson { chunked: false },
            endpoint: EndpointKind::Status,
            reason: "decode",
            tune: no_tuning,
        },
        // A chunked body whose connection breaks: the transfer itself failed.
        ScopedFault {
            action: FaultAction::TruncatedJson { chunked: true },
            endpoint: EndpointKind::WorkUnits,
            reason: "body",
            tune: no_tuning,
        },
        ScopedFault {
            action: FaultAction::HugeBody { mebibytes: 1 },
            endpoint: EndpointKind::Status,
            reason: "too_large",
            tune: cap_bodies_at_4_kib,
        },
        ScopedFault {
            action: FaultAction::CursorLoop,
            endpoint: EndpointKind::WorkUnits,
            reason: "cursor_loop",
            tune: walk_one_unit_per_page,
        },
    ])
    .await;
}

/// The simulator's count of requests it received for `kind` (every status, hangs included).
fn honcho_requests(honcho: &SimulatorHandle, kind: EndpointKind) -> u64 {
    honcho.simulator.request_counts().total(kind)
}

#[tokio::test]
async fn a_refused_connection_is_connect_and_recovers_when_honcho_starts_listening() {
    // A port nobody listens on: bind, note it, close.
    let parked = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let address = parked.local_addr().expect("address");
    drop(parked);
    let mut settings = fast_settings(&format!("http://{address}"));
    settings.workspaces.static_list = vec![TARGET.into(), "acme-support".into()];
    let (exporter, base) = start_ready(settings).await;
    let refused = SCRAPE
        .until(
            &base,
            "both workspaces down with reason connect",
            |_| {},
            |samples| {
                up(samples, TARGET, "status") == Some(0.0)
                    && up(samples, "acme-support", "status") == Some(0.0)
                    && errors(samples, "status", "connect") >= 2.0
            },
        )
        .await;
    assert!(select(&refused, "honcho_queue_items", &[]).is_empty());
    assert!(last_success(&refused, TARGET, "status").is_none());

    // Honcho comes up on that port.
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .expect("the parked port is free again");
    let simulator = Simulator::new(SimulatorConfig::recorded(Generation::C));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(simulator.serve(listener, async move {
        let _ = stopped.await;
    }));
    SCRAPE
        .until(
            &base,
            "both workspaces recover once Honcho listens",
            |_| {},
            |samples| {
                up(samples, TARGET, "status") == Some(1.0)
                    && up(samples, "acme-support", "status") == Some(1.0)
                    && !values_of(samples, "honcho_queue_items", TARGET).is_empty()
            },
        )
        .await;
    exporter.stop().await;
    let _ = stop.send(());
    let _ = server.await;
}

#[tokio::test]
async fn an_unresolvable_host_marks_discovery_down_with_reason_connect() {
    let settings = fast_settings("http://honcho.invalid:8000");
    let (exporter, base) = start_ready(settings).await;
    let samples = SCRAPE
        .until(
            &base,
            "discovery down with reason connect",
            |_| {},
            |samples| errors(samples, "discovery", "connect") > 0.0,
        )
        .await;
    assert_eq!(
        sum(&samples, "honcho_exporter_up", &[("upstream", "discovery")]),
        0.0
    );
    assert_eq!(sum(&samples, "honcho_exporter_workspaces", &[]), 0.0);
    assert!(select(&samples, "honcho_queue_items", &[]).is_empty());
    exporter.stop().await;
}

#[tokio::test]
async fn transient_5xx_is_retried_with_backoff_within_one_poll() {
    let honcho = recorded(Generation::C).await;
    honcho.simulator.set_faults(Faults::one(
        FaultRule::new(FaultAction::ServerError { status: 503 })
            .for_endpoint(EndpointKind::Status)
            .times(2),
    ));
    let mut settings = test_settings(&honcho.url());
    settings.workspaces.static_list = vec![TARGET.into()];
    settings.poll.timeout = Duration::from_secs(5);
    settings.honcho.retries = 2;
    settings.honcho.retry_initial_backoff = Duration::from_millis(100);
    settings.honcho.retry_max_backoff = Duration::from_millis(400);
    let started = Instant::now();
    let (exporter, base) = start_ready(settings).await;
    // Two backoffs, each at least half of 100 ms × 2^attempt (full jitter in [d/2, d]).
    assert!(
        started.elapsed() >= Duration::from_millis(50 + 100),
        "two retries cannot come sooner than their minimal backoffs"
    );
    let counts = honcho.simulator.request_counts();
    assert_eq!(counts.count(EndpointKind::Status, 503), 2);
    assert_eq!(counts.count(EndpointKind::Status, 200), 1);
    let samples = SCRAPE.once(&base).await;
    assert_eq!(up(&samples, TARGET, "status"), Some(1.0));
    assert_eq!(errors(&samples, "status", "http_5xx"), 0.0);
    assert!(!values_of(&samples, "honcho_queue_items", TARGET).is_empty());
    exporter.stop().await;
    honcho.shutdown().await;
}

#[tokio::test]
async fn a_short_retry_after_is_waited_for_and_the_poll_succeeds() {
    let honcho = recorded(Generation::C).await;
    honcho.simulator.set_faults(Faults::one(
        FaultRule::new(FaultAction::TooManyRequests {
            retry_after_seconds: 1,
        })
        .for_endpoint(EndpointKind::Status)
        .times(1),
    ));
    let mut settings = test_settings(&honcho.url());
    settings.workspaces.static_list = vec![TARGET.into()];
    settings.poll.timeout = Duration::from_secs(5);
    settings.honcho.retries = 2;
    settings.honcho.retry_initial_backoff = Duration::from_millis(50);
    settings.honcho.retry_max_backoff = Duration::from_secs(2);
    let started = Instant::now();
    let (exporter, base) = start_ready(settings).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the retry came sooner than Retry-After: 1"
    );
    let counts = honcho.simulator.request_counts();
    assert_eq!(counts.count(EndpointKind::Status, 429), 1);
    assert_eq!(counts.count(EndpointKind::Status, 200), 1);
    let samples = SCRAPE.once(&base).await;
    assert_eq!(up(&samples, TARGET, "status"), Some(1.0));
    assert_eq!(errors(&samples, "status", "http_429"), 0.0);
    exporter.stop().await;
    honcho.shutdown().await;
}

#[tokio::test]
async fn a_retry_after_beyond_the_backoff_cap_silences_requests_until_it_passes() {
    const RETRY_AFTER: Duration = Duration::from_secs(5);
    let honcho = recorded(Generation::C).await;
    honcho.simulator.set_faults(Faults::one(
        FaultRule::new(FaultAction::TooManyRequests {
            retry_after_seconds: RETRY_AFTER.as_secs(),
        })
        .for_endpoint(EndpointKind::Status),
    ));
    let mut settings = fast_settings(&honcho.url());
    settings.workspaces.static_list = vec![TARGET.into()];
    settings.honcho.retries = 3;
    let started = Instant::now();
    let (exporter, base) = start_ready(settings).await;
    let first = SCRAPE.once(&base).await;
    assert_eq!(up(&first, TARGET, "status"), Some(0.0));
    assert!(errors(&first, "status", "http_429") >= 1.0);
    let cycles_before = sum(&first, "honcho_exporter_poll_cycles_total", &[]);
    // Several cycles pass while Retry-After is pending: waited for as evidence (the cycle
    // counter), within what is left of the Retry-After window, never skipped.
    let window = RETRY_AFTER.saturating_sub(started.elapsed());
    let during = SCRAPE
        .deadline(window)
        .until(
            &base,
            "three more poll cycles while Retry-After is pending",
            |_| {},
            |samples| sum(samples, "honcho_exporter_poll_cycles_total", &[]) >= cycles_before + 3.0,
        )
        .await;
    let requests_during = honcho_requests(&honcho, EndpointKind::Status);
    let elapsed = started.elapsed();
    // The one 429 came after `started`, so its Retry-After had not passed when the requests
    // were counted; a machine too slow to show three cycles in that window fails here.
    assert!(
        elapsed < RETRY_AFTER,
        "three poll cycles were not seen within Retry-After ({RETRY_AFTER:?}, {elapsed:?} \
         elapsed): the hold could not be observed"
    );
    assert_eq!(
        requests_during, 1,
        "no retry that cycle and no request in the next cycles before Retry-After passes"
    );
    assert!(sum(&during, "honcho_exporter_poll_cycles_total", &[]) > cycles_before + 1.0);
    assert_eq!(up(&during, TARGET, "status"), Some(0.0));
    assert!(errors(&during, "status", "http_429") > 1.0);
    honcho.simulator.set_faults(Faults::none());
    SCRAPE
        .until(
            &base,
            "the poll succeeds once Retry-After has passed",
            |_| {},
            |samples| up(samples, TARGET, "status") == Some(1.0),
        )
        .await;
    assert!(
        started.elapsed() >= RETRY_AFTER,
        "a request left before Retry-After passed"
    );
    assert_eq!(
        honcho
            .simulator
            .request_counts()
            .count(EndpointKind::Status, 429),
        1
    );
    exporter.stop().await;
    honcho.shutdown().await;
}

#[tokio::test]
async fn the_request_rate_stays_under_its_bound_with_many_workspaces() {
    const RATE: f64 = 5.0;
    const WINDOW: Duration = Duration::from_secs(3);
    let honcho = Simulator::start(SimulatorConfig {
        generation: Generation::C,
        scenario: Scenario::Healthy,
        seed: 3,
        scale: Scale {
            workspaces: 30,
            sessions_per_workspace: 2,
            work_units_per_workspace: 4,
        },
        speed: 1.0,
        ..SimulatorConfig::demo()
    })
    .await
    .expect("simulator binds loopback");
    let mut settings = fast_settings(&honcho.url());
    // A configuration the binary accepts (the timeout shorter than the interval): a request
    // waits at most 250 ms for one of the 5/s slots.
    settings.poll.interval = Duration::from_millis(300);
    settings.poll.timeout = Duration::from_millis(250);
    settings.poll.concurrency = 16;
    settings.honcho.max_requests_per_second = RATE;
    let (exporter, base) = start_unready(settings).await;
    let total = |honcho: &SimulatorHandle| {
        [
            EndpointKind::List,
            EndpointKind::Status,
            EndpointKind::WorkUnits,
        ]
        .iter()
        .map(|kind| honcho_requests(honcho, *kind))
        .sum::<u64>()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = total(&honcho);
    let window_started = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let after = total(&honcho);
    let window = window_started.elapsed();
    let sent = after - before;
    let bound = (RATE * window.as_secs_f64()).ceil() as u64 + 2;
    assert!(
        sent <= bound,
        "{sent} requests in {window:?}: more than {RATE}/s allows ({bound})"
    );
    // A third of the bound: slots are not wasted on requests that could never be sent.
    assert!(
        sent as f64 >= RATE * WINDOW.as_secs_f64() / 3.0,
        "the exporter kept polling at about the bound ({sent} requests in {window:?})"
    );
    // /metrics answers while the poll loop queues on the limiter, and says why some
    // workspaces were not polled: the bound left no slot within the poll timeout.
    let samples = SCRAPE.once(&base).await;
    assert!(
        errors(&samples, "status", "rate_limited") > 0.0,
        "{}",
        debug_exporter_samples(&samples)
    );
    exporter.stop().await;
    honcho.shutdown().await;
}

#[tokio::test]
async fn a_walk_longer_than_the_page_cap_is_truncated_but_up() {
    let honcho = recorded(Generation::C).await;
    let mut settings = fast_settings(&honcho.url());
    settings.workspaces.static_list = vec![TARGET.into()];
    settings.work_units.page_size = 1;
    settings.work_units.max_pages = 2;
    let (exporter, base) = start_ready(settings).await;
    let samples = SCRAPE.once(&base).await;
    assert_eq!(
        sum(
            &samples,
            "honcho_exporter_walk_truncated",
            &[("workspace", TARGET)]
        ),
        1.0
    );
    assert_eq!(up(&samples, TARGET, "work_units"), Some(1.0));
    assert!(errors(&samples, "work_units", "page_cap") >= 1.0);
    // Only the first two units (the oldest) were counted.
    assert_eq!(
        sum(
            &samples,
            "honcho_queue_work_units",
            &[("workspace", TARGET)]
        ),
        2.0
    );
    let truth = honcho.simulator.truth();
    assert!(truth.workspaces[TARGET].work_units.len() > 2);
    exporter.stop().await;
    honcho.shutdown().await;
}

#[tokio::test]
async fn a_workspace_that_vanishes_mid_walk_disappears_and_the_others_stay_up() {
    let honcho = recorded(Generation::C).await;
    let mut settings = fast_settings(&honcho.url());
    settings.work_units.page_size = 1;
    let (exporter, base) = start_ready(settings).await;
    SCRAPE
        .until(
            &base,
            "the target is walked",
            |_| {},
            |samples| up(samples, TARGET, "work_units") == Some(1.0),
        )
        .await;
    honcho.simulator.set_faults(Faults::one(
        FaultRule::new(FaultAction::VanishMidWalk)
            .for_workspace(TARGET)
            .for_endpoint(EndpointKind::WorkUnits),
    ));
    let gone = SCRAPE
        .until(
            &base,
            "the vanished workspace's series are gone",
            |_| {},
            |samples| {
                samples.iter().all(|sample| {
                    sample.labels.get("workspace").map(String::as_str) != Some(TARGET)
                })
            },
        )
        .await;
    assert_eq!(sum(&gone, "honcho_exporter_workspaces", &[]), 3.0);
    for workspace in BYSTANDERS {
        for endpoint in ["status", "work_units"] {
            assert_eq!(up(&gone, workspace, endpoint), Some(1.0), "{workspace}");
        }
    }
    assert_eq!(
        sum(&gone, "honcho_exporter_up", &[("upstream", "discovery")]),
        1.0
    );
    exporter.stop().await;
    honcho.shutdown().await;
}

fn generation_is(samples: &[ParsedSample], generation: &str) -> bool {
    sum(
        samples,
        "honcho_exporter_api_generation",
        &[("generation", generation)],
    ) == 1.0
}

fn work_units_feature(samples: &[ParsedSample]) -> Option<f64> {
    select(
        samples,
        "honcho_exporter_feature_available",
        &[("feature", "work_units")],
    )
    .first()
    .map(|sample| sample.value)
}

/// Honcho downgraded C → B under a running exporter: the walk is gone.
async fn follow_c_to_b(honcho: &SimulatorHandle, base: &str) {
    honcho.simulator.set_generation(Generation::B);
    let samples = SCRAPE
        .until(
            base,
            "C → B: generation b, work-units unavailable, work-unit series gone",
            |_| {},
            |samples| {
                generation_is(samples, "b")
                    && work_units_feature(samples) == Some(0.0)
                    && select(samples, "honcho_queue_work_units", &[]).is_empty()
            },
        )
        .await;
    for workspace in BYSTANDERS.iter().chain([&TARGET]) {
        assert_eq!(up(&samples, workspace, "status"), Some(1.0), "{workspace}");
        assert_eq!(
            up(&samples, workspace, "work_units"),
            None,
            "{workspace}: no work_units endpoint on B, so no up series for it"
        );
    }
    assert!(!select(&samples, "honcho_queue_items", &[("workspace", TARGET)]).is_empty());
    assert!(
        select(
            &samples,
            "honcho_deriver_representation_batch_max_tokens",
            &[]
        )
        .is_empty(),
        "the threshold read from generation C's walk is not served on B"
    );
}

/// Honcho upgraded B → C: the walk is found again and every workspace is walked.
async fn follow_b_to_c(honcho: &SimulatorHandle, base: &str) {
    honcho.simulator.set_generation(Generation::C);
    let samples = SCRAPE
        .until(
            base,
            "B → C: generation c, work-unit series for every workspace",
            |_| {},
            |samples| {
                generation_is(samples, "c")
                    && work_units_feature(samples) == Some(1.0)
                    && BYSTANDERS
                        .iter()
                        .chain([&TARGET])
                        .all(|workspace| up(samples, workspace, "work_units") == Some(1.0))
            },
        )
        .await;
    assert!(
        !select(
            &samples,
            "honcho_queue_work_units",
            &[("workspace", TARGET)]
        )
        .is_empty()
    );
}

#[tokio::test]
async fn the_exporter_follows_honcho_upgrades_a_to_b_to_c() {
    let honcho = recorded(Generation::A).await;
    let (exporter, base) = start_ready(fast_settings(&honcho.url())).await;
    SCRAPE
        .until(
            &base,
            "generation a at start",
            |_| {},
            |samples| generation_is(samples, "a") && up(samples, TARGET, "status") == Some(1.0),
        )
        .await;
    let v2_before = honcho_requests(&honcho, EndpointKind::Status);
    assert!(v2_before > 0);

    honcho.simulator.set_generation(Generation::B);
    let on_b = SCRAPE
        .until(
            &base,
            "A → B: generation b over /v3",
            |_| {},
            |samples| generation_is(samples, "b") && up(samples, TARGET, "status") == Some(1.0),
        )
        .await;
    assert!(select(&on_b, "honcho_queue_work_units", &[]).is_empty());

    follow_b_to_c(&honcho, &base).await;

    // And a downgrade back to 2.x: /v3 is gone, /v2 answers.
    honcho.simulator.set_generation(Generation::A);
    let on_a = SCRAPE
        .until(
            &base,
            "C → A: generation a over /v2",
            |_| {},
            |samples| generation_is(samples, "a") && up(samples, TARGET, "status") == Some(1.0),
        )
        .await;
    assert!(select(&on_a, "honcho_queue_work_units", &[]).is_empty());
    assert!(select(&on_a, "honcho_exporter_walk_truncated", &[]).is_empty());
    assert_eq!(
        up(&on_a, TARGET, "work_units"),
        None,
        "2.x has no walk: no work_units up series"
    );
    assert!(
        select(&on_a, "honcho_deriver_representation_batch_max_tokens", &[]).is_empty(),
        "the threshold read from generation C's walk is not served on 2.x"
    );
    exporter.stop().await;
    honcho.shutdown().await;
}

#[tokio::test]
async fn the_exporter_follows_a_downgrade_c_to_b_and_back() {
    let honcho = recorded(Generation::C).await;
    let (exporter, base) = start_ready(fast_settings(&honcho.url())).await;
    SCRAPE
        .until(
            &base,
            "generation c at start",
            |_| {},
            |samples| generation_is(samples, "c") && up(samples, TARGET, "work_units") == Some(1.0),
        )
        .await;
    follow_c_to_b(&honcho, &base).await;
    follow_b_to_c(&honcho, &base).await;
    exporter.stop().await;
    honcho.shutdown().await;
}
