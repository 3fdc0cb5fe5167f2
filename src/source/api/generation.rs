//! Generation detection: which API version Honcho speaks, whether queue/status reports the
//! stalled/ready split, and whether queue/work-units exists. The one place these are decided.
//!
//! A feature is a property of the server, so it is judged from the answers of several
//! workspaces, never from one: each workspace's latest answer is kept as evidence (for as long
//! as it is fresh), and the verdict follows the majority; a tie keeps the verdict in force. One
//! workspace answering 404 on work-units (a rolling deploy, a proxy route) therefore marks only
//! that workspace's walk down; when most workspaces answer 404 the endpoint is gone and every
//! workspace's work-unit data goes with it (the caller acts on [`Change`]).
//!
//! Pure: no I/O, no clock (callers pass `now`), no logging beyond the verdict changes it
//! reports. The API version is switched by discovery (a server-wide answer) at once, and by
//! queue/status answers through the same majority rule.

use std::collections::BTreeMap;

use crate::config::GenerationOverride;
use crate::honcho::ApiVersion;
use crate::snapshot::Generation;

/// Workspaces probed per cycle for work-units while the endpoint is judged absent: enough
/// answers for a majority to see an upgrade within two cycles, few enough to cost nothing.
pub const PROBES_WHILE_ABSENT: usize = 3;

/// The latest answer of each workspace about one yes/no property of the server.
#[derive(Debug, Clone, Default)]
struct Quorum {
    verdict: Option<bool>,
    /// Workspace → (Unix seconds of the answer, what it said).
    evidence: BTreeMap<String, (f64, bool)>,
}

impl Quorum {
    /// Records one workspace's answer; returns the new verdict if it changed.
    fn record(&mut self, workspace: &str, says: bool, now: f64, window: f64) -> Option<bool> {
        self.evidence.insert(workspace.to_string(), (now, says));
        self.evidence.retain(|_, (at, _)| *at >= now - window);
        let yes = self.evidence.values().filter(|(_, says)| *says).count();
        let no = self.evidence.len() - yes;
        let verdict = match yes.cmp(&no) {
            std::cmp::Ordering::Greater => Some(true),
            std::cmp::Ordering::Less => Some(false),
            std::cmp::Ordering::Equal => self.verdict,
        };
        if verdict != self.verdict {
            self.verdict = verdict;
            Some(verdict.unwrap_or(false))
        } else {
            None
        }
    }

    fn reset(&mut self) {
        self.verdict = None;
        self.evidence.clear();
    }
}

/// What changed in the server's judged capabilities, for the caller to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The API version in use changed; on `/v2` everything learnt from `/v3` is void.
    Version(ApiVersion),
    /// queue/work-units appeared.
    WorkUnitsAppeared,
    /// queue/work-units is gone: drop every workspace's work-unit data and health.
    WorkUnitsGone,
}

/// How one workspace's work-units request ended, as evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkUnitsAnswer {
    /// A page came back: the route exists.
    Present,
    /// 404: the route is missing for this workspace.
    NotFound,
}

/// How to treat one workspace's work-units 404 under the current verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFoundMeaning {
    /// The server has no work-units endpoint: not an error, no health, no series.
    Unavailable,
    /// The server has it but this workspace's request got a 404: that workspace's walk is down.
    WorkspaceDown,
}

/// The server's generation as judged from the evidence so far.
#[derive(Debug, Clone)]
pub struct GenerationDetector {
    mode: GenerationOverride,
    /// How long one answer counts as evidence (`poll.max_staleness`).
    window: f64,
    api_version: Option<ApiVersion>,
    /// Which version each workspace's queue/status answered on (true: `/v3`).
    version_answers: Quorum,
    status_split: Quorum,
    work_units: Quorum,
    /// Rotates the probe set while work-units is judged absent.
    probe_offset: usize,
}

impl GenerationDetector {
    /// A detector for the configured override; evidence counts for `window` seconds.
    pub fn new(mode: GenerationOverride, window: f64) -> Self {
        let mut detector = GenerationDetector {
            mode,
            window,
            api_version: None,
            version_answers: Quorum::default(),
            status_split: Quorum::default(),
            work_units: Quorum::default(),
            probe_offset: 0,
        };
        match mode {
            GenerationOverride::Auto => {}
            GenerationOverride::A => detector.api_version = Some(ApiVersion::V2),
            GenerationOverride::B | GenerationOverride::C => {
                detector.api_version = Some(ApiVersion::V3);
            }
        }
        detector
    }

    /// Whether answers may change the generation (not forced by configuration).
    pub fn detects(&self) -> bool {
        self.mode == GenerationOverride::Auto
    }

    /// The API version to try first.
    pub fn version(&self) -> ApiVersion {
        self.api_version.unwrap_or(match self.mode {
            GenerationOverride::A => ApiVersion::V2,
            _ => ApiVersion::V3,
        })
    }

    /// The API version in use, once known.
    pub fn known_version(&self) -> Option<ApiVersion> {
        self.api_version
    }

    /// Whether queue/status reports the split, once known.
    pub fn status_split(&self) -> Option<bool> {
        self.status_split.verdict
    }

    /// Whether queue/work-units exists, once known. `/v2` (Honcho 2.x) never has it.
    pub fn work_units_available(&self) -> Option<bool> {
        match self.api_version {
            Some(ApiVersion::V2) => Some(false),
            _ => self.work_units.verdict,
        }
    }

    /// The generation label, once the version is known.
    pub fn generation(&self) -> Option<Generation> {
        self.api_version.map(|version| match version {
            ApiVersion::V2 => Generation::A,
            ApiVersion::V3 => match (self.work_units.verdict, self.status_split.verdict) {
                (Some(true), _) => Generation::C,
                (None, Some(true)) => Generation::C,
                _ => Generation::B,
            },
        })
    }

    /// Which of `workspaces` (sorted) get the work-units walk this cycle: all of them while the
    /// endpoint exists or is unknown; while it is judged absent, a few rotating probes (an
    /// upgraded Honcho is noticed); none when walking cannot apply.
    pub fn walk_plan(&mut self, workspaces: &[String], walk_enabled: bool) -> Vec<String> {
        let allowed = walk_enabled
            && self.version() == ApiVersion::V3
            && !matches!(self.mode, GenerationOverride::A | GenerationOverride::B);
        if !allowed || workspaces.is_empty() {
            return Vec::new();
        }
        if self.work_units.verdict == Some(false) && self.detects() {
            let count = PROBES_WHILE_ABSENT.min(workspaces.len());
            let start = self.probe_offset % workspaces.len();
            self.probe_offset = (start + count) % workspaces.len();
            return (0..count)
                .map(|i| workspaces[(start + i) % workspaces.len()].clone())
                .collect();
        }
        workspaces.to_vec()
    }

    /// Discovery (a server-wide answer) succeeded on `version`.
    pub fn discovered_on(&mut self, version: ApiVersion) -> Option<Change> {
        if self.api_version == Some(version) {
            return None;
        }
        let previous = self.api_version;
        self.set_version(version);
        // The first answer only fixes the version; a switch is a change.
        previous.map(|_| Change::Version(version))
    }

    /// `workspace`'s queue/status answered on `version` (with or without the split keys).
    pub fn status_answered(
        &mut self,
        workspace: &str,
        version: ApiVersion,
        has_split: bool,
        now: f64,
    ) -> Option<Change> {
        let mut change = None;
        if self.detects() {
            let says_v3 = version == ApiVersion::V3;
            let verdict = self
                .version_answers
                .record(workspace, says_v3, now, self.window);
            let judged = match verdict {
                Some(v3) => Some(if v3 { ApiVersion::V3 } else { ApiVersion::V2 }),
                None => self.api_version.or(Some(version)),
            };
            if let Some(judged) = judged
                && Some(judged) != self.api_version
            {
                let previous = self.api_version;
                self.set_version(judged);
                if previous.is_some() {
                    change = Some(Change::Version(judged));
                }
            }
        } else if self.api_version.is_none() {
            self.api_version = Some(version);
        }
        if version == self.version() {
            self.status_split
                .record(workspace, has_split, now, self.window);
        }
        change
    }

    /// `workspace`'s work-units request ended with `answer`. Returns the verdict change, if any,
    /// and, for a 404, what it means for that workspace under the verdict now in force.
    pub fn work_units_answered(
        &mut self,
        workspace: &str,
        answer: WorkUnitsAnswer,
        now: f64,
    ) -> (Option<Change>, NotFoundMeaning) {
        let present = answer == WorkUnitsAnswer::Present;
        let change = self
            .work_units
            .record(workspace, present, now, self.window)
            .map(|available| {
                if available {
                    Change::WorkUnitsAppeared
                } else {
                    Change::WorkUnitsGone
                }
            });
        if !self.detects() {
            // Forced: the gauge reports what was seen; a 404 is that workspace's failure.
            return (None, NotFoundMeaning::WorkspaceDown);
        }
        let meaning = if self.work_units.verdict == Some(false) {
            NotFoundMeaning::Unavailable
        } else {
            NotFoundMeaning::WorkspaceDown
        };
        (change, meaning)
    }

    fn set_version(&mut self, version: ApiVersion) {
        self.api_version = Some(version);
        // Another version is another server: what was learnt about features is void.
        self.status_split.reset();
        self.work_units.reset();
        self.version_answers.evidence.clear();
        self.version_answers.verdict = Some(version == ApiVersion::V3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: f64 = 45.0;

    fn names(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("ws-{i}")).collect()
    }

    fn detector() -> GenerationDetector {
        let mut detector = GenerationDetector::new(GenerationOverride::Auto, WINDOW);
        for workspace in names(4) {
            detector.status_answered(&workspace, ApiVersion::V3, true, 0.0);
        }
        detector
    }

    fn walk(
        detector: &mut GenerationDetector,
        workspace: &str,
        answer: WorkUnitsAnswer,
        now: f64,
    ) -> (Option<Change>, NotFoundMeaning) {
        detector.work_units_answered(workspace, answer, now)
    }

    #[test]
    fn one_workspace_answering_404_does_not_switch_the_feature_off() {
        let mut detector = detector();
        for cycle in 0..6 {
            let now = f64::from(cycle) * 15.0;
            for workspace in ["ws-0", "ws-1", "ws-2"] {
                walk(&mut detector, workspace, WorkUnitsAnswer::Present, now);
            }
            // The slow one answers last, with a 404.
            let (change, meaning) = walk(&mut detector, "ws-3", WorkUnitsAnswer::NotFound, now);
            assert_eq!(change, None, "cycle {cycle}: no verdict change");
            assert_eq!(meaning, NotFoundMeaning::WorkspaceDown, "cycle {cycle}");
            assert_eq!(detector.work_units_available(), Some(true));
            assert_eq!(detector.generation(), Some(Generation::C));
            assert_eq!(
                detector.walk_plan(&names(4), true),
                names(4),
                "cycle {cycle}: every workspace is walked every cycle"
            );
        }
    }

    #[test]
    fn most_workspaces_answering_404_switch_the_feature_off_for_all() {
        let mut detector = detector();
        for workspace in names(4) {
            walk(&mut detector, &workspace, WorkUnitsAnswer::Present, 0.0);
        }
        let (first, _) = walk(&mut detector, "ws-3", WorkUnitsAnswer::NotFound, 15.0);
        assert_eq!(first, None);
        let (tie, meaning) = walk(&mut detector, "ws-0", WorkUnitsAnswer::NotFound, 15.0);
        assert_eq!(tie, None, "a tie keeps the verdict");
        assert_eq!(meaning, NotFoundMeaning::WorkspaceDown);
        let (gone, meaning) = walk(&mut detector, "ws-1", WorkUnitsAnswer::NotFound, 15.0);
        assert_eq!(gone, Some(Change::WorkUnitsGone));
        assert_eq!(meaning, NotFoundMeaning::Unavailable);
        assert_eq!(detector.work_units_available(), Some(false));
        assert_eq!(detector.generation(), Some(Generation::B));
    }

    #[test]
    fn while_absent_a_few_rotating_probes_notice_an_upgrade_within_two_cycles() {
        let mut detector = detector();
        for workspace in names(4) {
            walk(&mut detector, &workspace, WorkUnitsAnswer::NotFound, 0.0);
        }
        assert_eq!(detector.work_units_available(), Some(false));
        let all = names(10);
        let first = detector.walk_plan(&all, true);
        let second = detector.walk_plan(&all, true);
        assert_eq!(first.len(), PROBES_WHILE_ABSENT);
        assert_ne!(first, second, "the probes rotate");
        // Honcho is upgraded: the probes answer with pages.
        let mut now = 15.0;
        let mut appeared = None;
        for _ in 0..2 {
            for workspace in detector.walk_plan(&all, true) {
                if let (Some(change), _) =
                    walk(&mut detector, &workspace, WorkUnitsAnswer::Present, now)
                {
                    appeared = Some(change);
                }
            }
            now += 15.0;
        }
        assert_eq!(appeared, Some(Change::WorkUnitsAppeared));
        assert_eq!(detector.walk_plan(&all, true), all);
    }

    #[test]
    fn stale_evidence_does_not_count() {
        let mut detector = detector();
        walk(&mut detector, "ws-0", WorkUnitsAnswer::Present, 0.0);
        walk(&mut detector, "ws-1", WorkUnitsAnswer::Present, 0.0);
        // Long after, one fresh 404 outweighs nothing: the old answers expired.
        let (change, _) = walk(&mut detector, "ws-2", WorkUnitsAnswer::NotFound, 100.0);
        assert_eq!(change, Some(Change::WorkUnitsGone));
    }

    #[test]
    fn generation_a_has_no_work_units() {
        let mut detector = GenerationDetector::new(GenerationOverride::Auto, WINDOW);
        detector.status_answered("ws-0", ApiVersion::V2, false, 0.0);
        assert_eq!(detector.generation(), Some(Generation::A));
        assert_eq!(detector.work_units_available(), Some(false));
        assert!(detector.walk_plan(&names(2), true).is_empty());
        let forced = GenerationDetector::new(GenerationOverride::A, WINDOW);
        assert_eq!(forced.work_units_available(), Some(false));
    }

    #[test]
    fn the_api_version_follows_the_majority_of_workspaces() {
        let mut detector = detector();
        assert_eq!(detector.known_version(), Some(ApiVersion::V3));
        assert_eq!(
            detector.status_answered("ws-3", ApiVersion::V2, false, 15.0),
            None,
            "one workspace on /v2 does not switch the server"
        );
        assert_eq!(detector.known_version(), Some(ApiVersion::V3));
        detector.status_answered("ws-0", ApiVersion::V2, false, 15.0);
        assert_eq!(
            detector.status_answered("ws-1", ApiVersion::V2, false, 15.0),
            Some(Change::Version(ApiVersion::V2))
        );
        assert_eq!(detector.generation(), Some(Generation::A));
    }

    #[test]
    fn discovery_switches_the_version_at_once() {
        let mut detector = detector();
        assert_eq!(
            detector.discovered_on(ApiVersion::V2),
            Some(Change::Version(ApiVersion::V2))
        );
        let mut fresh = GenerationDetector::new(GenerationOverride::Auto, WINDOW);
        assert_eq!(fresh.discovered_on(ApiVersion::V3), None, "first answer");
        assert_eq!(fresh.known_version(), Some(ApiVersion::V3));
    }

    #[test]
    fn a_forced_generation_is_never_changed_by_answers() {
        let mut detector = GenerationDetector::new(GenerationOverride::C, WINDOW);
        for workspace in names(4) {
            let (change, meaning) =
                detector.work_units_answered(&workspace, WorkUnitsAnswer::NotFound, 0.0);
            assert_eq!(change, None);
            assert_eq!(meaning, NotFoundMeaning::WorkspaceDown);
        }
        assert_eq!(
            detector.walk_plan(&names(4), true),
            names(4),
            "still walked"
        );
        assert_eq!(detector.known_version(), Some(ApiVersion::V3));
    }
}
