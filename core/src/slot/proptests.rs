//! Property tests: any sequence of grants charges exactly what was granted.

use super::testing::{accounts_field, TestAccounts};
use super::*;
use crate::clock::NEVER;
use proptest::prelude::*;

#[derive(Default)]
struct Count {
    switches: std::sync::atomic::AtomicUsize,
    accounts: TestAccounts,
}

impl PairEvents for Count {
    fn emit(&self, event: PairEvent) {
        if matches!(event, PairEvent::Switched { .. }) {
            self.switches
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

accounts_field!(Count);

proptest! {
    /// Any sequence of grants charges exactly what was granted, never beyond the limits, and
    /// refuses only when the request does not fit.
    #[test]
    fn accounting_is_exact(
        active in 1u64..1_000,
        reserve in 0u64..1_000,
        requests in proptest::collection::vec((0u64..400, any::<bool>()), 1..60),
    ) {
        let record = PairRecord::new();
        let events = Count::default();
        let rk = (reserve > 0).then_some(LiveKey { key: 2, account: 2, limit: reserve, used: 0, expiry: NEVER, grace_days: 0 });
        let next = NextGen {
            active: Some(LiveKey { key: 1, account: 1, limit: active, used: 0, expiry: NEVER, grace_days: 0 }),
            reserve: rk, retired: None, switches: 0,
        };
        events.accounts.open_for(&next);
        record.publish::<()>(&events, |_| Ok(next)).unwrap();
        let mut granted = 0u64;
        for (want, partial) in requests {
            let mode = if partial { Mode::Partial } else { Mode::AllOrNothing };
            let left = active + reserve - granted;
            match record.grant(want, mode, 0, &events) {
                Ok(g) => {
                    prop_assert!(g == want || (partial && g == left));
                    granted += g;
                }
                Err(Refusal::Exhausted { requested, remaining }) => {
                    prop_assert_eq!(requested, want);
                    prop_assert_eq!(remaining, left);
                    prop_assert!((want > left && !partial) || left == 0);
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
        let state = record.state();
        let charged = state.active.map_or(0, |a| a.used)
            + state.reserve.map_or(0, |r| r.used)
            + state.switched_out.map_or(0, |(_, used)| used);
        prop_assert_eq!(charged, granted);
        let switched = reserve > 0 && granted >= active;
        prop_assert_eq!(events.switches.load(std::sync::atomic::Ordering::Relaxed), usize::from(switched));
    }
}
