//! The exact seeded data of the recorded fixtures (`tests/data/honcho/INDEX.md`): the four
//! workspaces with the same session ids, names, work-unit keys, row counts, tokens, in-progress
//! flags and timestamps that the real servers answered, one dataset per API generation (each
//! generation was recorded from its own database, so ids and timestamps differ).
//!
//! Owns: that data only. Frozen: these workspaces never evolve.

use super::Generation;
use super::model::{Identity, NONE, OrderedObject, TaskType, Unit, Workspace};

/// Parses a recorded `...Z` timestamp into microseconds since the epoch.
fn at(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|moment| moment.timestamp_micros())
        .expect("recorded timestamps are valid RFC 3339")
}

/// A unit line of the dataset: task, session name, observer, observed, items, tokens,
/// in-progress, oldest (= newest) timestamp.
type UnitLine = (
    TaskType,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    u32,
    u32,
    bool,
    &'static str,
);

struct WorkspaceLine {
    name: &'static str,
    metadata: &'static [(&'static str, &'static str)],
    created_at: &'static str,
    /// (name, internal id, created_at, has the summary configuration)
    sessions: &'static [(&'static str, &'static str, &'static str, bool)],
    peers: &'static [&'static str],
    units: Vec<UnitLine>,
    /// (session, observed, completed rows) still in the table.
    completed: &'static [(&'static str, &'static str, u32)],
}

use TaskType::{Dream, Representation as Rep, Summary};

/// Builds the recorded workspaces for `generation`.
pub(crate) fn workspaces(generation: Generation) -> Vec<Workspace> {
    lines(generation).into_iter().map(build).collect()
}

fn build(line: WorkspaceLine) -> Workspace {
    let metadata = OrderedObject(
        line.metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect(),
    );
    let mut workspace = Workspace::new(line.name.to_owned(), metadata, at(line.created_at));
    for &(name, id, created, summary_config) in line.sessions {
        let configuration = if summary_config {
            serde_json::json!({"summary": {"messages_per_long_summary": 20, "messages_per_short_summary": 10}})
        } else {
            serde_json::json!({})
        };
        workspace.add_session(name.to_owned(), id.to_owned(), at(created), configuration);
    }
    for peer in line.peers {
        workspace.peer(peer);
    }
    for (task, session, observer, observed, items, tokens, in_progress, oldest) in line.units {
        let identity = Identity {
            task,
            session: session.map_or(NONE, |s| workspace.session_by_name[s]),
            observer: observer.map_or(NONE, |p| workspace.peer(p)),
            observed: observed.map_or(NONE, |p| workspace.peer(p)),
        };
        workspace.units.push(Unit {
            identity,
            pending_items: items,
            pending_tokens: tokens,
            in_progress,
            oldest: at(oldest),
            newest: at(oldest),
        });
    }
    for &(session, observed, rows) in line.completed {
        let identity = Identity {
            task: Rep,
            session: workspace.session_by_name[session],
            observer: NONE,
            observed: workspace.peer(observed),
        };
        workspace.completed.insert(identity, rows);
    }
    workspace.rebuild_order();
    workspace
}

fn lines(generation: Generation) -> Vec<WorkspaceLine> {
    match generation {
        Generation::C => dev_1790(),
        Generation::B => main_branch(),
        Generation::A => v2_5_1(),
    }
}

const ACME_META: &[(&str, &str)] = &[("tier", "gold"), ("region", "eu")];
const GLOBEX_META: &[(&str, &str)] = &[("tier", "silver")];
const UMBRELLA_META: &[(&str, &str)] = &[("tier", "bronze")];
const ACME_PEERS: &[&str] = &["user-alice", "user-bob", "agent-support"];
const GLOBEX_PEERS: &[&str] = &["subject-dan", "researcher-carol"];
const UMBRELLA_COMPLETED: &[(&str, &str, u32)] = &[("batch-01", "archivist", 4)];

/// Units of 3.x (dev-1790 and main): one representation unit per (session, observed).
fn v3_units(ws: &str) -> Vec<UnitLine> {
    match ws {
        "acme-support" => vec![
            (
                Rep,
                Some("ticket-1001"),
                None,
                Some("user-alice"),
                3,
                36,
                false,
                "2026-11-22T03:27:48.322883Z",
            ),
            (
                Rep,
                Some("ticket-1002"),
                None,
                Some("user-bob"),
                2,
                240,
                true,
                "2026-11-22T03:27:48.404180Z",
            ),
            (
                Rep,
                Some("ticket-1003"),
                None,
                Some("user-alice"),
                4,
                48,
                false,
                "2026-11-22T03:27:48.445115Z",
            ),
            (
                Rep,
                Some("ticket-1003"),
                None,
                Some("user-bob"),
                4,
                48,
                false,
                "2026-11-22T03:27:48.445115Z",
            ),
            (
                Summary,
                Some("ticket-1003"),
                None,
                None,
                1,
                12,
                false,
                "2026-11-22T03:27:48.445115Z",
            ),
        ],
        "globex-research" => vec![
            (
                Rep,
                Some("interview-03"),
                None,
                Some("subject-dan"),
                1,
                12,
                false,
                "2026-11-22T02:42:51.039997Z",
            ),
            (
                Rep,
                Some("interview-01"),
                None,
                Some("researcher-carol"),
                4,
                48,
                false,
                "2026-11-22T03:27:48.507537Z",
            ),
            (
                Rep,
                Some("interview-01"),
                None,
                Some("subject-dan"),
                16,
                192,
                false,
                "2026-11-22T03:27:48.507537Z",
            ),
            (
                Summary,
                Some("interview-01"),
                None,
                None,
                1,
                12,
                false,
                "2026-11-22T03:27:48.507537Z",
            ),
            (
                Rep,
                Some("interview-02"),
                None,
                Some("researcher-carol"),
                2,
                240,
                true,
                "2026-11-22T03:27:48.549933Z",
            ),
            (
                Dream,
                None,
                Some("subject-dan"),
                Some("subject-dan"),
                1,
                0,
                false,
                "2026-11-22T03:27:48.593951Z",
            ),
        ],
        "umbrella-archive" => vec![(
            Rep,
            Some("batch-01"),
            None,
            Some("archivist"),
            1,
            12,
            false,
            "2026-11-22T03:27:49.856955Z",
        )],
        _ => Vec::new(),
    }
}

fn dev_1790() -> Vec<WorkspaceLine> {
    vec![
        WorkspaceLine {
            name: "acme-support",
            metadata: ACME_META,
            created_at: "2026-11-22T03:27:48.125598Z",
            sessions: &[
                (
                    "ticket-1001",
                    "PV_4lDZGnfOYriid6W0NI",
                    "2026-11-22T03:27:48.173729Z",
                    false,
                ),
                (
                    "ticket-1002",
                    "OKlHcQ_0fZiwnFvrC1ya_",
                    "2026-11-22T03:27:48.339174Z",
                    false,
                ),
                (
                    "ticket-1003",
                    "xLf9dO3iSv2f3yyMBH9GD",
                    "2026-11-22T03:27:48.402579Z",
                    true,
                ),
            ],
            peers: ACME_PEERS,
            units: v3_units("acme-support"),
            completed: &[],
        },
        WorkspaceLine {
            name: "globex-research",
            metadata: GLOBEX_META,
            created_at: "2026-11-22T03:27:48.444724Z",
            sessions: &[
                (
                    "interview-01",
                    "tJhLMX6-Pf-uO64KP3wK7",
                    "2026-11-22T03:27:48.479928Z",
                    false,
                ),
                (
                    "interview-02",
                    "0L82YpJuJOYxGEB-x6yIU",
                    "2026-11-22T03:27:48.513222Z",
                    false,
                ),
                (
                    "interview-03",
                    "c54TfLVgBGc7P7dFt5RJC",
                    "2026-11-22T03:27:48.556201Z",
                    false,
                ),
            ],
            peers: GLOBEX_PEERS,
            units: v3_units("globex-research"),
            completed: &[],
        },
        WorkspaceLine {
            name: "initech-empty",
            metadata: &[],
            created_at: "2026-11-22T03:27:48.607246Z",
            sessions: &[(
                "kickoff",
                "Wc3nJ8yQe0pLr2TtVb5uA",
                "2026-11-22T03:27:48.622130Z",
                false,
            )],
            peers: &["intern-ivan"],
            units: Vec::new(),
            completed: &[],
        },
        WorkspaceLine {
            name: "umbrella-archive",
            metadata: UMBRELLA_META,
            created_at: "2026-11-22T03:27:48.639261Z",
            sessions: &[(
                "batch-01",
                "OX-yzycoH4zqJnOPeGiNL",
                "2026-11-22T03:27:48.671518Z",
                false,
            )],
            peers: &["archivist"],
            units: v3_units("umbrella-archive"),
            completed: UMBRELLA_COMPLETED,
        },
    ]
}

fn main_branch() -> Vec<WorkspaceLine> {
    vec![
        WorkspaceLine {
            name: "acme-support",
            metadata: ACME_META,
            created_at: "2026-11-22T03:27:51.745028Z",
            sessions: &[
                (
                    "ticket-1001",
                    "k2VdR7mQpZ0sXa9LcN4bE",
                    "2026-11-22T03:27:51.795426Z",
                    false,
                ),
                (
                    "ticket-1002",
                    "Tq8uYw3HnB6jFo1GzK5rS",
                    "2026-11-22T03:27:51.976494Z",
                    false,
                ),
                (
                    "ticket-1003",
                    "Mx4cP9eLh2VtRa7WdJ0yQ",
                    "2026-11-22T03:27:52.045135Z",
                    true,
                ),
            ],
            peers: ACME_PEERS,
            units: v3_units("acme-support"),
            completed: &[],
        },
        WorkspaceLine {
            name: "globex-research",
            metadata: GLOBEX_META,
            created_at: "2026-11-22T03:27:52.127031Z",
            sessions: &[
                (
                    "interview-01",
                    "_MMmc-WSBX-ILhLOMhKck",
                    "2026-11-22T03:27:52.161842Z",
                    false,
                ),
                (
                    "interview-02",
                    "IF4mu5u4OF94qS_f4q3fc",
                    "2026-11-22T03:27:52.195377Z",
                    false,
                ),
                (
                    "interview-03",
                    "olHkv_eYczXW_gKwHyDhp",
                    "2026-11-22T03:27:52.238214Z",
                    false,
                ),
            ],
            peers: GLOBEX_PEERS,
            units: v3_units("globex-research"),
            completed: &[],
        },
        WorkspaceLine {
            name: "initech-empty",
            metadata: &[],
            created_at: "2026-11-22T03:27:52.379618Z",
            sessions: &[(
                "kickoff",
                "Hb7sK1nVx4QeZp9RmT2cW",
                "2026-11-22T03:27:52.394571Z",
                false,
            )],
            peers: &["intern-ivan"],
            units: Vec::new(),
            completed: &[],
        },
        WorkspaceLine {
            name: "umbrella-archive",
            metadata: UMBRELLA_META,
            created_at: "2026-11-22T03:27:52.436487Z",
            sessions: &[(
                "batch-01",
                "Rz5gN8wLc3YkUe6PaD1vH",
                "2026-11-22T03:27:52.468003Z",
                false,
            )],
            peers: &["archivist"],
            units: v3_units("umbrella-archive"),
            completed: UMBRELLA_COMPLETED,
        },
    ]
}

/// 2.x: one representation row per (observer, observed), keys include the observer; no dream.
fn v2_5_1() -> Vec<WorkspaceLine> {
    let t = "2026-11-22T03:27:56.000001Z";
    let acme = vec![
        (
            Rep,
            Some("ticket-1001"),
            Some("user-alice"),
            Some("user-alice"),
            3,
            36,
            false,
            "2026-11-22T03:27:55.991311Z",
        ),
        (
            Rep,
            Some("ticket-1002"),
            Some("user-bob"),
            Some("user-bob"),
            2,
            240,
            true,
            "2026-11-22T03:27:56.071822Z",
        ),
        (
            Rep,
            Some("ticket-1003"),
            Some("user-alice"),
            Some("user-alice"),
            4,
            48,
            false,
            t,
        ),
        (
            Rep,
            Some("ticket-1003"),
            Some("user-bob"),
            Some("user-alice"),
            4,
            48,
            false,
            t,
        ),
        (
            Rep,
            Some("ticket-1003"),
            Some("user-alice"),
            Some("user-bob"),
            4,
            48,
            false,
            t,
        ),
        (
            Rep,
            Some("ticket-1003"),
            Some("user-bob"),
            Some("user-bob"),
            4,
            48,
            false,
            t,
        ),
        (Summary, Some("ticket-1003"), None, None, 1, 12, false, t),
    ];
    let g = "2026-11-22T03:27:56.201847Z";
    let globex = vec![
        (
            Rep,
            Some("interview-03"),
            Some("subject-dan"),
            Some("subject-dan"),
            1,
            12,
            false,
            "2026-11-22T02:43:00.412230Z",
        ),
        (
            Rep,
            Some("interview-01"),
            Some("researcher-carol"),
            Some("researcher-carol"),
            4,
            48,
            false,
            g,
        ),
        (
            Rep,
            Some("interview-01"),
            Some("subject-dan"),
            Some("subject-dan"),
            16,
            192,
            false,
            g,
        ),
        (Summary, Some("interview-01"), None, None, 1, 12, false, g),
        (
            Rep,
            Some("interview-02"),
            Some("researcher-carol"),
            Some("researcher-carol"),
            2,
            240,
            true,
            "2026-11-22T03:27:56.262954Z",
        ),
    ];
    let umbrella = vec![(
        Rep,
        Some("batch-01"),
        Some("archivist"),
        Some("archivist"),
        1,
        12,
        false,
        "2026-11-22T03:27:57.503516Z",
    )];
    vec![
        WorkspaceLine {
            name: "acme-support",
            metadata: ACME_META,
            created_at: "2026-11-22T03:27:55.840931Z",
            sessions: &[
                (
                    "ticket-1001",
                    "CfnnuSvZVf6dW54CMr83i",
                    "2026-11-22T03:27:55.902117Z",
                    false,
                ),
                (
                    "ticket-1002",
                    "Co5BdtWWJRYmzi3Bwol2V",
                    "2026-11-22T03:27:56.040284Z",
                    false,
                ),
                (
                    "ticket-1003",
                    "SBOYGucV_W4Q8NpWufSbz",
                    "2026-11-22T03:27:56.093716Z",
                    true,
                ),
            ],
            peers: ACME_PEERS,
            units: acme,
            completed: &[],
        },
        WorkspaceLine {
            name: "globex-research",
            metadata: GLOBEX_META,
            created_at: "2026-11-22T03:27:56.133057Z",
            sessions: &[
                (
                    "interview-01",
                    "YwnKz8vndcG9NFdiTOFWY",
                    "2026-11-22T03:27:56.171569Z",
                    false,
                ),
                (
                    "interview-02",
                    "5mas0RP3tiz7gXR1l9q4K",
                    "2026-11-22T03:27:56.231108Z",
                    false,
                ),
                (
                    "interview-03",
                    "CRcORrRbUHerjZO8gkyus",
                    "2026-11-22T03:27:56.290473Z",
                    false,
                ),
            ],
            peers: GLOBEX_PEERS,
            units: globex,
            completed: &[],
        },
        WorkspaceLine {
            name: "initech-empty",
            metadata: &[],
            created_at: "2026-11-22T03:27:56.394429Z",
            sessions: &[(
                "kickoff",
                "Pn6fA2xDq8UcLm0ViS3hY",
                "2026-11-22T03:27:56.411985Z",
                false,
            )],
            peers: &["intern-ivan"],
            units: Vec::new(),
            completed: &[],
        },
        WorkspaceLine {
            name: "umbrella-archive",
            metadata: UMBRELLA_META,
            created_at: "2026-11-22T03:27:56.450700Z",
            sessions: &[(
                "batch-01",
                "Je9tB4oWr7NgYs2KhF5xM",
                "2026-11-22T03:27:56.488231Z",
                false,
            )],
            peers: &["archivist"],
            units: umbrella,
            completed: &[("batch-01", "archivist", 4)],
        },
    ]
}
