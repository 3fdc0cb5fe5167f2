//! Fuzz target `render`: feeds libFuzzer's bytes to [`checks::check_render`], which panics on any
//! broken invariant. The same function replays the committed seeds in `cargo test`
//! (`tests/integration/fuzz_corpus.rs`).
#![no_main]

// Each target uses one of the shared check functions.
#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::check_render(data);
});
