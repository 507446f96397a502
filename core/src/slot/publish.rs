//! The admin's side of a slot pair: reading its state, publishing the next generation, sealing
//! the leases of the last one and giving their unused part back, and checking a record at open.

use super::*;

impl PairRecord {
    /// Seals the lease of `side` of generation `epoch` unless it is sealed already, and gives
    /// back what it holds beyond `used`. Exactly one sealer gives back, so a block is never
    /// returned twice; a refill that lands later finds the seal and returns its own block.
    /// While the sealer gives back, the sealed lease carries `settling` ("returning"), so
    /// [`Self::finish_publish`] knows the account is not whole yet.
    pub(super) fn seal(&self, epoch: u64, side: Side, used: u64, env: &impl Accounts) {
        let slot = epoch as usize & 1;
        let cell = self.lease_word(slot, side);
        let mut current = self.lease(slot, side);
        while current.live_in(epoch) {
            let sealed = Lease {
                sealed: true,
                settling: true,
                ..current
            };
            // AcqRel: Acquire keeps the account read below after the lease read; Release orders
            // the seal before the give-back for whoever sees it.
            match cell.compare_exchange_weak(
                current.pack(),
                sealed.pack(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if let Some(account) = self.account_of(slot, side, env) {
                        account.give_back(current.end.saturating_sub(used));
                    }
                    self.update_sealed(epoch, side, |lease| Lease {
                        settling: false,
                        ..lease
                    });
                    return;
                }
                Err(now) => current = Lease::unpack(now),
            }
        }
    }

    /// Applies `change` to the sealed lease of `side` of generation `epoch`, unless the slot
    /// moved on to a later generation.
    pub(super) fn update_sealed(&self, epoch: u64, side: Side, change: impl Fn(Lease) -> Lease) {
        let slot = epoch as usize & 1;
        let cell = self.lease_word(slot, side);
        let mut current = self.lease(slot, side);
        while current.epoch == epoch && current.sealed {
            // Release on success: orders the give-back before it for `finish_publish`, which
            // Acquire-loads the lease. Acquire on failure: the retry reads the lease as it is.
            match cell.compare_exchange_weak(
                current.pack(),
                change(current).pack(),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => current = Lease::unpack(now),
            }
        }
    }

    /// Whether every byte the lease of `side` held in generation `epoch` is back in its account:
    /// it is sealed, its sealer has given back, and no refill of it is still landing (or the
    /// slot has moved on).
    pub(super) fn drained(&self, epoch: u64, side: Side) -> bool {
        let lease = self.lease(epoch as usize & 1, side);
        lease.epoch != epoch || (lease.sealed && !lease.settling && lease.refilling == 0)
    }

    /// Raises the expiry mark of `epoch` to at least `offset`. The mark is `[epoch:64 |
    /// offset:64]`; a mark of an older epoch is replaced, one of a newer epoch means this caller
    /// is stale and leaves it alone (its cursor CAS fails too). A running maximum is exact for a
    /// data-volume pair: within one epoch its offset only grows, so the switch's own word carries
    /// the largest offset any switcher of the epoch read.
    pub(super) fn raise_mark(&self, epoch: u64, offset: u64) {
        let wanted = (Word::from(epoch) << 64) | Word::from(offset);
        // Relaxed (load and CAS): the mark is read only after an Acquire load of a cursor whose
        // switched flag was set by a Release CAS sequenced after this raise.
        let mut mark = self.expiry_mark.load(Ordering::Relaxed);
        loop {
            let tag = (mark >> 64) as u64;
            if tag > epoch || (tag == epoch && mark as u64 >= offset) {
                return;
            }
            match self.expiry_mark.compare_exchange_weak(
                mark,
                wanted,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(current) => mark = current,
            }
        }
    }

    /// Where the Active key of `epoch` stopped when it expired, if a switcher recorded it.
    pub(super) fn expiry_mark_of(&self, epoch: u64) -> Option<u64> {
        // Relaxed: read after an Acquire load of a cursor whose flag a Release CAS set after the
        // mark was raised.
        let mark = self.expiry_mark.load(Ordering::Relaxed);
        ((mark >> 64) as u64 == epoch).then_some(mark as u64)
    }

    /// The pair's logical content. Retries only while an admin change is publishing.
    pub(crate) fn state(&self) -> PairState {
        loop {
            // Acquire: pairs with the Release CAS that published the generation read below.
            let word = self.cursor.load(Ordering::Acquire);
            let state = self.state_at(word);
            // Acquire: as above; an unchanged epoch and flag prove the generation read was whole.
            let again = Cursor::unpack(self.cursor.load(Ordering::Acquire));
            let first = Cursor::unpack(word);
            if again.epoch == first.epoch && again.switched == first.switched {
                return state;
            }
        }
    }

    pub(super) fn state_at(&self, word: Word) -> PairState {
        let cursor = Cursor::unpack(word);
        let i = cursor.epoch as usize & 1;
        let (limits, meta, leases) = (&self.limits[i], &self.meta[i], &self.leases[i]);
        // Acquire (all loads below): pair with the admin's Release stores of this generation.
        let active_limit = limits.active_limit.load(Ordering::Acquire);
        let reserve_limit = limits.reserve_limit.load(Ordering::Acquire);
        let account = |side: usize| leases.accounts[side].load(Ordering::Acquire);
        let grace = Grace(leases.grace.load(Ordering::Acquire));
        let active = LiveKey {
            key: meta.active_key.load(Ordering::Acquire),
            account: account(0),
            limit: active_limit,
            used: cursor.offset,
            expiry: limits.active_expiry.load(Ordering::Acquire),
            grace_days: grace.days(Side::Active),
        };
        let reserve = LiveKey {
            key: meta.reserve_key.load(Ordering::Acquire),
            account: account(1),
            limit: reserve_limit,
            used: 0,
            expiry: limits.reserve_expiry.load(Ordering::Acquire),
            grace_days: grace.days(Side::Reserve),
        };
        let switches_before = meta.switches_before.load(Ordering::Acquire);
        let retired_key = meta.retired_key.load(Ordering::Acquire);
        let published_retired =
            (retired_key != 0).then(|| (retired_key, meta.retired_used.load(Ordering::Acquire)));
        let mut state = PairState {
            epoch: cursor.epoch,
            active: None,
            reserve: None,
            switched_out: None,
            switch_reason: None,
            published_retired,
            switches: switches_before,
        };
        if active_limit == 0 {
            return state;
        }
        if self.metering() == Metering::Seats {
            return seat::state(cursor, state, active, reserve);
        }
        if cursor.switched {
            let stopped_at = if cursor.exhausted {
                self.lease(i, Side::Active).end
            } else {
                self.expiry_mark_of(cursor.epoch)
                    .unwrap_or_else(|| self.lease(i, Side::Active).end)
            };
            state.switched_out = Some((active.key, stopped_at));
            state.switch_reason = Some(if cursor.exhausted {
                SwitchReason::Exhausted
            } else {
                SwitchReason::Expired
            });
            state.active = Some(LiveKey {
                used: cursor.offset,
                ..reserve
            });
            state.switches += 1;
        } else {
            state.active = Some(active);
            state.reserve = (reserve_limit > 0).then_some(reserve);
        }
        state
    }

    /// Publishes the next generation that `plan` derives from the current state, and returns the
    /// state it was derived from with the generation published. Only one admin may publish at a
    /// time (the engine's admin lock); consumers are never blocked and simply retry. Afterwards
    /// the old generation's leases are sealed and their unused parts given back.
    pub(crate) fn publish<E>(
        &self,
        env: &impl Accounts,
        mut plan: impl FnMut(&PairState) -> Result<NextGen, E>,
    ) -> Result<(PairState, NextGen), E> {
        let volume = self.metering() == Metering::Volume;
        if volume {
            // The last publish must be finished (its old generation's leases given back and no
            // refill of them still landing) before we overwrite that generation's slot; a
            // publisher that died after its CAS left that to us.
            self.settle_live(env);
        }
        // Acquire: pairs with the Release CAS of the previous publish.
        let mut word = self.cursor.load(Ordering::Acquire);
        loop {
            let state = self.state_at(word);
            let next = plan(&state)?;
            let epoch = state.epoch + 1;
            let offset = match self.metering() {
                Metering::Volume => next.active.map_or(0, |a| a.used),
                // Seats stay held across admin changes: the gauge carries over unchanged.
                Metering::Seats => seat::held(offset_of(word)),
            };
            // Seats carried onto the new Active key count in its account from before the CAS
            // (a moment of over-counting only refuses) and leave the old bounding key's after.
            let carried = self.seat_carry(word, next.active, offset, env);
            self.write_generation(epoch, &next, offset, volume);
            // Release: published by the cursor CAS below with the generation; read by
            // `finish_publish` after an Acquire load of the cursor.
            self.replaced.store(word, Ordering::Release);
            let new = Cursor {
                epoch,
                switched: false,
                exhausted: false,
                offset,
            }
            .pack();
            // AcqRel: Release publishes the generation just written; Acquire lets a retry read
            // the limits of the epoch it finds.
            match self
                .cursor
                .compare_exchange(word, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.raise_mark(epoch, 0);
                    if volume {
                        self.finish_publish(env);
                    }
                    if let Some(from) = carried.0 {
                        from.return_seats(offset);
                    }
                    return Ok((state, next));
                }
                Err(current) => {
                    if let Some(to) = carried.1 {
                        to.return_seats(offset);
                    }
                    word = current;
                }
            }
        }
    }

    /// Finishes the last publish of a data-volume pair: seals the leases of the generation it
    /// replaced, giving their unused part back to the accounts, then clears `settling` on the
    /// live generation's leases so refills may take from the accounts again. Idempotent and
    /// safe to run from any thread: the publisher runs it after its CAS, a refill that finds its
    /// lease settling runs it to help (so a publisher descheduled or killed after its CAS stops
    /// nobody), and the next publish runs it before overwriting the old generation's slot.
    pub(crate) fn finish_publish(&self, env: &impl Accounts) {
        // Acquire (both): pair with the publish's Release store of `replaced` and its Release
        // CAS, so `replaced` is at least the word the live generation's publish replaced.
        let live = self.cursor.load(Ordering::Acquire);
        let replaced = self.replaced.load(Ordering::Acquire);
        let epoch = epoch_of(live);
        if epoch_of(replaced).wrapping_add(1) != epoch {
            return;
        }
        self.seal_generation(replaced, env);
        let old = epoch_of(replaced);
        if self.drained(old, Side::Active) && self.drained(old, Side::Reserve) {
            for side in [Side::Active, Side::Reserve] {
                self.settle(epoch, side, env);
            }
        }
    }

    /// Whether the live generation's leases may take from their accounts (not settling).
    pub(super) fn settled(&self) -> bool {
        let epoch = epoch_of(self.load_cursor());
        [Side::Active, Side::Reserve]
            .into_iter()
            .all(|side| !self.lease(epoch as usize & 1, side).settling)
    }

    /// Waits (admin side, before a publish overwrites the slot of the generation before the
    /// live one) until the live generation is settled, helping it. Refills of the old
    /// generation still landing are what it waits for; one whose process died is given up
    /// after [`REFILL_GIVE_UP`] and its block is lost with it.
    pub(super) fn settle_live(&self, env: &impl Accounts) {
        #[cfg(not(loom))]
        let started = std::time::Instant::now();
        let mut round = 0u32;
        loop {
            self.finish_publish(env);
            if self.settled() {
                return;
            }
            crate::sync::wait_turn(round);
            round = round.saturating_add(1);
            #[cfg(not(loom))]
            if round.is_multiple_of(64) && started.elapsed() >= REFILL_GIVE_UP {
                let epoch = epoch_of(self.load_cursor());
                for side in [Side::Active, Side::Reserve] {
                    self.settle(epoch, side, env);
                }
                return;
            }
        }
    }

    /// Clears `settling` on the lease of `side` in generation `epoch`, marking it last if its
    /// account is empty (no refill can have registered while it was settling).
    pub(super) fn settle(&self, epoch: u64, side: Side, env: &impl Accounts) {
        let slot = epoch as usize & 1;
        let cell = self.lease_word(slot, side);
        let account = self.account_of(slot, side, env);
        let into_overage = self.may_use_overage(slot, side);
        let mut current = self.lease(slot, side);
        while current.live_in(epoch) && current.settling {
            let next = Lease {
                settling: false,
                last: current.refilling == 0 && account.is_some_and(|a| a.used_up(into_overage)),
                ..current
            };
            // Release on success: as a landing refill's CAS (`last` is decided from the
            // account). Acquire on failure: the retry reads the lease as it is.
            match cell.compare_exchange_weak(
                current.pack(),
                next.pack(),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => current = Lease::unpack(now),
            }
        }
    }

    /// Seals both leases of the generation `word` ended, giving back what they hold beyond what
    /// the pair used of each key.
    pub(super) fn seal_generation(&self, word: Word, env: &impl Accounts) {
        let cursor = Cursor::unpack(word);
        let slot = cursor.epoch as usize & 1;
        let (active_used, reserve_used) = if !cursor.switched {
            (cursor.offset, 0)
        } else if cursor.exhausted {
            (self.lease(slot, Side::Active).end, cursor.offset)
        } else {
            let stopped = self
                .expiry_mark_of(cursor.epoch)
                .unwrap_or_else(|| self.lease(slot, Side::Active).end);
            (stopped, cursor.offset)
        };
        self.seal(cursor.epoch, Side::Active, active_used, env);
        self.seal(cursor.epoch, Side::Reserve, reserve_used, env);
    }

    /// Writes generation `epoch` into its slot; with `settling` (a data-volume pair) its leases
    /// wait for [`Self::finish_publish`] before any refill.
    pub(super) fn write_generation(&self, epoch: u64, next: &NextGen, offset: u64, settling: bool) {
        let i = epoch as usize & 1;
        let (limits, meta, leases) = (&self.limits[i], &self.meta[i], &self.leases[i]);
        let none = LiveKey {
            key: 0,
            account: 0,
            limit: 0,
            used: 0,
            expiry: crate::clock::NEVER,
            grace_days: 0,
        };
        let active = next.active.unwrap_or(none);
        let reserve = next.reserve.unwrap_or(none);
        let (retired_key, retired_used) = next.retired.unwrap_or((0, 0));
        // Release (every store): pairs with the consumers' Acquire loads; see `window`.
        limits.active_limit.store(active.limit, Ordering::Release);
        limits.reserve_limit.store(reserve.limit, Ordering::Release);
        limits.active_expiry.store(active.expiry, Ordering::Release);
        limits
            .reserve_expiry
            .store(reserve.expiry, Ordering::Release);
        meta.active_key.store(active.key, Ordering::Release);
        meta.reserve_key.store(reserve.key, Ordering::Release);
        meta.switches_before.store(next.switches, Ordering::Release);
        meta.retired_key.store(retired_key, Ordering::Release);
        meta.retired_used.store(retired_used, Ordering::Release);
        leases.accounts[0].store(active.account, Ordering::Release);
        leases.accounts[1].store(reserve.account, Ordering::Release);
        let grace = Grace::new(epoch, active.grace_days, reserve.grace_days);
        leases.grace.store(grace.0, Ordering::Release);
        // The new leases are empty: the first grant of the generation takes a block.
        let empty = |end| {
            Lease {
                epoch,
                sealed: false,
                last: false,
                settling,
                refilling: 0,
                end,
            }
            .pack()
        };
        leases.leases[0].store(empty(offset), Ordering::Release);
        leases.leases[1].store(empty(0), Ordering::Release);
    }

    /// The pair's content as a state written before key accounts (format version 2) meant it:
    /// one cursor over both keys' whole limits, the Active key covering `[0, active_limit)`
    /// and the reserve the next range, an exhaustion switch implied by the offset. Only for
    /// converting such a state at open (see `Engine::open`), with no grant running.
    pub(crate) fn legacy_state(&self) -> PairState {
        // Acquire: pairs with the last publish of the build that wrote the state.
        let word = self.cursor.load(Ordering::Acquire);
        let cursor = Cursor::unpack(word);
        let mut state = self.state_at(word);
        let slot = cursor.epoch as usize & 1;
        let (limits, meta) = (&self.limits[slot], &self.meta[slot]);
        // Acquire (all): as above.
        let active_limit = limits.active_limit.load(Ordering::Acquire);
        let reserve_limit = limits.reserve_limit.load(Ordering::Acquire);
        let active = LiveKey {
            key: meta.active_key.load(Ordering::Acquire),
            account: 0,
            limit: active_limit,
            used: cursor.offset.min(active_limit),
            expiry: limits.active_expiry.load(Ordering::Acquire),
            // A state of format 2 had no grace.
            grace_days: 0,
        };
        let reserve = LiveKey {
            key: meta.reserve_key.load(Ordering::Acquire),
            account: 0,
            limit: reserve_limit,
            used: cursor.offset.saturating_sub(active_limit),
            expiry: limits.reserve_expiry.load(Ordering::Acquire),
            grace_days: 0,
        };
        let switches = meta.switches_before.load(Ordering::Acquire);
        state.switches = switches;
        state.switched_out = None;
        state.switch_reason = None;
        if active_limit == 0 {
            return state;
        }
        if reserve_limit > 0 && (cursor.switched || cursor.offset >= active_limit) {
            let stopped_at = if cursor.switched {
                self.expiry_mark_of(cursor.epoch).unwrap_or(active_limit)
            } else {
                active_limit
            };
            state.switched_out = Some((active.key, stopped_at.min(active_limit)));
            state.switch_reason = Some(if cursor.switched {
                SwitchReason::Expired
            } else {
                SwitchReason::Exhausted
            });
            state.active = Some(reserve);
            state.reserve = None;
            state.switches = switches + 1;
        } else {
            state.active = Some(active);
            state.reserve = (reserve_limit > 0).then_some(LiveKey { used: 0, ..reserve });
        }
        state
    }

    /// Whether the live generation of a data-volume pair predates key accounts (a key with no
    /// account): such a state is converted at open before any grant (see `Engine::open`).
    pub(crate) fn needs_accounts(&self) -> bool {
        let state = self.state();
        [state.active, state.reserve]
            .into_iter()
            .flatten()
            .any(|key| key.account == 0)
    }

    /// Checks the record's internal consistency; a violation means the file was damaged.
    pub(crate) fn check(&self) -> Result<(), RecordDamage> {
        // Acquire: pairs with the last publish.
        let cursor = Cursor::unpack(self.cursor.load(Ordering::Acquire));
        let slot = cursor.epoch as usize & 1;
        let limits = &self.limits[slot];
        let active = limits.active_limit.load(Ordering::Acquire);
        let reserve = limits.reserve_limit.load(Ordering::Acquire);
        if active > crate::key::MAX_LIMIT_BYTES || reserve > crate::key::MAX_LIMIT_BYTES {
            return Err(RecordDamage::LimitBeyondMax {
                limit: active.max(reserve),
            });
        }
        if self.metering() == Metering::Seats {
            return seat::check(cursor);
        }
        if active == 0 {
            return Ok(());
        }
        let side = if cursor.switched {
            Side::Reserve
        } else {
            Side::Active
        };
        let lease = self.lease(slot, side);
        if cursor.switched && reserve == 0 {
            return Err(RecordDamage::SwitchedWithoutReserve);
        }
        if lease.epoch != cursor.epoch && !self.needs_accounts() {
            return Err(RecordDamage::LeaseGeneration {
                lease: lease.epoch,
                cursor: cursor.epoch,
            });
        }
        if lease.epoch == cursor.epoch && cursor.offset > lease.end {
            return Err(RecordDamage::CursorBeyondLease {
                cursor: cursor.offset,
                end: lease.end,
            });
        }
        Ok(())
    }
}
