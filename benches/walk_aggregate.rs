//! Criterion benchmarks of the hot paths:
//! - parse + aggregate work-units pages (the walk's CPU cost per unit), target ≥ 1 M units/s/core;
//! - render the poll-time exposition for ~10 k and ~100 k series;
//! - assemble a scrape body from the cached bytes (what `/metrics` does per request).
//!
//! Results are summarised in BENCHMARKS.md.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use honcho_exporter::exposition::Format;
use honcho_exporter::honcho::types::WorkUnitsPage;
use honcho_exporter::publication::Published;
use honcho_exporter::snapshot::{
    Snapshot, WorkUnitAggregator, WorkspaceSnapshot, summarize_status,
};

/// One page of `units` work units in the real server's JSON shape (pretty keys, ISO timestamps).
fn page_json(page: usize, units: usize) -> String {
    let mut items = Vec::with_capacity(units);
    for index in 0..units {
        let n = page * units + index;
        let (task_type, session, observed) = match n % 10 {
            0 => ("summary", format!("session-{}", n / 7), None),
            1 => ("dream", String::new(), Some(format!("peer-{}", n % 97))),
            _ => (
                "representation",
                format!("session-{}", n / 7),
                Some(format!("peer-{}", n % 97)),
            ),
        };
        let key = match task_type {
            "dream" => format!(
                "dream:omni:bench:{}:{}",
                observed.as_deref().unwrap_or(""),
                n
            ),
            "summary" => format!("summary:bench:{session}:None:None:{n}"),
            _ => format!(
                "representation:bench:{session}:{}:{n}",
                observed.as_deref().unwrap_or("")
            ),
        };
        let in_progress = n.is_multiple_of(13);
        let tokens = (n * 37) % 400;
        let hit = task_type != "representation" || tokens >= 200;
        let (session_id, session_name) = if task_type == "dream" {
            ("null".to_string(), "null".to_string())
        } else {
            (format!("\"id{:019}\"", n / 7), format!("\"{session}\""))
        };
        items.push(format!(
            r#"{{"work_unit_key":"{key}","task_type":"{task_type}","session_id":{session_id},"session_name":{session_name},"observer":null,"observed":{observed},"pending_items":{items},"pending_tokens":{tokens},"tokens_until_threshold":{until},"hit_threshold":{hit},"in_progress":{in_progress},"oldest_item_at":"2026-11-22T0{hour}:{minute:02}:{second:02}.{micros:06}Z","newest_item_at":"2026-11-22T03:27:48.507537Z"}}"#,
            observed = observed.map_or("null".to_string(), |o| format!("\"{o}\"")),
            items = 1 + n % 9,
            until = if hit { 0 } else { 200 - tokens },
            hour = n % 3,
            minute = n % 60,
            second = (n / 60) % 60,
            micros = n % 1_000_000,
        ));
    }
    format!(
        r#"{{"items":[{}],"total":1000000,"current_page":"Pg%3D%3D","current_page_backwards":null,"previous_page":null,"next_page":"PmR0OjIwMjYtMTEtMjIg","representation_batch_max_tokens":200,"flush_enabled":false}}"#,
        items.join(",")
    )
}

fn walk_aggregate(c: &mut Criterion) {
    const PAGES: usize = 100;
    const UNITS: usize = 100;
    let pages: Vec<Vec<u8>> = (0..PAGES)
        .map(|page| page_json(page, UNITS).into_bytes())
        .collect();
    let mut group = c.benchmark_group("walk");
    group.throughput(Throughput::Elements((PAGES * UNITS) as u64));
    group.bench_function("parse_and_aggregate_10k_units", |b| {
        b.iter(|| {
            let mut aggregator = WorkUnitAggregator::new(
                1_795_318_080.0,
                Duration::from_secs(1815),
                20,
                HashSet::new(),
            );
            for body in &pages {
                let page: WorkUnitsPage<'_> =
                    honcho_exporter::honcho::decode(body).expect("valid page");
                aggregator.add_page(&page);
            }
            black_box(aggregator.finish())
        })
    });
    group.finish();
}

/// A snapshot with about `series` series: workspaces of 50 sessions × 4 states each, plus the
/// per-workspace aggregates.
fn snapshot_with_series(series: usize) -> Snapshot {
    let status_body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/honcho/dev-1790/queue-status__globex-research.json"
    ))
    .expect("fixture");
    let page_body = page_json(0, 100);
    // Each workspace yields roughly 4 + 3×4 sessions + 3 work-unit families × 16 + detail ≈ 300 series.
    let workspaces = (series / 300).max(1);
    let mut snapshot = Snapshot::default();
    for index in 0..workspaces {
        let mut status: honcho_exporter::honcho::types::QueueStatus =
            serde_json::from_slice(&status_body).expect("fixture parses");
        let sessions = status.sessions.take().unwrap_or_default();
        let template = sessions.values().next().cloned().expect("a session");
        let mut many = std::collections::BTreeMap::new();
        for session in 0..50 {
            let id = format!("session{index:05}x{session:03}");
            let mut value = template.clone();
            value.session_id = id.clone();
            many.insert(id, value);
        }
        status.sessions = Some(many);
        let summary = summarize_status(status, 50);
        let mut aggregator = WorkUnitAggregator::new(
            1_795_318_080.0,
            Duration::from_secs(1815),
            20,
            HashSet::new(),
        );
        let page: WorkUnitsPage<'_> = serde_json::from_str(&page_body).expect("page");
        aggregator.add_page(&page);
        snapshot.workspaces.insert(
            format!("workspace-{index:05}"),
            WorkspaceSnapshot {
                status: Some(summary),
                work_units: Some(aggregator.finish()),
                ..WorkspaceSnapshot::default()
            },
        );
    }
    snapshot
}

fn exposition(c: &mut Criterion) {
    let mut group = c.benchmark_group("exposition");
    group.sample_size(20);
    for series in [10_000usize, 100_000] {
        let snapshot = snapshot_with_series(series);
        let published = Published::render(snapshot.clone(), true);
        let samples = published
            .body(Format::Text, false, 1_795_318_100.0)
            .into_iter()
            .map(|chunk| chunk.iter().filter(|&&byte| byte == b'\n').count())
            .sum::<usize>();
        group.bench_with_input(
            BenchmarkId::new("render_poll_time", samples),
            &snapshot,
            |b, snapshot| b.iter(|| black_box(Published::render(snapshot.clone(), true))),
        );
        for (name, format, gzip) in [
            ("scrape_openmetrics", Format::OpenMetrics, false),
            ("scrape_text", Format::Text, false),
            ("scrape_text_gzip", Format::Text, true),
            ("scrape_openmetrics_gzip", Format::OpenMetrics, true),
        ] {
            group.bench_with_input(
                BenchmarkId::new(name, samples),
                &published,
                |b, published| {
                    b.iter(|| {
                        // Produce every chunk, as the server does when it sends the body.
                        published
                            .body(format, gzip, 1_795_318_100.0)
                            .into_iter()
                            .map(|chunk| black_box(chunk).len())
                            .sum::<usize>()
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, walk_aggregate, exposition);
criterion_main!(benches);
