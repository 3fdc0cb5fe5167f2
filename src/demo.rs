//! `honcho_exporter demo` (being wired to the simulator).
use crate::config::DemoOptions;

/// Runs the demo.
pub async fn run(_options: DemoOptions) -> anyhow::Result<()> {
    anyhow::bail!("demo: the simulator is not wired yet")
}
