//! Decoding Honcho's bodies: a JSON answer into its typed response (one UTF-8 check, then
//! serde), and the `detail` text of an error answer. Pure: bytes in, values out, no I/O.

use super::UpstreamError;

/// Parses a JSON body. The body is checked as UTF-8 once, in one pass, then parsed as `&str`:
/// `serde_json::from_slice` would check every string separately (most of a work-units page is
/// strings, and per-string checks cost ~10 % of a walk's CPU). The check is simdutf8's (SIMD,
/// about a quarter of the instructions of the standard library's); a body it refuses is checked
/// again by the standard library, whose error says where the invalid byte is.
/// Public for the benchmarks, which measure the walk's real decoding path.
pub fn decode<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, UpstreamError> {
    let text = match simdutf8::basic::from_utf8(body) {
        Ok(text) => text,
        Err(_) => std::str::from_utf8(body)
            .map_err(|error| UpstreamError::Decode(format!("the body is not UTF-8: {error}")))?,
    };
    serde_json::from_str(text).map_err(|error| UpstreamError::Decode(error.to_string()))
}

/// Honcho's `{"detail": "..."}` text (strings only; FastAPI's validation lists are summarised),
/// else the start of the body; at most 200 characters.
pub(super) fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Detail {
        detail: serde_json::Value,
    }
    let text = match serde_json::from_slice::<Detail>(body) {
        Ok(Detail {
            detail: serde_json::Value::String(detail),
        }) => detail,
        Ok(Detail { detail }) => detail.to_string(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::honcho::types::{self, WorkUnitsPage};

    #[test]
    fn decode_errors_are_the_standard_librarys_and_serde_jsons() {
        let invalid = b"{\"items\":[],\"total\":1,\"next_page\":\"\xff\"}";
        let error = decode::<WorkUnitsPage<'_>>(invalid).expect_err("not UTF-8");
        assert_eq!(
            error.to_string(),
            "cannot decode Honcho's response: the body is not UTF-8: \
             invalid utf-8 sequence of 1 bytes from index 35"
        );
        // The page's own row reader fails like serde's derived `Vec` would.
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Derived<'a> {
            #[serde(borrow)]
            items: Vec<types::WorkUnitRow<'a>>,
            total: u64,
        }
        for body in [
            r#"{"items":{},"total":1}"#,
            r#"{"items":"x","total":1}"#,
            r#"{"items":[1],"total":1}"#,
            r#"{"items":[{"task_type":"dream"}],"total":1}"#,
            r#"{"items":[],"total":1"#,
        ] {
            let ours = decode::<WorkUnitsPage<'_>>(body.as_bytes()).expect_err(body);
            let derived = serde_json::from_str::<Derived<'_>>(body).expect_err(body);
            assert_eq!(
                ours.to_string(),
                format!("cannot decode Honcho's response: {derived}"),
                "{body}"
            );
        }
    }

    #[test]
    fn error_detail_prefers_honchos_detail_string() {
        assert_eq!(error_detail(br#"{"detail":"Invalid JWT"}"#), "Invalid JWT");
        assert!(
            error_detail(br#"{"detail":[{"type":"less_than_equal"}]}"#).contains("less_than_equal")
        );
        assert_eq!(
            error_detail(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }
}
