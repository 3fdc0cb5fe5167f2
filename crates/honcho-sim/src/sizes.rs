//! Per-workspace sizes: groups of workspaces with their own work-unit count and the Honcho
//! backlog (queue rows) behind them, so a generated queue can mix a few large workspaces with
//! many small ones (issue 9's measured mix: one workspace of 50 k units / 150 k rows among
//! small ones) instead of giving every workspace [`crate::Scale::work_units_per_workspace`].
//!
//! Owns only the size vocabulary, its `COUNTxUNITS[:ROWS]` text form and the cost model it
//! implies; building the workspaces stays in `dynamics`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::cost::CostModel;

/// `workspaces` workspaces of `work_units` work units each, backed by `rows` queue rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeGroup {
    /// How many workspaces have this size.
    pub workspaces: u32,
    /// Work units of each at start.
    pub work_units: u32,
    /// Queue rows of each for the cost model (`None`: the cost model's default).
    pub rows: Option<u64>,
}

impl SizeGroup {
    /// `workspaces` workspaces of `work_units` units and `rows` rows.
    pub fn new(workspaces: u32, work_units: u32, rows: u64) -> Self {
        SizeGroup {
            workspaces,
            work_units,
            rows: Some(rows),
        }
    }
}

/// Why a size text is not `COUNTxUNITS[:ROWS]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("size {text:?} is not COUNTxUNITS[:ROWS] (e.g. 1x50000:150000): {problem}")]
pub struct SizeError {
    text: String,
    problem: &'static str,
}

impl FromStr for SizeGroup {
    type Err = SizeError;

    fn from_str(text: &str) -> Result<Self, SizeError> {
        let fail = |problem| SizeError {
            text: text.to_owned(),
            problem,
        };
        let (shape, rows) = match text.split_once(':') {
            Some((shape, rows)) => (
                shape,
                Some(
                    rows.trim()
                        .parse::<u64>()
                        .map_err(|_| fail("ROWS is not a whole number"))?,
                ),
            ),
            None => (text, None),
        };
        let (count, units) = shape
            .split_once(['x', 'X'])
            .ok_or_else(|| fail("no 'x' between COUNT and UNITS"))?;
        let workspaces = count
            .trim()
            .parse::<u32>()
            .map_err(|_| fail("COUNT is not a whole number"))?;
        if workspaces == 0 {
            return Err(fail("COUNT is 0"));
        }
        let work_units = units
            .trim()
            .parse::<u32>()
            .map_err(|_| fail("UNITS is not a whole number"))?;
        Ok(SizeGroup {
            workspaces,
            work_units,
            rows,
        })
    }
}

impl fmt::Display for SizeGroup {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}x{}", self.workspaces, self.work_units)?;
        match self.rows {
            Some(rows) => write!(formatter, ":{rows}"),
            None => Ok(()),
        }
    }
}

/// The name of the generated workspace at `index` (creation order).
pub fn workspace_name(index: usize) -> String {
    format!("workspace-{:05}", index + 1)
}

/// The group of the workspace at `index`: the groups cover the first workspaces in order.
pub(crate) fn group_of(sizes: &[SizeGroup], index: usize) -> Option<&SizeGroup> {
    let mut first = 0usize;
    for group in sizes {
        let end = first + group.workspaces as usize;
        if index < end {
            return Some(group);
        }
        first = end;
    }
    None
}

/// Workspaces the groups cover.
pub fn covered(sizes: &[SizeGroup]) -> u64 {
    sizes.iter().map(|group| u64::from(group.workspaces)).sum()
}

/// The cost model at `speed` where the grouped workspaces with rows have theirs and every
/// other workspace `default_rows`.
pub fn cost_model(sizes: &[SizeGroup], speed: f64, default_rows: u64) -> CostModel {
    let mut model = CostModel::new(speed, default_rows);
    let mut index = 0usize;
    for group in sizes {
        for _ in 0..group.workspaces {
            if let Some(rows) = group.rows {
                model = model.with_rows(workspace_name(index), rows);
            }
            index += 1;
        }
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_count_units_rows() {
        let group: SizeGroup = "1x50000:150000".parse().expect("valid");
        assert_eq!(group, SizeGroup::new(1, 50_000, 150_000));
        assert_eq!(group.to_string(), "1x50000:150000");
        let plain: SizeGroup = "48x20".parse().expect("valid");
        assert_eq!(plain.rows, None);
        assert_eq!(plain.to_string(), "48x20");
        for bad in ["", "1", "0x5", "ax5", "1x-5", "1x5:many", "1x5:"] {
            let error = bad.parse::<SizeGroup>().expect_err(bad);
            assert!(error.to_string().contains("COUNTxUNITS"), "{error}");
        }
    }

    #[test]
    fn groups_cover_the_first_workspaces_and_give_the_cost_model_their_rows() {
        let sizes = [
            SizeGroup::new(1, 50_000, 150_000),
            SizeGroup::new(2, 10_000, 30_000),
        ];
        assert_eq!(group_of(&sizes, 0).map(|g| g.work_units), Some(50_000));
        assert_eq!(group_of(&sizes, 2).map(|g| g.work_units), Some(10_000));
        assert_eq!(group_of(&sizes, 3), None);
        assert_eq!(covered(&sizes), 3);
        let model = cost_model(&sizes, 1.0, 300);
        assert_eq!(model.rows.get("workspace-00001"), Some(&150_000));
        assert_eq!(model.rows.get("workspace-00003"), Some(&30_000));
        assert_eq!(model.rows.get("workspace-00004"), None);
        assert_eq!(model.default_rows, 300);
    }
}
