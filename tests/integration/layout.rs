//! The house's shape, checked: the data path reads in one direction (`src/lib.rs` Layout), so
//! the two sources import nothing from each other, `config` and `families` import no source,
//! no two files import each other, and every room stays small enough to read (no file over
//! 600 lines outside its `#[cfg(test)]` module except the settings table, no function over 80
//! lines). Reads `src/` as text; a failure names the file and what to move.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 600;
const MAX_FUNCTION_LINES: usize = 80;
/// The settings table is one declaration per setting, by design.
const EXEMPT_FROM_FILE_LIMIT: &[&str] = &["config::table"];

/// One source file: its module path (`source::api::state`) and its text before `#[cfg(test)]`.
struct SourceFile {
    module: String,
    path: PathBuf,
    code: String,
}

fn source_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path.strip_prefix(&root).expect("under src/");
                let mut parts: Vec<String> = relative
                    .with_extension("")
                    .iter()
                    .map(|part| part.to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|last| last == "mod") {
                    parts.pop();
                }
                let module = match parts.as_slice() {
                    [only] if only == "lib" || only == "main" => String::new(),
                    _ => parts.join("::"),
                };
                let text = std::fs::read_to_string(&path).expect("a readable source file");
                let code = match text.find("\n#[cfg(test)]") {
                    Some(end) => text[..end].to_string(),
                    None => text,
                };
                files.push(SourceFile { module, path, code });
            }
        }
    }
    files.sort_by(|a, b| a.module.cmp(&b.module));
    files
}

/// The modules a file's code names through `crate::…`, `super::…` or `honcho_exporter::…`
/// paths, resolved to the longest prefix that is a file of `src/`.
fn imports(file: &SourceFile, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let code = strip_comments(&file.code);
    for (index, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let before = code[..index].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let path: String = code[index..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let mut parts: Vec<&str> = path.split("::").filter(|part| !part.is_empty()).collect();
        let mut base: Vec<String> = Vec::new();
        if parts.first() == Some(&"crate") {
            parts.remove(0);
        } else {
            base = file
                .module
                .split("::")
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            while parts.first() == Some(&"super") {
                parts.remove(0);
                base.pop();
            }
        }
        let mut full: Vec<String> = base;
        full.extend(parts.iter().map(|part| part.to_string()));
        while !full.is_empty() {
            let candidate = full.join("::");
            if modules.contains(&candidate) {
                if candidate != file.module {
                    found.insert(candidate);
                }
                break;
            }
            full.pop();
        }
    }
    found
}

/// The code without `//` comments (doc links are not imports).
fn strip_comments(code: &str) -> String {
    code.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = source_files();
    let modules: BTreeSet<String> = files.iter().map(|file| file.module.clone()).collect();
    files
        .iter()
        .map(|file| (file.module.clone(), imports(file, &modules)))
        .collect()
}

fn under(module: &str, room: &str) -> bool {
    module == room || module.starts_with(&format!("{room}::"))
}

#[test]
fn the_two_sources_import_nothing_from_each_other() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (module, imported) in &graph {
        for (from, to) in [
            ("source::api", "source::postgres"),
            ("source::postgres", "source::api"),
        ] {
            if under(module, from) {
                wrong.extend(
                    imported
                        .iter()
                        .filter(|target| under(target, to))
                        .map(|target| format!("{module} imports {target}")),
                );
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "sources are siblings; move shared code to src/source/: {wrong:#?}"
    );
}

#[test]
fn config_families_snapshot_and_honcho_import_no_source() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (module, imported) in &graph {
        if [
            "config",
            "families",
            "snapshot",
            "honcho",
            "exposition",
            "server",
            "publication",
        ]
        .iter()
        .any(|room| under(module, room))
        {
            wrong.extend(
                imported
                    .iter()
                    .filter(|target| under(target, "source"))
                    .map(|target| format!("{module} imports {target}")),
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "the data path reads in one direction: {wrong:#?}"
    );
}

#[test]
fn no_two_files_import_each_other() {
    let graph = graph();
    let mut circles = Vec::new();
    for (module, imported) in &graph {
        for target in imported {
            // A directory module (`mod.rs`) re-exporting its own children is not a circle.
            if under(target, module) && !target.is_empty() && !module.is_empty() {
                continue;
            }
            if module < target
                && graph
                    .get(target)
                    .is_some_and(|back| back.contains(module) && !under(module, target))
            {
                circles.push(format!("{module} <-> {target}"));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "files importing each other: {circles:#?}"
    );
}

#[test]
fn every_room_is_small_enough_to_read() {
    let mut too_long = Vec::new();
    for file in source_files() {
        let lines = file.code.lines().count();
        if lines > MAX_FILE_LINES && !EXEMPT_FROM_FILE_LIMIT.contains(&file.module.as_str()) {
            too_long.push(format!(
                "{}: {lines} lines (outside its tests)",
                file.path.display()
            ));
        }
        for (name, length) in functions(&file.code) {
            if length > MAX_FUNCTION_LINES {
                too_long.push(format!(
                    "{}: fn {name} is {length} lines",
                    file.path.display()
                ));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "files over {MAX_FILE_LINES} lines or functions over {MAX_FUNCTION_LINES}: {too_long:#?}"
    );
}

/// Each `fn` with a body, and its length from the signature to the closing brace at the same
/// indentation.
fn functions(code: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let signature = [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "async ",
            "const ",
            "unsafe ",
        ]
        .iter()
        .fold(trimmed, |rest, prefix| {
            rest.strip_prefix(prefix).unwrap_or(rest)
        });
        let signature = signature.strip_prefix("async ").unwrap_or(signature);
        let Some(rest) = signature.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // A declaration without a body (a trait's) ends with `;` before any `{`.
        let body_opens = lines[start..]
            .iter()
            .find(|candidate| candidate.contains('{') || candidate.trim_end().ends_with(';'))
            .is_some_and(|candidate| candidate.contains('{'));
        if !body_opens || line.trim_end().ends_with('}') {
            continue;
        }
        let closing = format!("{}}}", " ".repeat(indent));
        if let Some(end) = lines[start..]
            .iter()
            .position(|candidate| candidate.trim_end() == closing)
        {
            found.push((name, end + 1));
        }
    }
    found
}

#[test]
fn the_function_measure_counts_from_signature_to_closing_brace() {
    let code = "fn short() {\n    one();\n}\n\n    pub async fn nested(\n        a: u8,\n    ) {\n        two();\n    }\n";
    assert_eq!(
        functions(code),
        [("short".to_string(), 3), ("nested".to_string(), 5)]
    );
}
