//! The consumer's side of a slot pair: the grant and its window, refills from the key's account,
//! the switch on exhaustion or expiry, grace, and refusals. Lock-free; see the design comment in
//! `slot.rs`.

use super::*;

impl PairRecord {
    /// Validates a refusal decided from `word` and the generation slot of its epoch: `Ok` if the
    /// epoch is still live, so the slot held that generation throughout and the refusal was true
    /// when `word` was read; otherwise the current word, to retry from.
    #[cold]
    #[inline(never)]
    pub(super) fn confirm(&self, word: Word) -> Result<(), Word> {
        // Acquire: the slot's loads before this were Acquire, so if any of them read a later
        // generation's store, the publish that bumped the epoch before that store happens-before
        // this load, which therefore sees the moved epoch.
        let current = self.cursor.load(Ordering::Acquire);
        if epoch_of(current) == epoch_of(word) {
            Ok(())
        } else {
            Err(current)
        }
    }

    /// Grants `want` bytes (all or nothing, or as much as remains in `Partial` mode) and returns
    /// the amount granted. Lock-free: one CAS on the cursor while the lease lasts.
    #[inline(always)]
    pub(crate) fn grant(
        &self,
        want: u64,
        mode: Mode,
        now: u32,
        env: &(impl PairEvents + Accounts),
    ) -> Result<u64, Refusal> {
        self.grant_moving::<false>(want, mode, now, env)
            .map(|moved| moved.len)
    }

    /// [`Self::grant`], returning the cursor word its CAS installed. With `BLOCK` (a lease
    /// slot taking its block, in `Partial` mode) it stops one byte short of the Active key's
    /// end, so a block never switches the pair (the grant that needs the reserve does), and it
    /// reports no refusal (the request the block was for meets it, and reports it, itself).
    #[inline(always)]
    pub(super) fn grant_moving<const BLOCK: bool>(
        &self,
        want: u64,
        mode: Mode,
        now: u32,
        env: &(impl PairEvents + Accounts),
    ) -> Result<Moved, Refusal> {
        let mut word = self.load_cursor();
        loop {
            let refusal = match self.window(&mut word, now, env) {
                Ok(_) if want == 0 => return Ok(Moved { len: 0, to: word }),
                Ok(w) if BLOCK && w.split != u64::MAX => {
                    // The Active key is in its last lease and a reserve is held: take what the
                    // Active key has left but its last byte, without a refill.
                    let room = w.split.saturating_sub(offset_of(word) + 1);
                    if room == 0 {
                        return Err(Refusal::Unavailable);
                    }
                    match self.advance(word, want.min(room), w, env) {
                        Ok(to) => {
                            return Ok(Moved {
                                len: want.min(room),
                                to,
                            })
                        }
                        Err(current) => {
                            word = current;
                            continue;
                        }
                    }
                }
                Ok(w) => {
                    let room = w.end - offset_of(word);
                    let exhausted = |remaining| Denied::Exhausted { remaining };
                    let granted = if want <= room {
                        Ok(want)
                    } else if let Some(side) = w.refill {
                        match self.refill(word, side, want - room, mode, w, env) {
                            Refill::Again => continue,
                            Refill::Stale => {
                                word = self.load_cursor();
                                continue;
                            }
                            Refill::Wait(side, seen) => {
                                self.await_refill(word, side, seen, env);
                                continue;
                            }
                            Refill::Short(left) => Err(exhausted(room + left)),
                            Refill::Unavailable if mode == Mode::Partial && room > 0 => Ok(room),
                            Refill::Unavailable => Err(Denied::Unavailable),
                        }
                    } else if mode == Mode::Partial && room > 0 {
                        Ok(room)
                    } else {
                        Err(exhausted(room))
                    };
                    match granted {
                        Ok(granted) => match self.advance(word, granted, w, env) {
                            Ok(to) => return Ok(Moved { len: granted, to }),
                            Err(current) => {
                                word = current;
                                continue;
                            }
                        },
                        Err(refusal) => refusal,
                    }
                }
                Err(refusal) => refusal,
            };
            if BLOCK {
                return Err(Refusal::Unavailable);
            }
            match self.confirm(word) {
                Ok(()) => return Err(self.refuse(word, want, refusal, env)),
                Err(current) => word = current,
            }
        }
    }

    /// Grants the longest prefix of `amounts` that fits, in one CAS, and returns how many were
    /// granted with the refusal of the first that was not.
    #[inline]
    pub(crate) fn grant_many(
        &self,
        amounts: &[u64],
        now: u32,
        env: &(impl PairEvents + Accounts),
    ) -> (usize, Result<(), Refusal>) {
        let mut word = self.load_cursor();
        loop {
            let w = match self.window(&mut word, now, env) {
                Ok(w) => w,
                Err(refusal) => {
                    if let Err(current) = self.confirm(word) {
                        word = current;
                        continue;
                    }
                    let want = amounts.first().copied().unwrap_or(0);
                    return (0, Err(self.refuse(word, want, refusal, env)));
                }
            };
            let room = w.end.saturating_sub(offset_of(word));
            let mut unavailable = false;
            let (mut count, mut sum) = (0usize, 0u64);
            for &amount in amounts {
                if amount > room - sum {
                    break;
                }
                sum += amount;
                count += 1;
            }
            if let (Some(&next), Some(side)) = (amounts.get(count), w.refill) {
                // The first amount that does not fit may fit after a refill; a short account
                // is taken whole, as for a partial grant.
                let need = sum.saturating_add(next).saturating_sub(room);
                match self.refill(word, side, need, Mode::Partial, w, env) {
                    Refill::Again => continue,
                    Refill::Stale => {
                        word = self.load_cursor();
                        continue;
                    }
                    Refill::Wait(side, seen) => {
                        self.await_refill(word, side, seen, env);
                        continue;
                    }
                    // Only a damaged generation (no account) is short for a partial request:
                    // grant what fits and refuse the rest.
                    Refill::Short(_) => {}
                    // A fleet host's stock is spent: grant what fits, the rest is unavailable.
                    Refill::Unavailable => unavailable = true,
                }
            }
            if sum > 0 {
                // A successful CAS validates the window, and with it the refusal that follows.
                if let Err(current) = self.advance(word, sum, w, env) {
                    word = current;
                    continue;
                }
            }
            let Some(&refused) = amounts.get(count) else {
                return (count, Ok(()));
            };
            if sum == 0 {
                if let Err(current) = self.confirm(word) {
                    word = current;
                    continue;
                }
            }
            let refusal = if unavailable {
                Denied::Unavailable
            } else {
                Denied::Exhausted {
                    remaining: room - sum,
                }
            };
            return (count, Err(self.refuse(word, refused, refusal, env)));
        }
    }

    /// Finds the usable window for a request, switching an expired Active key on the way
    /// (which updates `word`).
    #[inline(always)]
    pub(super) fn window(
        &self,
        word: &mut Word,
        now: u32,
        env: &(impl PairEvents + Accounts),
    ) -> Result<Window, Denied> {
        loop {
            let cursor = Cursor::unpack(*word);
            let slot = cursor.epoch as usize & 1;
            let limits = &self.limits[slot];
            // Acquire (all four): an admin writes a later generation into this slot with Release
            // stores only after bumping the epoch; if we read such a value, Acquire orders our
            // CAS (or the refusal's reload, `confirm`) after that bump, so it fails instead of
            // acting on a torn generation.
            let active_limit = limits.active_limit.load(Ordering::Acquire);
            if active_limit == 0 {
                return Err(Denied::NoActiveKey);
            }
            let reserve_limit = limits.reserve_limit.load(Ordering::Acquire);
            let active_expiry = limits.active_expiry.load(Ordering::Acquire);
            let reserve_expiry = limits.reserve_expiry.load(Ordering::Acquire);
            let reserve_valid = reserve_limit > 0 && reserve_expiry > now;
            if cursor.switched {
                let lease = self.lease(slot, Side::Reserve);
                if !lease.live_in(cursor.epoch) {
                    // A later generation owns the slot: this word is stale.
                    *word = self.reload_stale(*word)?;
                    continue;
                }
                if lease.last && cursor.offset >= lease.end {
                    // Used up (which takes precedence over expired): even an empty request is
                    // refused, as it is for a key that was never shared.
                    return Err(Denied::Exhausted { remaining: 0 });
                }
                let window = Window {
                    end: lease.end,
                    split: u64::MAX,
                    refill: (!lease.last).then_some(Side::Reserve),
                    spill: false,
                };
                if reserve_expiry <= now {
                    return self.in_grace(Side::Reserve, *word, now, window, env);
                }
                return Ok(window);
            }
            let active = self.lease(slot, Side::Active);
            if !active.live_in(cursor.epoch) {
                *word = self.reload_stale(*word)?;
                continue;
            }
            let spent = active.last && cursor.offset >= active.end;
            let reserve_held = reserve_limit > 0;
            if !spent && active_expiry <= now {
                if !reserve_valid {
                    // No reserve can take over: the key grants on while its grace lasts, in
                    // the window the last branch below would give it.
                    let window = Window {
                        end: active.end,
                        split: if active.last && reserve_held {
                            active.end
                        } else {
                            u64::MAX
                        },
                        refill: (!active.last).then_some(Side::Active),
                        spill: false,
                    };
                    return self.in_grace(Side::Active, *word, now, window, env);
                }
                match self.switch_on_expiry(*word, env) {
                    Ok(switched) | Err(switched) => *word = switched,
                }
                continue;
            }
            if spent && !reserve_valid {
                if !reserve_held {
                    return Err(Denied::Exhausted { remaining: 0 });
                }
                // Used up with an expired reserve: the reserve takes over all the same (as it
                // would have at the grant that used the key up), and its expiry refuses.
                if let Err(current) = self.switch_on_exhaustion(*word, 0, env) {
                    *word = current;
                } else {
                    *word = self.load_cursor();
                }
                continue;
            }
            if !active.last || !reserve_valid {
                return Ok(Window {
                    end: active.end,
                    // The grant that uses the key up switches to a reserve held, valid or not.
                    split: if active.last && reserve_held {
                        active.end
                    } else {
                        u64::MAX
                    },
                    refill: (!active.last).then_some(Side::Active),
                    spill: reserve_valid,
                });
            }
            let reserve = self.lease(slot, Side::Reserve);
            if !reserve.live_in(cursor.epoch) {
                *word = self.reload_stale(*word)?;
                continue;
            }
            return Ok(Window {
                end: active.end + reserve.end,
                split: active.end,
                refill: (!reserve.last).then_some(Side::Reserve),
                spill: false,
            });
        }
    }

    /// Lets an expired key of `side` grant on from `window` while its grace lasts: the window
    /// within the grace (reporting its start once per generation), else the refusal. Decided
    /// from the generation slot, so validated like the window: by the grant's CAS, or `confirm`
    /// for a refusal. Cold and out of line, so the grant's own path keeps its shape.
    #[cold]
    #[inline(never)]
    pub(super) fn in_grace(
        &self,
        side: Side,
        word: Word,
        now: u32,
        window: Window,
        events: &impl PairEvents,
    ) -> Result<Window, Denied> {
        let slot = epoch_of(word) as usize & 1;
        let limits = &self.limits[slot];
        // Acquire: as in `window`.
        let expiry = match side {
            Side::Active => limits.active_expiry.load(Ordering::Acquire),
            Side::Reserve => limits.reserve_expiry.load(Ordering::Acquire),
        };
        let cell = &self.leases[slot].grace;
        // Acquire: as the limits' loads in `window`.
        let mut grace = Grace(cell.load(Ordering::Acquire));
        match grace_at(grace.days(side), expiry, now) {
            InGrace::None => Err(Denied::Expired),
            InGrace::Over => Err(Denied::GraceOver(side)),
            InGrace::Until(until) => {
                let epoch = epoch_of(word);
                // The key row the event names, read before the CAS that makes it true.
                let keys = self.key_rows(word);
                while !grace.reported(side) && grace.tagged(epoch) {
                    let marked = Grace(grace.0 | 1 << (32 + side as u32));
                    // Relaxed (both): the bit publishes nothing; the CAS only makes "first"
                    // exact. A failure means the other side's bit was set: look again.
                    match cell.compare_exchange_weak(
                        grace.0,
                        marked.0,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            let key = keys.of(side);
                            events.emit(PairEvent::GraceStarted { key, until });
                            break;
                        }
                        Err(now) => grace = Grace(now),
                    }
                }
                Ok(window)
            }
        }
    }

    /// The cursor word after `word` read a lease that is not its generation's live one. A later
    /// publish or switch moved the cursor on; a cursor still at `word` means the lease was
    /// damaged (a live generation's leases carry its epoch until it ends), which is refused.
    #[cold]
    #[inline(never)]
    pub(super) fn reload_stale(&self, word: Word) -> Result<Word, Denied> {
        let current = self.load_cursor();
        if current == word {
            return Err(Denied::Damaged);
        }
        Ok(current)
    }

    /// The account of `side` in generation slot `slot`.
    pub(super) fn account_of<'a>(
        &self,
        slot: usize,
        side: Side,
        env: &'a impl Accounts,
    ) -> Option<&'a AccountRecord> {
        // Acquire: pairs with the Release store of the generation that named the account; a
        // later generation's id is caught by the lease CAS that follows (its epoch tag).
        env.account(self.leases[slot].accounts[side as usize].load(Ordering::Acquire))
    }

    /// Takes the next block of `side`'s account for a grant that needs `need` bytes beyond the
    /// window and adds it to the lease; marks the lease last when the account is empty and no
    /// other refill is still on its way.
    ///
    /// A refill is three steps: it registers on the lease (`refilling + 1`, one CAS), takes a
    /// block from the account (one CAS there), and lands it (`end + len`, `refilling - 1`, one
    /// CAS). Without the registration, a refill that emptied the account could mark the lease
    /// last while an earlier refill's block was still between the account and the lease: the
    /// pair would switch or refuse with that block in flight, and the block, finding the lease
    /// last, would go back to the account unused. With it, only the refill that leaves
    /// `refilling` at zero decides `last`, from the account as it is then; a new refill cannot
    /// register meanwhile without failing that CAS.
    #[cold]
    #[inline(never)]
    pub(super) fn refill(
        &self,
        word: Word,
        side: Side,
        need: u64,
        mode: Mode,
        w: Window,
        env: &(impl PairEvents + Accounts),
    ) -> Refill {
        let epoch = epoch_of(word);
        let slot = epoch as usize & 1;
        let cell = self.lease_word(slot, side);
        let Some(account) = self.account_of(slot, side, env) else {
            // A generation with a key but no account is damaged; `check` refuses it at open.
            return Refill::Short(0);
        };
        let mut current = self.lease(slot, side);
        loop {
            if !current.live_in(epoch) {
                return Refill::Stale;
            }
            if current.last {
                return Refill::Again;
            }
            if current.settling {
                // The publish that opened this generation has not given the last one's leases
                // back yet: help it, so the account is whole before we take from it.
                self.finish_publish(env);
                let now = self.lease(slot, side);
                if now == current {
                    // Nothing finished it: the file was damaged. Wait it out like a dead refill.
                    return Refill::Wait(side, current.pack());
                }
                current = now;
                continue;
            }
            if current.refilling == LEASE_REFILLING_MAX {
                // 32,767 refills in flight on one lease: let one of them land first.
                return Refill::Wait(side, current.pack());
            }
            let registered = Lease {
                refilling: current.refilling + 1,
                ..current
            };
            // Relaxed on success: registering publishes nothing; the landing CAS orders the
            // block. Acquire on failure: the retry reads the lease as it is.
            match cell.compare_exchange_weak(
                current.pack(),
                registered.pack(),
                Ordering::Relaxed,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => current = Lease::unpack(now),
            }
        }
        // An all-or-nothing request that cannot spill into a reserve gains nothing from a
        // partial block: it takes nothing and is refused.
        let whole_or_none = mode == Mode::AllOrNothing && !(side == Side::Active && w.spill);
        let into_overage = self.may_use_overage(slot, side);
        let taken = account.take(need, whole_or_none, into_overage);
        let block = match taken {
            Ok(Some(block)) => Some(block),
            Ok(None) | Err(_) => None,
        };
        let len = block.map_or(0, |b| b.len);
        // The key rows the threshold events name, read before the lease CAS validates them.
        let key = self.key_rows(word);
        let mut current = self.lease(slot, side);
        let landed = loop {
            if !current.live_in(epoch) || current.last {
                // Sealed, of another generation, or ended by a grant that gave this refill up
                // for dead (`await_refill`): the block belongs to nobody. Then the refill stops
                // counting on a sealed lease, which is drained once none counts (`drained`).
                account.give_back(len);
                self.update_sealed(epoch, side, |lease| Lease {
                    refilling: lease.refilling.saturating_sub(1),
                    ..lease
                });
                return Refill::Again;
            }
            // This refill's registration is still counted: only the landing of a registered
            // refill lowers the count, and only a seal or `last` (both handled above) end it.
            let refilling = current.refilling.saturating_sub(1);
            let next = Lease {
                end: current.end + len,
                refilling,
                last: refilling == 0 && account.used_up(into_overage),
                ..current
            };
            // Release on success: the block was counted in the account before; a grant that
            // Acquire-loads the grown lease grants from it. Acquire on failure: the retry reads
            // the lease as it is.
            match cell.compare_exchange_weak(
                current.pack(),
                next.pack(),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => break next,
                Err(now) => current = Lease::unpack(now),
            }
        };
        if let Some(b) = block {
            let row = key.of(side);
            for percent in account.claim_thresholds(b.from, need.min(b.len)) {
                env.emit(PairEvent::Threshold { key: row, percent });
            }
            if account.claim_overage(b.from, need.min(b.len)) {
                env.emit(PairEvent::OverageStarted { key: row });
            }
        }
        match taken {
            // Blocks of other refills are still landing and may cover the request.
            Ok(None) | Err(_) if !landed.last && landed.refilling > 0 => {
                Refill::Wait(side, landed.pack())
            }
            // A fleet host's stock is short and the store may have more: its fleet thread
            // draws more (sized by this need); the pair neither switches nor says exhausted.
            Ok(None) | Err(_) if account.is_fleet() && !landed.last && !account.is_dry() => {
                account.want(need);
                Refill::Unavailable
            }
            Err(left) => Refill::Short(left),
            Ok(_) => Refill::Again,
        }
    }

    /// Waits, without a lock, until the lease of `side` in `word`'s generation moves from `seen`:
    /// another refill landed its block, or the lease ended. A refill lands two CASes after it
    /// registers, so this normally spins a few rounds; it only comes into play when the
    /// account is empty. A refill whose process was killed between registering and landing
    /// never lands: after [`REFILL_GIVE_UP`] with the lease still at `seen`, the waiter takes it
    /// for dead and marks the lease last, so the pair switches or refuses as the empty account
    /// says (the dead refill's block, already taken from the account, is lost with it; see
    /// RELIABILITY.md). A refill that was only stalled that long finds the lease last when it
    /// lands and gives its block back.
    #[cold]
    #[inline(never)]
    pub(super) fn await_refill(&self, word: Word, side: Side, seen: Word, env: &impl Accounts) {
        let epoch = epoch_of(word);
        let cell = self.lease_word(epoch as usize & 1, side);
        let settling = Lease::unpack(seen).settling;
        #[cfg(not(loom))]
        let started = std::time::Instant::now();
        let mut round = 0u32;
        // Acquire: see `lease`.
        while cell.load(Ordering::Acquire) == seen {
            if settling {
                self.finish_publish(env);
            }
            crate::sync::wait_turn(round);
            round = round.saturating_add(1);
            #[cfg(not(loom))]
            if round.is_multiple_of(64) && started.elapsed() >= REFILL_GIVE_UP {
                if settling {
                    // The old generation never drained: a refill of it died mid-flight.
                    self.settle(epoch, side, env);
                    return;
                }
                let lease = Lease::unpack(seen);

                let ended = Lease {
                    last: true,
                    settling: false,
                    refilling: 0,
                    ..lease
                };
                // Release on success: as a landing refill's CAS. Nothing to do on failure: the
                // lease moved, which is what we waited for.
                let _ =
                    cell.compare_exchange(seen, ended.pack(), Ordering::Release, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Moves the cursor from `word` by `granted`, switching to the reserve when the grant runs
    /// past the Active lease, and returns the word it installed. On a lost race returns the
    /// cursor's current word.
    #[inline(always)]
    pub(super) fn advance(
        &self,
        word: Word,
        granted: u64,
        w: Window,
        events: &impl PairEvents,
    ) -> Result<Word, Word> {
        let after = offset_of(word) + granted;
        // A grant that ends the Active key exactly switches too: the reserve takes over the
        // instant the Active key is used up, not at the next request.
        if after < w.split {
            return self.move_cursor(word, granted);
        }
        self.switch_on_exhaustion(word, after - w.split, events)
    }

    /// The grant's CAS: moves the cursor from `word` by `granted` and returns the new word, or
    /// returns the current word.
    #[inline(always)]
    pub(super) fn move_cursor(&self, word: Word, granted: u64) -> Result<Word, Word> {
        let to = word + Word::from(granted);
        // Relaxed on success: the cursor is the only datum a grant publishes. Acquire on failure:
        // the retry reads the limits of whatever epoch the current word carries.
        self.cursor
            .compare_exchange_weak(word, to, Ordering::Relaxed, Ordering::Acquire)
            .map(|_| to)
    }

    /// The grant that ends the Active lease and starts the reserve with `into_reserve` bytes:
    /// one CAS that sets the switched and exhausted flags; the caller whose CAS it is reports
    /// the switch.
    #[cold]
    #[inline(never)]
    pub(super) fn switch_on_exhaustion(
        &self,
        word: Word,
        into_reserve: u64,
        events: &impl PairEvents,
    ) -> Result<Word, Word> {
        let keys = self.key_rows(word);
        let new = Cursor {
            epoch: epoch_of(word),
            switched: true,
            exhausted: true,
            offset: into_reserve,
        }
        .pack();
        // Relaxed on success: the Active key's final use is its lease's end, which is last and
        // so no longer changes; nothing else is published. Acquire on failure: as in
        // `move_cursor`. The key ids were Acquire-loaded before, so this CAS validates them.
        self.cursor
            .compare_exchange(word, new, Ordering::Relaxed, Ordering::Acquire)?;
        report_switch(events, keys, SwitchReason::Exhausted);
        Ok(new)
    }

    /// The key rows of the generation `word` names (valid once a CAS from `word` succeeds).
    pub(super) fn key_rows(&self, word: Word) -> KeyRows {
        let meta = &self.meta[epoch_of(word) as usize & 1];
        // Acquire (both): pairs with the Release stores that published a generation's key ids;
        // one of a later generation orders the validating CAS after its epoch bump (see
        // `window`).
        KeyRows {
            active: meta.active_key.load(Ordering::Acquire),
            reserve: meta.reserve_key.load(Ordering::Acquire),
        }
    }

    /// Switches an expired Active key to the reserve: records where the Active key stopped, then
    /// moves the cursor to the reserve with the switched flag, then gives the unused Active
    /// lease back. Returns the new word if this caller made the switch, the current word
    /// otherwise.
    #[cold]
    #[inline(never)]
    pub(super) fn switch_on_expiry(
        &self,
        word: Word,
        env: &(impl PairEvents + Accounts),
    ) -> Result<Word, Word> {
        let cursor = Cursor::unpack(word);
        let keys = self.key_rows(word);
        self.raise_mark(cursor.epoch, cursor.offset);
        let new = Cursor {
            epoch: cursor.epoch,
            switched: true,
            exhausted: false,
            offset: 0,
        }
        .pack();
        // Release on success: publishes the expiry mark raised just above to whoever Acquire-loads
        // a cursor with the flag. Acquire on failure: the caller re-reads the limits. The key
        // ids were Acquire-loaded before, so this CAS validates them.
        self.cursor
            .compare_exchange(word, new, Ordering::Release, Ordering::Acquire)?;
        report_switch(env, keys, SwitchReason::Expired);
        self.seal(cursor.epoch, Side::Active, cursor.offset, env);
        Ok(new)
    }

    /// Reports a refusal once per generation and returns it as the caller gets it. Only for a
    /// refusal validated by [`Self::confirm`] (or by a successful CAS).
    #[cold]
    #[inline(never)]
    pub(super) fn refuse(
        &self,
        word: Word,
        requested: u64,
        denied: Denied,
        events: &impl PairEvents,
    ) -> Refusal {
        let reason = match denied {
            Denied::Exhausted { .. } | Denied::NoSeats { .. } => RefusalReason::Exhausted,
            Denied::Expired | Denied::GraceOver(_) => RefusalReason::Expired,
            Denied::NoActiveKey | Denied::Damaged => RefusalReason::NoActiveKey,
            // Not a license decision: the fleet store could not be asked in time. Not reported,
            // so the generation's first real refusal still is.
            Denied::Unavailable => return Refusal::Unavailable,
        };
        let tag = epoch_of(word) + 1;
        // Relaxed: the tag publishes nothing else; the swap makes "first refusal of the
        // generation" exact, the load only skips the write when it is already reported.
        if self.refused_epoch.load(Ordering::Relaxed) != tag
            && self.refused_epoch.swap(tag, Ordering::Relaxed) != tag
        {
            if let Denied::GraceOver(side) = denied {
                let key = self.key_rows(word).of(side);
                events.emit(PairEvent::GraceEnded { key });
            }
            events.emit(PairEvent::Refused { reason });
        }
        match denied {
            Denied::Exhausted { remaining } => Refusal::Exhausted {
                requested,
                remaining,
            },
            Denied::NoSeats { available } => Refusal::SeatsExhausted {
                requested,
                available,
            },
            Denied::Expired | Denied::GraceOver(_) => Refusal::Expired,
            Denied::NoActiveKey => Refusal::NoActiveKey,
            Denied::Unavailable => Refusal::Unavailable,
            Denied::Damaged => Refusal::CorruptLease,
        }
    }

    /// Whether the key of `side` in generation slot `slot` may draw into its overage: only with
    /// no reserve held to take over at its limit, so for the reserve's own key, or an Active
    /// key alone in its pair.
    pub(super) fn may_use_overage(&self, slot: usize, side: Side) -> bool {
        // Acquire: as the limits' loads in `window`; a later generation's value is caught by
        // the lease CAS that follows (its epoch tag).
        side == Side::Reserve || self.limits[slot].reserve_limit.load(Ordering::Acquire) == 0
    }
}
