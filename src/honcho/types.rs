//! Response types of Honcho's queue API, as the real servers send them (see
//! `shared/honcho-api.md`). Pure data and parsing; no I/O.
//!
//! An absent JSON key is "unknown" (`None`), never 0: a generation-B server lacks the two split
//! keys of queue/status.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

/// Item counts of queue/status (v3) or deriver/status (v2). The API calls them `*_work_units`,
/// but they count queue rows (items), not work units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct ItemCounts {
    /// `total_work_units`: completed + in_progress + pending.
    #[serde(rename = "total_work_units")]
    pub total: u64,
    /// `completed_work_units`: processed rows still in the table (errored rows included); resets
    /// when Honcho's reconciler cleans the queue, so a gauge.
    #[serde(rename = "completed_work_units")]
    pub completed: u64,
    /// `in_progress_work_units`: unprocessed rows of a claimed work unit.
    #[serde(rename = "in_progress_work_units")]
    pub in_progress: u64,
    /// `pending_work_units`: unprocessed rows of unclaimed work units.
    #[serde(rename = "pending_work_units")]
    pub pending: u64,
    /// `pending_stalled_work_units` (generation C only): pending representation rows below the
    /// batch token threshold. `None` when the server does not send the key.
    #[serde(rename = "pending_stalled_work_units", default)]
    pub pending_stalled: Option<u64>,
    /// `pending_ready_work_units` (generation C only). `None` when absent.
    #[serde(rename = "pending_ready_work_units", default)]
    pub pending_ready: Option<u64>,
}

impl ItemCounts {
    /// Whether the server reported the stalled/ready split (both keys present).
    pub fn has_split(&self) -> bool {
        self.pending_stalled.is_some() && self.pending_ready.is_some()
    }

    /// Adds `other` into `self`, saturating (the numbers come from upstream and must not
    /// overflow); a split survives only if both sides have it.
    pub fn add(&mut self, other: &ItemCounts) {
        self.total = self.total.saturating_add(other.total);
        self.completed = self.completed.saturating_add(other.completed);
        self.in_progress = self.in_progress.saturating_add(other.in_progress);
        self.pending = self.pending.saturating_add(other.pending);
        self.pending_stalled = self
            .pending_stalled
            .zip(other.pending_stalled)
            .map(|(a, b)| a.saturating_add(b));
        self.pending_ready = self
            .pending_ready
            .zip(other.pending_ready)
            .map(|(a, b)| a.saturating_add(b));
    }

    /// `self − other`, saturating at 0 per field (used for the items that belong to no session).
    pub fn saturating_sub(&self, other: &ItemCounts) -> ItemCounts {
        ItemCounts {
            total: self.total.saturating_sub(other.total),
            completed: self.completed.saturating_sub(other.completed),
            in_progress: self.in_progress.saturating_sub(other.in_progress),
            pending: self.pending.saturating_sub(other.pending),
            pending_stalled: self
                .pending_stalled
                .zip(other.pending_stalled)
                .map(|(a, b)| a.saturating_sub(b)),
            pending_ready: self
                .pending_ready
                .zip(other.pending_ready)
                .map(|(a, b)| a.saturating_sub(b)),
        }
    }
}

/// The whole queue/status body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QueueStatus {
    /// The workspace-wide counts.
    #[serde(flatten)]
    pub counts: ItemCounts,
    /// Per-session counts keyed by the internal session id. `null` when there are no rows or
    /// when a `session_id` filter was given; kept as `None` then.
    #[serde(default)]
    pub sessions: Option<BTreeMap<String, SessionStatus>>,
}

/// One value of the `sessions` dict.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SessionStatus {
    /// The internal session id (same as the dict key).
    pub session_id: String,
    /// The session's counts.
    #[serde(flatten)]
    pub counts: ItemCounts,
}

/// One page of `POST /v{2,3}/workspaces/list` (fastapi-pagination `Page`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WorkspacePage {
    /// The workspaces on this page.
    pub items: Vec<WorkspaceItem>,
    /// Number of workspaces in all.
    pub total: u64,
    /// This page's number (1-based).
    pub page: u64,
    /// Page size.
    pub size: u64,
    /// Number of pages (`ceil(total/size)`).
    pub pages: u64,
}

/// A workspace of the list; only its name matters here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WorkspaceItem {
    /// The workspace name (`schemas.Workspace` serializes `name` as `id`).
    pub id: String,
}

/// One page of `GET /v3/workspaces/{id}/queue/work-units` (a cursor page), borrowing from the
/// response body so that parsing allocates little.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorkUnitsPage<'a> {
    /// The work units on this page.
    #[serde(borrow, deserialize_with = "page_rows")]
    pub items: Vec<WorkUnitRow<'a>>,
    /// Number of matching work units in all (not items).
    pub total: u64,
    /// The cursor of the next page, already percent-encoded; `None` at the end.
    #[serde(borrow, default, deserialize_with = "borrowed_option")]
    pub next_page: Option<Cow<'a, str>>,
    /// `DERIVER_REPRESENTATION_BATCH_MAX_TOKENS` of the server.
    #[serde(default)]
    pub representation_batch_max_tokens: Option<u64>,
    /// `DERIVER_FLUSH_ENABLED` of the server.
    #[serde(default)]
    pub flush_enabled: Option<bool>,
}

/// One work unit row.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorkUnitRow<'a> {
    /// `representation:{ws}:{session}:{observed}`, `summary:…`, `dream:…`.
    #[serde(borrow)]
    pub work_unit_key: Cow<'a, str>,
    /// `representation|summary|dream`.
    #[serde(borrow)]
    pub task_type: Cow<'a, str>,
    /// Internal session id; `None` for dreams.
    #[serde(borrow, default, deserialize_with = "borrowed_option")]
    pub session_id: Option<Cow<'a, str>>,
    /// Session name; `None` for dreams.
    #[serde(borrow, default, deserialize_with = "borrowed_option")]
    pub session_name: Option<Cow<'a, str>>,
    /// Observed peer (sender); `None` for summaries.
    #[serde(borrow, default, deserialize_with = "borrowed_option")]
    pub observed: Option<Cow<'a, str>>,
    /// Unprocessed items of the unit.
    pub pending_items: u64,
    /// Tokens of the unit's unprocessed items.
    pub pending_tokens: u64,
    /// Tokens still missing before the batch threshold (0 when reached or not gated).
    pub tokens_until_threshold: u64,
    /// Whether the unit reached the threshold (always true for non-representation units).
    pub hit_threshold: bool,
    /// Whether a deriver has claimed the unit.
    pub in_progress: bool,
    /// ISO-8601 timestamp of the oldest unprocessed item.
    #[serde(borrow)]
    pub oldest_item_at: Cow<'a, str>,
}

/// The rows of a page into a vector allocated once for a full page: JSON gives no length
/// up front, so serde's own `Vec` would start empty and grow (and move every row) seven times
/// per page of 100. Same errors as the derived form (`expected a sequence`).
fn page_rows<'de: 'a, 'a, D>(deserializer: D) -> Result<Vec<WorkUnitRow<'a>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    /// Honcho's largest page size (`size` above 100 is refused with 422).
    const FULL_PAGE: usize = 100;
    struct Rows;
    impl<'de> serde::de::Visitor<'de> for Rows {
        type Value = Vec<WorkUnitRow<'de>>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a sequence")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(FULL_PAGE).min(FULL_PAGE));
            while let Some(row) = seq.next_element()? {
                rows.push(row);
            }
            Ok(rows)
        }
    }
    deserializer.deserialize_seq(Rows)
}

/// An optional string borrowed from the body. serde borrows a bare `Cow<str>` field marked
/// `#[serde(borrow)]`, but inside an `Option` it would deserialize an owned `String` (one
/// allocation per field and row); the newtype keeps the borrow (owned only when the JSON string
/// has escapes).
fn borrowed_option<'de: 'a, 'a, D>(deserializer: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(deserializer)?.map(|borrowed| borrowed.0))
}

/// Parses an ISO-8601 / RFC 3339 timestamp (`2026-11-22T02:42:51.039997Z`) into Unix seconds
/// (microsecond resolution). One without an offset (`2026-11-22T02:42:51.039997`, or with a
/// space for the `T`, as Python prints a naive `datetime`) is UTC: Honcho's database keeps UTC.
/// `None` when it is neither.
///
/// Every work unit carries one, so the shape Honcho sends (UTC, `Z` or `+00:00`, up to 9
/// fraction digits) is parsed directly, in a few nanoseconds; anything else (other offsets,
/// naive times, leap seconds, surrounding spaces, invalid dates) goes through chrono.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    parse_utc_timestamp(text.as_bytes()).or_else(|| parse_timestamp_chrono(text))
}

/// The general path of [`parse_timestamp`].
fn parse_timestamp_chrono(text: &str) -> Option<f64> {
    let text = text.trim();
    let utc = match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(parsed) => parsed.to_utc(),
        Err(_) => ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
            .iter()
            .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())?
            .and_utc(),
    };
    Some(utc.timestamp() as f64 + f64::from(utc.timestamp_subsec_micros()) / 1e6)
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+00:00)` with every field in range, else `None`. The result
/// equals chrono's for every input it accepts (fraction truncated to microseconds).
fn parse_utc_timestamp(bytes: &[u8]) -> Option<f64> {
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let year = digits(bytes, 0, 4)?;
    let month = digits(bytes, 5, 2)?;
    let day = digits(bytes, 8, 2)?;
    let hour = digits(bytes, 11, 2)?;
    let minute = digits(bytes, 14, 2)?;
    let second = digits(bytes, 17, 2)?;
    if day == 0 || day > days_in_month(year, month)? || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let (micros, at) = fraction_micros(bytes, 19)?;
    match &bytes[at..] {
        b"Z" | b"+00:00" => {}
        _ => return None,
    }
    let seconds = days_from_civil(year, month, day) * 86_400
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second);
    Some(seconds as f64 + f64::from(micros) / 1e6)
}

/// The decimal number of the `count` ASCII digits at `at`, or `None` if any is not a digit.
fn digits(bytes: &[u8], at: usize, count: usize) -> Option<u32> {
    let mut value = 0u32;
    for &byte in bytes.get(at..at + count)? {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(byte - b'0');
    }
    Some(value)
}

/// Days of `month` in `year` (proleptic Gregorian), `None` for a month out of range.
fn days_in_month(year: u32, month: u32) -> Option<u32> {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => Some(31),
        4 | 6 | 9 | 11 => Some(30),
        2 if leap => Some(29),
        2 => Some(28),
        _ => None,
    }
}

/// An optional `.f{1,9}` fraction at `at`, truncated to microseconds, and where it ends; no
/// fraction is 0 µs ending at `at`; a `.` without digits or more than nine digits is `None`.
fn fraction_micros(bytes: &[u8], at: usize) -> Option<(u32, usize)> {
    if bytes.get(at) != Some(&b'.') {
        return Some((0, at));
    }
    let start = at + 1;
    let mut end = start;
    let mut micros = 0u32;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        if end - start < 6 {
            micros = micros * 10 + u32::from(bytes[end] - b'0');
        }
        end += 1;
    }
    let fraction_digits = end - start;
    if fraction_digits == 0 || fraction_digits > 9 {
        return None;
    }
    for _ in fraction_digits..6 {
        micros *= 10;
    }
    Some((micros, end))
}

/// Days from 1970-01-01 to the civil date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let (y, m, d) = (i64::from(year), i64::from(month), i64::from(day));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_with_microseconds_and_z_parses_to_unix_seconds() {
        let seconds = parse_timestamp("2026-11-22T02:42:51.039997Z").expect("valid timestamp");
        assert!((seconds - 1_795_315_371.039_997).abs() < 1e-6, "{seconds}");
    }

    fn chrono_seconds(text: &str) -> Option<f64> {
        parse_timestamp_chrono(text)
    }

    #[test]
    fn the_fast_timestamp_path_agrees_with_chrono() {
        for text in [
            "2026-11-22T02:42:51.039997Z",
            "2026-11-22T02:42:51Z",
            "2026-11-22T02:42:51.5Z",
            "2026-11-22T02:42:51.123456789Z",
            "2026-11-22T02:42:51.1234567+00:00",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999999Z",
            "2000-02-29T12:00:00Z",
            "2024-02-29T23:59:59.000001Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "2100-03-01T00:00:00Z",
        ] {
            let fast = parse_utc_timestamp(text.as_bytes());
            assert!(fast.is_some(), "{text} should take the fast path");
            assert_eq!(fast, chrono_seconds(text), "{text}");
        }
        for text in [
            "2026-11-22T02:42:51.039997+01:00",
            "2026-11-22 02:42:51Z",
            "2026-11-22t02:42:51z",
            "2026-11-22T23:59:60Z",
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T02:42:51.Z",
            "2026-11-22T02:42:51.1234567890Z",
            "2026-11-22T02:42:51",
            "2026-11-22T02:42:51Zjunk",
            "２026-11-22T02:42:51Z",
        ] {
            assert_eq!(parse_utc_timestamp(text.as_bytes()), None, "{text}");
            assert_eq!(parse_timestamp(text), chrono_seconds(text), "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_utc_timestamp_parses_as_chrono_parses_it(
            year in 1u32..=9999,
            month in 1u32..=12,
            day in 1u32..=31,
            hour in 0u32..=23,
            minute in 0u32..=59,
            second in 0u32..=59,
            fraction in proptest::option::of("[0-9]{1,9}"),
            offset in proptest::sample::select(vec!["Z", "+00:00", "+01:00", "-00:30"]),
        ) {
            let fraction = fraction.map(|digits| format!(".{digits}")).unwrap_or_default();
            let text = format!(
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{offset}"
            );
            proptest::prop_assert_eq!(parse_timestamp(&text), chrono_seconds(&text), "{}", text);
        }
    }

    #[test]
    fn work_unit_strings_borrow_from_the_body_unless_escaped() {
        let body = r#"{"items":[{"work_unit_key":"representation:w:s:p","task_type":"representation","session_id":"id1","session_name":"s\u00e9","observer":null,"observed":null,"pending_items":1,"pending_tokens":2,"tokens_until_threshold":3,"hit_threshold":false,"in_progress":false,"oldest_item_at":"2026-11-22T02:42:51Z"}],"total":1,"next_page":"PmR0"}"#;
        let page: WorkUnitsPage<'_> = serde_json::from_str(body).expect("valid page");
        let row = &page.items[0];
        assert!(matches!(row.session_id, Some(Cow::Borrowed("id1"))));
        assert!(matches!(&row.session_name, Some(Cow::Owned(name)) if name == "sé"));
        assert_eq!(row.observed, None);
        assert!(matches!(page.next_page, Some(Cow::Borrowed("PmR0"))));
        let last: WorkUnitsPage<'_> =
            serde_json::from_str(r#"{"items":[],"total":0}"#).expect("no next_page key");
        assert_eq!(last.next_page, None);
    }

    #[test]
    fn timestamp_garbage_is_none() {
        for garbage in [
            "yesterday",
            "",
            "2026-11-22",
            "2026-13-22T02:42:51",
            "2026-11-22T02:42",
            "1795315371",
        ] {
            assert_eq!(parse_timestamp(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn timestamp_without_an_offset_is_utc() {
        let utc = parse_timestamp("2026-11-22T02:42:51.039997Z").expect("valid timestamp");
        for naive in [
            "2026-11-22T02:42:51.039997",
            "2026-11-22 02:42:51.039997",
            "2026-11-22T02:42:51.039997+00:00",
        ] {
            assert_eq!(parse_timestamp(naive), Some(utc), "{naive}");
        }
        assert_eq!(
            parse_timestamp("2026-11-22T02:42:51"),
            Some(1_795_315_371.0)
        );
        assert_eq!(
            parse_timestamp("2026-11-22T04:42:51+02:00"),
            Some(1_795_315_371.0),
            "an offset is still honoured"
        );
    }

    #[test]
    fn absent_split_keys_are_unknown_not_zero() {
        let counts: ItemCounts = serde_json::from_str(
            r#"{"total_work_units":3,"completed_work_units":1,"in_progress_work_units":1,"pending_work_units":1}"#,
        )
        .expect("valid body");
        assert_eq!(counts.pending_stalled, None);
        assert!(!counts.has_split());
    }

    #[test]
    fn adding_counts_from_a_hostile_upstream_saturates_instead_of_overflowing() {
        let mut counts = ItemCounts {
            total: u64::MAX,
            pending_stalled: Some(u64::MAX),
            pending_ready: Some(0),
            ..ItemCounts::default()
        };
        counts.add(&ItemCounts {
            total: 1,
            pending_stalled: Some(1),
            pending_ready: Some(0),
            ..ItemCounts::default()
        });
        assert_eq!(counts.total, u64::MAX);
        assert_eq!(counts.pending_stalled, Some(u64::MAX));
    }
}
