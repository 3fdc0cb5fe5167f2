//! `http_server_config`: `http2` and the response headers exporter-toolkit lets the file set.

use hyper::header::{HeaderName, HeaderValue};

use crate::yaml::Node;

use super::WebConfigError;
use super::loader::Loader;

/// Headers exporter-toolkit lets the file set (compared case-insensitively).
const CONFIGURABLE_HEADERS: [&str; 5] = [
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
];

pub(super) type HeaderList = Vec<(HeaderName, HeaderValue)>;

pub(super) fn load_http_server_config(
    loader: &Loader<'_>,
    node: Node,
) -> Result<(bool, HeaderList), WebConfigError> {
    let mut http2 = true;
    let mut headers = Vec::new();
    for (name, value) in loader.mapping("http_server_config", node)? {
        let key = format!("http_server_config.{name}");
        match name.as_str() {
            "http2" => http2 = loader.boolean(&key, value)?.unwrap_or(true),
            "headers" => headers = load_headers(loader, value)?,
            _ => return Err(loader.unknown(&key, &["http2", "headers"])),
        }
    }
    Ok((http2, headers))
}

fn load_headers(loader: &Loader<'_>, node: Node) -> Result<HeaderList, WebConfigError> {
    let mut headers = Vec::new();
    for (name, value) in loader.mapping("http_server_config.headers", node)? {
        let key = format!("http_server_config.headers.{name}");
        if !CONFIGURABLE_HEADERS
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(&name))
        {
            return Err(loader.invalid(
                &key,
                format!(
                    "this header cannot be configured; allowed: {}",
                    CONFIGURABLE_HEADERS.join(", ")
                ),
            ));
        }
        let Some(value) = loader
            .scalar(&key, value)?
            .filter(|value| !value.is_empty())
        else {
            continue; // blank = unset, as in exporter-toolkit
        };
        let lower_name = name.to_ascii_lowercase();
        let allowed_values: &[&str] = match lower_name.as_str() {
            "x-frame-options" => &["deny", "sameorigin"],
            "x-content-type-options" => &["nosniff"],
            _ => &[],
        };
        if !allowed_values.is_empty()
            && !allowed_values
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(&value))
        {
            return Err(loader.invalid(
                &key,
                format!(
                    "invalid value {value:?}; expected one of {}",
                    allowed_values.join(", ")
                ),
            ));
        }
        let header_name = HeaderName::from_bytes(lower_name.as_bytes())
            .expect("the allowed header names are valid");
        let header_value = HeaderValue::from_str(&value).map_err(|_| {
            loader.invalid(
                &key,
                "the value contains characters not allowed in a header",
            )
        })?;
        headers.push((header_name, header_value));
    }
    Ok(headers)
}
