//! Block sizing: how much a host asks for when it takes a lease, and when it asks again.
//!
//! A block lasts about `horizon` (10 s) of the host's recent rate, so a busy host renews its
//! stock a few times a minute and a quiet one holds little. Near the end of the account a
//! block is at most `1 / share` of what is free, so the capacity idle in other hosts' blocks
//! when one host is refused stays small: with `H` hosts each holding at most a `1/share` of
//! what was free when it took, at most `H / share` of the last free amount sits idle. The next
//! block is taken when 25 % of the current one is left, ahead of need, by the host's background
//! thread.

use std::time::Duration;

/// The sizing rules; [`BlockPolicy::default`] is the fleet's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPolicy {
    /// How much traffic one block should last.
    pub horizon: Duration,
    /// The smallest block asked for while that much is free.
    pub min_block: u64,
    /// The largest block asked for, whatever the rate.
    pub max_block: u64,
    /// Near the end, a block is at most `free / share`.
    pub share: u64,
}

impl Default for BlockPolicy {
    /// 10 s of traffic, between 64 KiB and 1 GiB, at most an eighth of what is free.
    fn default() -> BlockPolicy {
        BlockPolicy {
            horizon: Duration::from_secs(10),
            min_block: 64 << 10,
            max_block: 1 << 30,
            share: 8,
        }
    }
}

impl BlockPolicy {
    /// The block to ask for, given the host's recent rate (bytes per second) and what the
    /// account has free (as the last take reported it); 0 when nothing is free.
    pub fn block_size(&self, rate: u64, free: u64) -> u64 {
        let by_rate = u128::from(rate) * self.horizon.as_millis() / 1000;
        let by_rate = u64::try_from(by_rate)
            .unwrap_or(u64::MAX)
            .clamp(self.min_block, self.max_block);
        let near_end = (free / self.share.max(1)).max(self.min_block);
        by_rate.min(near_end).min(free)
    }

    /// Whether a host holding a block of `granted` with `left` still unused should take the
    /// next one now: when a quarter or less is left.
    pub fn needs_next(granted: u64, left: u64) -> bool {
        u128::from(left) * 4 <= u128::from(granted)
    }
}

#[cfg(test)]
mod tests {
    use super::BlockPolicy;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn block_size_table() {
        let policy = BlockPolicy::default();
        // (rate bytes/s, free in the account, expected block, why)
        let table = [
            (0, 100 * GIB, 64 * KIB, "idle host: the smallest block"),
            (MIB, 100 * GIB, 10 * MIB, "10 s of the rate"),
            (10 * GIB, 100 * GIB, GIB, "capped at the largest block"),
            (u64::MAX, u64::MAX, GIB, "no overflow"),
            (
                MIB,
                40 * MIB,
                5 * MIB,
                "near the end: an eighth of what is free",
            ),
            (
                MIB,
                80 * MIB,
                10 * MIB,
                "an eighth is exactly the rate's block",
            ),
            (
                MIB,
                100 * KIB,
                64 * KIB,
                "never below the smallest while that much is free",
            ),
            (MIB, 10 * KIB, 10 * KIB, "the last bytes: all that is free"),
            (MIB, 1, 1, "one byte left"),
            (MIB, 0, 0, "nothing free: ask for nothing"),
        ];
        for (rate, free, expected, why) in table {
            assert_eq!(policy.block_size(rate, free), expected, "{why}");
        }
    }

    #[test]
    fn next_block_at_a_quarter_left() {
        // (granted, left, take the next one now)
        let table = [
            (100, 100, false),
            (100, 26, false),
            (100, 25, true),
            (100, 0, true),
            (3, 1, false),
            (4, 1, true),
            (u64::MAX, u64::MAX / 4, true),
        ];
        for (granted, left, expected) in table {
            assert_eq!(
                BlockPolicy::needs_next(granted, left),
                expected,
                "{granted} granted, {left} left"
            );
        }
    }
}
