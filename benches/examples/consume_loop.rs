//! The single-thread hot path alone: `ProjectHandle::consume(1)` in a loop on one project whose
//! Active and Reserved keys are the maximum limit, timed over N calls (default 200 million).
//! Built for comparing two builds of the engine back to back on a noisy machine, where
//! `compare`'s interleaved rounds take longer:
//!
//! ```sh
//! cargo build --release -p tollgate-bench --example consume_loop
//! target/release/examples/consume_loop 50000000
//! ```

use tollgate_bench::fixture::{self, Keys};

fn main() {
    let calls: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("N: a number of calls"))
        .unwrap_or(200_000_000);
    let dir = fixture::disk_dir().expect("a temporary state directory");
    let engine = fixture::open(dir.path(), 16).expect("open the state");
    fixture::populate(&engine, 1, Keys::ActiveAndReserve).expect("one project with two keys");
    let handles = fixture::handles(&engine, 1).expect("its handle");
    let project = &handles[0];
    let started = std::time::Instant::now();
    for _ in 0..calls {
        assert!(project.consume(1).is_ok(), "consume refused");
    }
    let elapsed = started.elapsed();
    println!("{:.2} ns/call", elapsed.as_nanos() as f64 / calls as f64);
}
