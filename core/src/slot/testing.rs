//! Accounts for the slot's unit tests, stress tests and loom models: account id `n` is the
//! `n`-th of a fixed set, opened the first time a published generation names it.

use super::{AccountRecord, Accounts, LiveKey, NextGen};

/// How many accounts a test may name (ids 1 to this).
const COUNT: usize = 8;

/// A test's accounts.
pub(crate) struct TestAccounts(Vec<AccountRecord>);

impl Default for TestAccounts {
    fn default() -> TestAccounts {
        TestAccounts::with_count(COUNT)
    }
}

impl TestAccounts {
    /// `count` accounts.
    pub(crate) fn with_count(count: usize) -> TestAccounts {
        TestAccounts((0..count).map(|_| AccountRecord::new()).collect())
    }

    /// Opens the accounts `next` names that are not open yet, each with its key's limit and the
    /// pair's use of the key as already taken (the pair is the key's only holder).
    pub(crate) fn open_for(&self, next: &NextGen) {
        for key in [next.active, next.reserve].into_iter().flatten() {
            if let Some(account) = self.account(key.account) {
                open_once(account, key.limit, key.used);
            }
        }
    }

    /// The account `id`, open or not.
    pub(crate) fn get(&self, id: u32) -> &AccountRecord {
        &self.0[id as usize - 1]
    }
}

/// Opens `account` unless it is open already.
fn open_once(account: &AccountRecord, limit: u64, used: u64) {
    if !account.is_account() {
        account.open(limit, 0, used, 1);
        account.set_holders(1);
    }
}

impl Accounts for TestAccounts {
    fn account(&self, id: u32) -> Option<&AccountRecord> {
        let index = (id as usize).checked_sub(1)?;
        self.0.get(index)
    }
}

/// Implements [`Accounts`] for a test's event sink by its `accounts` field.
macro_rules! accounts_field {
    ($sink:ty) => {
        impl $crate::slot::Accounts for $sink {
            fn account(&self, id: u32) -> Option<&$crate::slot::AccountRecord> {
                self.accounts.account(id)
            }
        }
    };
}
pub(crate) use accounts_field;

/// A key of `limit` bytes expiring at `expiry`, unused, whose account id is its row.
pub(crate) fn live(key: u32, limit: u64, expiry: u32) -> LiveKey {
    LiveKey {
        key,
        account: key,
        limit,
        used: 0,
        expiry,
        grace_days: 0,
    }
}
