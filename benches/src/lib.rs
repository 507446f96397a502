//! Benchmarks of Tollgate against what a vendor would otherwise use, measured side by side in
//! one run.
//!
//! - `cargo bench -p tollgate-bench` runs the criterion micro-benchmarks of the Rust API
//!   (`benches/consume.rs`).
//! - `cargo run --release -p tollgate-bench --bin compare` runs the comparison: every contestant
//!   on the same workload (admit and charge 1 byte against a project's limit) at 1, 2 and N
//!   threads, shared and per-thread projects, plus the switch-latency, durability and scaling
//!   measurements; it prints tables and writes `target/bench/compare.json`.
//!   `scripts/bench.sh` is the one command that builds everything first.
//!
//! Every figure is printed beside a baseline measured in the same run, because ratios survive
//! a noisy machine and absolute numbers do not.
//!
//! Modules: [`harness`] (the timed-batch loop), [`contestants`] (in-process contestants),
//! [`external`] (the C program and the Python script), [`switch`], [`durability`],
//! [`scaling`], [`targets`] (the performance targets against the measurements), [`report`]
//! (tables and JSON), [`fixture`] (state directories).
#![deny(missing_docs)]

pub mod contestants;
pub mod durability;
pub mod external;
pub mod fixture;
pub mod harness;
pub mod report;
pub mod scaling;
pub mod switch;
pub mod targets;
