//! The one integration test binary (ripgrep style): one module per area, fixtures in
//! `tests/data/`. Modules share helpers through `util` and `validators`.

mod alerts_e2e;
mod config_errors;
mod dashboards;
mod deploy;
mod end_to_end;
mod exposition;
mod faults;
mod fixtures_replay;
mod fuzz_corpus;
mod generation_detection;
mod golden;
mod process;
mod scheduling;
mod simulator_contract;
mod simulator_faults;
mod util;
mod validators;
mod web_config;
