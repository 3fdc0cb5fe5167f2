//! The simulator's own tests: its contract against the recorded Honcho responses (`contract`)
//! and its fault knobs (`faults`), over real loopback HTTP.

mod contract;
mod faults;
