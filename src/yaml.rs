//! A thin layer over the `config` crate's YAML reader: turns a document into a tree of
//! mappings, lists and scalar strings, so that the config loader and the web-config loader can
//! walk it key by key and name the exact path of every unknown or malformed key.
//!
//! Pure text → tree; no file I/O (callers read files so their errors can name the path).

use std::collections::BTreeMap;

use config::{FileFormat, Source, Value, ValueKind};

/// One node of a YAML document, with scalars kept as the text the user wrote (numbers and
/// booleans are rendered back to text) so every value goes through one set of parsers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// `~`, `null` or a key with no value.
    Null,
    /// A string, number or boolean.
    Scalar(String),
    /// A sequence.
    List(Vec<Node>),
    /// A mapping, sorted by key so errors are reported in a stable order.
    Map(BTreeMap<String, Node>),
}

impl Node {
    /// A short noun for messages such as "expected a mapping, got a list".
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Node::Null => "nothing",
            Node::Scalar(_) => "a single value",
            Node::List(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }
}

/// Parses a YAML document whose top level must be a mapping (an empty document is an empty
/// mapping). The error is the YAML parser's message, with line and column when it gives them.
pub(crate) fn parse_mapping(text: &str) -> Result<BTreeMap<String, Node>, String> {
    let root = config::File::from_str(text, FileFormat::Yaml)
        .collect()
        .map_err(|error| error.to_string())?;
    Ok(root
        .into_iter()
        .map(|(key, value)| (key, node_from_value(value)))
        .collect())
}

fn node_from_value(value: Value) -> Node {
    match value.kind {
        ValueKind::Nil => Node::Null,
        ValueKind::Boolean(value) => Node::Scalar(value.to_string()),
        ValueKind::I64(value) => Node::Scalar(value.to_string()),
        ValueKind::I128(value) => Node::Scalar(value.to_string()),
        ValueKind::U64(value) => Node::Scalar(value.to_string()),
        ValueKind::U128(value) => Node::Scalar(value.to_string()),
        ValueKind::Float(value) => Node::Scalar(value.to_string()),
        ValueKind::String(value) => Node::Scalar(value),
        ValueKind::Array(values) => Node::List(values.into_iter().map(node_from_value).collect()),
        ValueKind::Table(table) => Node::Map(
            table
                .into_iter()
                .map(|(key, value)| (key, node_from_value(value)))
                .collect(),
        ),
    }
}

/// The known key closest to `unknown` (for "did you mean …?"), if one is close enough to be a
/// plausible typo.
pub(crate) fn closest_key<'a>(
    unknown: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    known
        .into_iter()
        .map(|candidate| (edit_distance(unknown, candidate), candidate))
        .filter(|(distance, candidate)| {
            let is_prefix = unknown.len().min(candidate.len()) >= 3
                && (candidate.starts_with(unknown) || unknown.starts_with(candidate));
            is_prefix || *distance <= 2.max(candidate.len() / 4)
        })
        .min()
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters.
fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (row, left_char) in left.chars().enumerate() {
        let mut current = vec![row + 1; right.len() + 1];
        for (column, right_char) in right.iter().enumerate() {
            let substitution = previous[column] + usize::from(left_char != *right_char);
            current[column + 1] = substitution
                .min(previous[column + 1] + 1)
                .min(current[column] + 1);
        }
        previous = current;
    }
    previous[right.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_keep_the_text_the_user_wrote() {
        let root = parse_mapping("a: 4\nb: true\nc: 15s\nd: ~\ne: [x, 2]\n").expect("valid YAML");
        assert_eq!(root["a"], Node::Scalar("4".into()));
        assert_eq!(root["b"], Node::Scalar("true".into()));
        assert_eq!(root["c"], Node::Scalar("15s".into()));
        assert_eq!(root["d"], Node::Null);
        assert_eq!(
            root["e"],
            Node::List(vec![Node::Scalar("x".into()), Node::Scalar("2".into())])
        );
    }

    #[test]
    fn empty_document_is_an_empty_mapping() {
        assert!(parse_mapping("").expect("empty is valid").is_empty());
    }

    #[test]
    fn top_level_list_is_rejected() {
        assert!(parse_mapping("- a\n- b\n").is_err());
    }

    #[test]
    fn suggests_near_keys_only() {
        let known = ["interval", "timeout", "concurrency"];
        assert_eq!(closest_key("intervall", known), Some("interval"));
        assert_eq!(closest_key("polling", ["poll", "log"]), Some("poll"));
        assert_eq!(closest_key("colour", known), None);
    }
}
