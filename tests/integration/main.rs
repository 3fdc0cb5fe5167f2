//! The one integration test binary (ripgrep style): one module per area, fixtures in
//! `tests/data/`. Modules share helpers through `util` and `validators`.

mod alerts_e2e;
mod ceiling;
mod config_errors;
mod daemon;
mod dashboard_lint;
mod dashboards;
mod deploy;
mod deploy_files;
mod end_to_end;
mod exposition;
mod faults;
mod fixtures_replay;
mod fuzz_corpus;
mod generation_detection;
mod golden;
mod layout;
mod postgres;
mod prometheusrule;
mod rounds;
mod scheduling;
mod settings_table;
mod status_page;
mod util;
mod validators;
mod verdicts;
mod web_config;
