//! Replays the fuzz corpus as ordinary tests, so `cargo test` on stable (no cargo-fuzz, no
//! nightly) guards the same invariants the fuzz targets check: every committed seed of every
//! target in `fuzz/seeds/<target>/` goes through that target's check in `fuzz/checks.rs`.
//!
//! Also pins the corpus to the real fixtures: every 200 response of the three decoded
//! endpoints in `tests/data/honcho/index.json` must decode (a check that silently skips what
//! it cannot decode would prove nothing) and be seeded byte for byte, and every error response
//! must be rejected by every decoder (an error body must never pass for an empty page).
//!
//! Inputs that crashed the library live in `fuzz/artifacts-found/<target>/` (see its README);
//! `every_crash_found_so_far_no_longer_panics` replays them.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

#[path = "../../fuzz/checks.rs"]
mod checks;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn seed_dir(target: &str) -> PathBuf {
    repo_root().join("fuzz/seeds").join(target)
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn check_of(target: &str) -> checks::Check {
    checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .unwrap_or_else(|| panic!("no check for target {target}"))
}

/// One recorded response of `tests/data/honcho/index.json`.
struct Fixture {
    file: String,
    status: u64,
    url_path: String,
}

fn fixtures() -> Vec<Fixture> {
    let path = repo_root().join("tests/data/honcho/index.json");
    let text = fs::read_to_string(&path).expect("tests/data/honcho/index.json is readable");
    let index: serde_json::Value = serde_json::from_str(&text).expect("index.json is JSON");
    index
        .as_array()
        .expect("index.json is a list")
        .iter()
        .map(|entry| Fixture {
            file: entry["file"].as_str().expect("file").to_string(),
            status: entry["status"].as_u64().expect("status"),
            url_path: entry["request"]["url_path"]
                .as_str()
                .expect("request.url_path")
                .to_string(),
        })
        .collect()
}

/// The decoder target of an endpoint's successful responses, `None` for endpoints the exporter
/// does not decode (health, metrics, sessions/list, …).
fn decoder_target(url_path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = url_path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v2" | "v3", "workspaces", "list"] => Some("workspace_page"),
        ["v2" | "v3", "workspaces", _, "queue" | "deriver", "status"] => Some("status"),
        ["v3", "workspaces", _, "queue", "work-units"] => Some("work_units_page"),
        _ => None,
    }
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

#[test]
fn every_fuzz_target_has_a_shared_check_and_committed_seeds() {
    let target_files: BTreeSet<String> = files_in(&repo_root().join("fuzz/fuzz_targets"))
        .iter()
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_string()))
        .collect();
    let checked: BTreeSet<String> = checks::TARGETS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(
        target_files, checked,
        "fuzz_targets/*.rs vs checks::TARGETS"
    );
    let manifest = fs::read_to_string(repo_root().join("fuzz/Cargo.toml"))
        .expect("fuzz/Cargo.toml is readable");
    for target in &checked {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml has no [[bin]] {target}"
        );
        assert!(
            !files_in(&seed_dir(target)).is_empty(),
            "fuzz/seeds/{target}/ is empty"
        );
    }
}

/// Seeds are bodies the decoder accepts (the fuzzer mutates them into everything else), so a
/// seed that fails to decode would check nothing: each must be accepted, then pass.
#[test]
fn every_committed_seed_is_accepted_and_passes_its_targets_check() {
    for (target, check) in checks::TARGETS {
        for path in files_in(&seed_dir(target)) {
            assert!(
                check(&read(&path)),
                "seed {} is rejected by the {target} decoder",
                path.display()
            );
        }
    }
}

#[test]
fn every_successful_fixture_of_a_decoded_endpoint_decodes_and_is_seeded() {
    let mut per_target = std::collections::BTreeMap::<&str, usize>::new();
    for fixture in fixtures().iter().filter(|fixture| fixture.status == 200) {
        let Some(target) = decoder_target(&fixture.url_path) else {
            continue;
        };
        let body = read(&repo_root().join("tests/data/honcho").join(&fixture.file));
        assert!(
            check_of(target)(&body),
            "{} ({}) is not accepted by the {target} decoder",
            fixture.file,
            fixture.url_path
        );
        let seed = seed_dir(target).join(format!("fixture__{}", fixture.file.replace('/', "__")));
        assert!(
            seed.is_file() && read(&seed) == body,
            "{} is missing from or differs in the {target} corpus: cp tests/data/honcho/{} {}",
            fixture.file,
            fixture.file,
            seed.display()
        );
        *per_target.entry(target).or_default() += 1;
    }
    for target in ["status", "work_units_page", "workspace_page"] {
        assert!(
            per_target.get(target).copied().unwrap_or(0) > 0,
            "no fixture seeds {target}"
        );
    }
}

#[test]
fn every_error_response_fixture_is_rejected_by_every_decoder() {
    let errors: Vec<Fixture> = fixtures()
        .into_iter()
        .filter(|fixture| fixture.status != 200)
        .collect();
    assert!(!errors.is_empty(), "index.json lists no error responses");
    for fixture in &errors {
        let body = read(&repo_root().join("tests/data/honcho").join(&fixture.file));
        for target in ["status", "work_units_page", "workspace_page"] {
            assert!(
                !check_of(target)(&body),
                "the {target} decoder accepts the {} error body {}",
                fixture.status,
                fixture.file
            );
        }
    }
}

/// Every input that ever crashed the library stays a regression test once `src/` is fixed.
#[test]
fn every_crash_found_so_far_no_longer_panics() {
    let found = repo_root().join("fuzz/artifacts-found");
    let mut replayed = 0;
    for (target, check) in checks::TARGETS {
        let dir = found.join(target);
        if !dir.is_dir() {
            continue;
        }
        for path in files_in(&dir) {
            let input = read(&path);
            let outcome = std::panic::catch_unwind(|| check(&input));
            assert!(outcome.is_ok(), "{} still panics", path.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "fuzz/artifacts-found/ holds no inputs");
}
