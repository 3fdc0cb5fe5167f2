//! Prometheus-style durations (`15s`, `1m30s`, `500ms`, `2h`): parsing with an error that says
//! what is accepted, and formatting back into the same style for error messages.
//!
//! Pure string handling; no I/O.

use std::time::Duration;

/// Units accepted after a number, longest first so `ms` is not read as `m` + garbage.
const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Parses a duration such as `15s`, `1m30s`, `500ms` or `1h`: one or more `<integer><unit>`
/// parts, units `ms`, `s`, `m`, `h`, `d`. The error is a problem description for the user.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?}: expected numbers with units (ms, s, m, h, d), \
             e.g. 15s, 1m30s or 500ms"
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_millis: u64 = 0;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|character: char| !character.is_ascii_digit())
            .ok_or_else(invalid)?;
        if digits_end == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits_end].parse().map_err(|_| invalid())?;
        let after_number = &rest[digits_end..];
        let (unit, millis_per_unit) = UNITS
            .iter()
            .find(|(unit, _)| {
                after_number.starts_with(unit)
                    && !after_number[unit.len()..].starts_with(|c: char| c.is_ascii_alphabetic())
            })
            .ok_or_else(invalid)?;
        let part = number.checked_mul(*millis_per_unit).ok_or_else(invalid)?;
        total_millis = total_millis.checked_add(part).ok_or_else(invalid)?;
        rest = &after_number[unit.len()..];
    }
    Ok(Duration::from_millis(total_millis))
}

/// Formats a duration in the style [`parse_duration`] reads (`1m30s`, `500ms`, `0s`), for
/// messages that show the user their own values.
pub(crate) fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_string();
    }
    let mut formatted = String::new();
    for (unit, millis_per_unit) in UNITS.iter().rev() {
        let millis_per_unit = u128::from(*millis_per_unit);
        let count = millis / millis_per_unit;
        if count > 0 {
            formatted.push_str(&format!("{count}{unit}"));
            millis %= millis_per_unit;
        }
    }
    formatted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_missing_or_unknown_units() {
        for text in ["", "15", "15x", "s", "1.5s", "15sec", "-1s", "1m 30"] {
            let error = parse_duration(text).expect_err(text);
            assert!(error.starts_with("invalid duration"), "{text}: {error}");
        }
    }

    #[test]
    fn formats_back_into_the_parsed_style() {
        for text in ["15s", "1m30s", "500ms", "2h", "1d1h1m1s1ms", "0s"] {
            let duration = parse_duration(text).expect(text);
            assert_eq!(format_duration(duration), text);
        }
    }
}
