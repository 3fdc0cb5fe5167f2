//! The opaque work-units cursor, byte for byte as Honcho (fastapi-pagination 0.15 over
//! sqlakeyset) writes and reads it: a percent-encoded base64 sqlakeyset bookmark
//! `>dt:2026-11-22 03:27:48.507537+00:00~s:<work_unit_key>` (`>` forward, `<` backward).
//!
//! Owns: encoding and decoding bookmarks, Python-compatible `quote`/`unquote`, lenient base64
//! and Python's `str(datetime)` rendering. Pure functions, no I/O, no knowledge of the model.

use chrono::{DateTime, Utc};

/// One keyset position: the `(oldest_item_at, work_unit_key)` of a work-unit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    /// `oldest_item_at` in microseconds since the Unix epoch (UTC).
    pub oldest_micros: i64,
    /// The work unit key, compared bytewise after the timestamp.
    pub key: String,
}

/// A decoded sqlakeyset bookmark: a direction and an optional place (`None` = from the start
/// going forward, or from the end going backward).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bookmark {
    /// `<` bookmarks page backwards (rows before the place).
    pub backwards: bool,
    /// Where the page starts (exclusive); `None` for the very start/end.
    pub place: Option<Place>,
}

/// Why a cursor was refused, with the exact answer real Honcho gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CursorError {
    /// Not base64 or not UTF-8 (`fastapi_pagination.cursor.decode_cursor`): 400.
    #[error("Invalid cursor value")]
    InvalidValue,
    /// sqlakeyset `ValueError` caught by the route: 400 with this detail.
    #[error("{0}")]
    BadBookmark(String),
    /// A bookmark whose values do not fit the keyset: the database would fail, Honcho answers 500.
    #[error("bookmark does not match the (oldest_item_at, work_unit_key) keyset")]
    KeysetMismatch,
}

/// Python's `str(datetime)` for an aware UTC datetime: `2026-11-22 03:27:48.507537+00:00`,
/// without the fraction when the microseconds are zero.
pub(crate) fn python_datetime_str(micros: i64) -> String {
    format_micros(micros, "%Y-%m-%d %H:%M:%S", "+00:00")
}

/// Pydantic's JSON rendering of a UTC datetime: `2026-11-22T03:27:48.507537Z`, without the
/// fraction when the microseconds are zero.
pub(crate) fn iso_z(micros: i64) -> String {
    format_micros(micros, "%Y-%m-%dT%H:%M:%S", "Z")
}

fn format_micros(micros: i64, pattern: &str, suffix: &str) -> String {
    let Some(moment) = DateTime::<Utc>::from_timestamp_micros(micros) else {
        return format!("out-of-range-{micros}{suffix}");
    };
    let fraction = micros.rem_euclid(1_000_000);
    let mut text = moment.format(pattern).to_string();
    if fraction != 0 {
        text.push_str(&format!(".{fraction:06}"));
    }
    text.push_str(suffix);
    text
}

/// Parses Python's `str(datetime)` back (with or without fraction, any UTC offset).
fn parse_python_datetime(text: &str) -> Option<i64> {
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z")
        .ok()
        .map(|moment| moment.timestamp_micros())
}

/// Serializes a bookmark the way sqlakeyset does, then base64 and `quote()` like
/// fastapi-pagination's `encode_cursor`.
pub(crate) fn encode_bookmark(backwards: bool, place: Option<&Place>) -> String {
    let mut marker = String::from(if backwards { "<" } else { ">" });
    if let Some(place) = place {
        marker.push_str("dt:");
        marker.push_str(&python_datetime_str(place.oldest_micros));
        marker.push_str("~s:");
        marker.push_str(&place.key);
    }
    quote(&base64_encode(marker.as_bytes()))
}

/// Decodes a `cursor` query value (already URL-decoded once by the HTTP layer): `unquote()`
/// again, lenient base64, UTF-8, then the sqlakeyset bookmark. Empty = no cursor.
pub(crate) fn decode_cursor(value: &str) -> Result<Option<Bookmark>, CursorError> {
    if value.is_empty() {
        return Ok(None);
    }
    let unquoted = unquote(value);
    let bytes = base64_decode_lenient(&unquoted).ok_or(CursorError::InvalidValue)?;
    let marker = String::from_utf8(bytes).map_err(|_| CursorError::InvalidValue)?;
    if marker.is_empty() {
        return Ok(None);
    }
    let backwards = match marker.as_bytes()[0] {
        b'>' => false,
        b'<' => true,
        _ => {
            return Err(CursorError::BadBookmark(
                "Malformed bookmark string: doesn't start with a direction marker".to_owned(),
            ));
        }
    };
    let values = &marker[1..];
    if values.is_empty() {
        return Ok(Some(Bookmark {
            backwards,
            place: None,
        }));
    }
    let mut parsed = Vec::new();
    for cell in values.split('~') {
        let Some((code, raw)) = cell.split_once(':') else {
            return Err(CursorError::BadBookmark(format!(
                "unrecognized value {cell}"
            )));
        };
        match code {
            "dt" | "s" | "i" | "n" | "d" | "t" | "b" | "x" | "uuid" | "f" => {
                parsed.push((code, raw))
            }
            _ => {
                return Err(CursorError::BadBookmark(format!(
                    "unrecognized value {cell}"
                )));
            }
        }
    }
    match parsed.as_slice() {
        [("dt", timestamp), ("s", key)] => {
            let oldest_micros = parse_python_datetime(timestamp).ok_or_else(|| {
                CursorError::BadBookmark(format!("unrecognized value dt:{timestamp}"))
            })?;
            Ok(Some(Bookmark {
                backwards,
                place: Some(Place {
                    oldest_micros,
                    key: (*key).to_owned(),
                }),
            }))
        }
        _ => Err(CursorError::KeysetMismatch),
    }
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with `=` padding (Python's `b64encode`).
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64_ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Python's non-strict `b64decode`: characters outside the alphabet are skipped, decoding stops
/// at sufficient padding, and a dangling partial quantum is an error (`None`).
pub(crate) fn base64_decode_lenient(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut quantum = [0u8; 4];
    let mut filled = 0usize;
    let mut padding = 0usize;
    for byte in text.bytes() {
        if byte == b'=' {
            if filled >= 2 {
                padding += 1;
                if filled + padding >= 4 {
                    break;
                }
            }
            continue;
        }
        let Some(value) = BASE64_ALPHABET.iter().position(|&c| c == byte) else {
            continue;
        };
        if padding > 0 {
            // Data after a partial padding run: Python discards the padding and continues.
            padding = 0;
        }
        quantum[filled] = value as u8;
        filled += 1;
        if filled == 4 {
            let n = quantum
                .iter()
                .fold(0u32, |acc, &v| (acc << 6) | u32::from(v));
            out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
            filled = 0;
        }
    }
    match filled {
        0 => Some(out),
        2 | 3 if filled + padding >= 4 => {
            let n = quantum[..filled]
                .iter()
                .fold(0u32, |acc, &v| (acc << 6) | u32::from(v))
                << (6 * (4 - filled));
            out.push((n >> 16) as u8);
            if filled == 3 {
                out.push((n >> 8) as u8);
            }
            Some(out)
        }
        _ => None,
    }
}

/// Python's `urllib.parse.quote(text)` (safe `/`, unreserved `A-Za-z0-9_.-~`).
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"_.-~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Python's `urllib.parse.unquote(text)`: `%XX` sequences decoded, invalid ones kept, `+` kept,
/// invalid UTF-8 replaced.
pub(crate) fn unquote(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            let high = (bytes[index + 1] as char).to_digit(16);
            let low = (bytes[index + 2] as char).to_digit(16);
            if let (Some(high), Some(low)) = (high, low) {
                out.push((high * 16 + low) as u8);
                index += 3;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE2_CURSOR: &str = "PmR0OjIwMjYtMTEtMjIgMDM6Mjc6NDguNTA3NTM3KzAwOjAwfnM6cmVwcmVzZW50YXRpb246Z2xvYmV4LXJlc2VhcmNoOmludGVydmlldy0wMTpyZXNlYXJjaGVyLWNhcm9s";
    const PAGE3_CURSOR: &str = "PmR0OjIwMjYtMTEtMjIgMDM6Mjc6NDguNTA3NTM3KzAwOjAwfnM6c3VtbWFyeTpnbG9iZXgtcmVzZWFyY2g6aW50ZXJ2aWV3LTAxOk5vbmU6Tm9uZQ%3D%3D";

    #[test]
    fn recorded_cursors_round_trip_byte_for_byte() {
        for cursor in [PAGE2_CURSOR, PAGE3_CURSOR] {
            let bookmark = decode_cursor(cursor).expect("valid").expect("present");
            assert_eq!(
                encode_bookmark(bookmark.backwards, bookmark.place.as_ref()),
                cursor
            );
        }
    }

    #[test]
    fn recorded_cursor_decodes_to_its_keyset_place() {
        let bookmark = decode_cursor(PAGE3_CURSOR)
            .expect("valid")
            .expect("present");
        let place = bookmark.place.expect("place");
        assert_eq!(
            python_datetime_str(place.oldest_micros),
            "2026-11-22 03:27:48.507537+00:00"
        );
        assert_eq!(place.key, "summary:globex-research:interview-01:None:None");
        assert!(!bookmark.backwards);
    }

    #[test]
    fn double_encoded_cursor_is_accepted() {
        let double = PAGE3_CURSOR.replace('%', "%25");
        assert_eq!(
            decode_cursor(&unquote(&double)).expect("valid"),
            decode_cursor(PAGE3_CURSOR).expect("valid")
        );
    }

    #[test]
    fn start_markers_encode_as_recorded() {
        assert_eq!(encode_bookmark(false, None), "Pg%3D%3D");
        assert_eq!(encode_bookmark(true, None), "PA%3D%3D");
    }

    #[test]
    fn bad_cursors_give_the_recorded_errors() {
        assert_eq!(
            decode_cursor("not-a-cursor"),
            Err(CursorError::InvalidValue)
        );
        assert_eq!(
            decode_cursor("Zm9vYmFy").map_err(|e| e.to_string()),
            Err("Malformed bookmark string: doesn't start with a direction marker".to_owned())
        );
        let foo = quote(&base64_encode(b">foo"));
        assert_eq!(
            decode_cursor(&foo).map_err(|e| e.to_string()),
            Err("unrecognized value foo".to_owned())
        );
    }

    #[test]
    fn whole_second_timestamps_omit_the_fraction_like_python() {
        assert_eq!(iso_z(1_000_000), "1970-01-01T00:00:01Z");
        assert_eq!(iso_z(1_000_001), "1970-01-01T00:00:01.000001Z");
    }
}
