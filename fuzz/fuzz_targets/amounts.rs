//! The metering calls with arbitrary amounts — 0, `u64::MAX`, exactly what remains and one
//! more, batches whose sum overflows `u64` — on projects whose two keys are at the largest limit
//! a key may carry (`MAX_LIMIT_BYTES`, so the pair spans 2^47 - 2 bytes). One engine serves the
//! whole run; a project is used until it is exhausted, then the next one is created.
//!
//! After every call, the bytes charged (read from the pair's usage) must have grown by exactly
//! what the call granted, and the outcome must be the one rule R10 in docs/rules.md prescribes
//! given what remained before it: all or nothing, the partial variant, the longest batch prefix
//! that fits, and a refusal only when the request does not fit (with `remaining` reported exactly).
//! After every input, the charges of all keys (`Engine::keys`) must equal every byte granted.
//!
//! Input: a sequence of calls (at most 64 per input). A call is a header byte, `h % 3` picking
//! consume, consume_partial or consume_many (of `h / 3 % 8` amounts; one amount otherwise),
//! then its amounts, each a class byte (mod 8, in the order of `Amount`) and 8 bytes of value,
//! little-endian, that the class may use. A missing byte reads as 0.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use tollgate_core::{Engine, Error, Key, ProjectHandle, Refusal, Usage, MAX_LIMIT_BYTES};
use tollgate_fuzz::{max_key_json, state_dir};

#[derive(Debug, Clone, Copy)]
enum Amount {
    Zero,
    Max,
    MaxLimit,
    /// Exactly what remains.
    Remaining,
    /// What remains plus this (a request one byte too large, and more).
    Above(u8),
    /// What remains minus this, saturating at 0.
    Below(u8),
    Small(u16),
    Any(u64),
}

#[derive(Debug)]
enum Call {
    Consume(Amount),
    Partial(Amount),
    Many(Vec<Amount>),
}

/// Reads the fuzzer's bytes as the module documentation says.
struct Decoder<'a>(&'a [u8]);

impl Decoder<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn amount(&mut self) -> Amount {
        let class = self.byte();
        let value = u64::from_le_bytes(std::array::from_fn(|_| self.byte()));
        match class % 8 {
            0 => Amount::Zero,
            1 => Amount::Max,
            2 => Amount::MaxLimit,
            3 => Amount::Remaining,
            4 => Amount::Above(value as u8),
            5 => Amount::Below(value as u8),
            6 => Amount::Small(value as u16),
            _ => Amount::Any(value),
        }
    }

    fn calls(mut self) -> Vec<Call> {
        let mut calls = Vec::new();
        while !self.0.is_empty() && calls.len() < 64 {
            let header = self.byte();
            calls.push(match header % 3 {
                0 => Call::Consume(self.amount()),
                1 => Call::Partial(self.amount()),
                _ => Call::Many((0..header / 3 % 8).map(|_| self.amount()).collect()),
            });
        }
        calls
    }
}

/// The project being metered and everything granted on it so far.
struct Metered {
    engine: Engine,
    serial: u64,
    name: String,
    handle: ProjectHandle,
    granted: u64,
}

impl Metered {
    fn start() -> Metered {
        let engine = Engine::open(state_dir("amounts")).expect("open the state");
        let (name, handle) = new_project(&engine, 0).expect("create the first project");
        Metered {
            engine,
            serial: 0,
            name,
            handle,
            granted: 0,
        }
    }

    /// Moves on to a fresh project once this one has nothing left, and to a fresh state once
    /// the state's project table is full (after tens of thousands of projects).
    fn renew_if_exhausted(&mut self) {
        if remaining(&self.handle.usage()) > 0 {
            return;
        }
        self.serial += 1;
        (self.name, self.handle) = match new_project(&self.engine, self.serial) {
            Ok(project) => project,
            Err(Error::Capacity { .. }) => {
                self.engine = Engine::open(state_dir("amounts")).expect("open a fresh state");
                new_project(&self.engine, self.serial).expect("create a project")
            }
            Err(e) => panic!("create project {}: {e}", self.serial),
        };
        self.granted = 0;
    }
}

fn new_project(engine: &Engine, serial: u64) -> tollgate_core::Result<(String, ProjectHandle)> {
    let name = format!("amounts-{serial}");
    engine.create_project(&name)?;
    for role in ["active", "reserve"] {
        let key = Key::from_json(&max_key_json(&format!("{name}-{role}"))).expect("a valid key");
        engine.add_key(&name, key)?;
    }
    let handle = engine.project(&name)?;
    Ok((name, handle))
}

/// Bytes the pair can still grant.
fn remaining(u: &Usage) -> u64 {
    let reserve = if u.has_reserved {
        u.reserved_limit - u.reserved_used
    } else {
        0
    };
    u.active_limit - u.active_used + reserve
}

/// Bytes charged to the pair's keys, from its usage: a key leaves the Active slot only once
/// it is used up (these keys never expire), so each switch retired `MAX_LIMIT_BYTES`.
fn charged(u: &Usage) -> u64 {
    u.active_used + u.reserved_used + u.switches * MAX_LIMIT_BYTES
}

fn resolve(amount: Amount, remaining: u64) -> u64 {
    match amount {
        Amount::Zero => 0,
        Amount::Max => u64::MAX,
        Amount::MaxLimit => MAX_LIMIT_BYTES,
        Amount::Remaining => remaining,
        Amount::Above(more) => remaining + 1 + u64::from(more),
        Amount::Below(less) => remaining.saturating_sub(u64::from(less)),
        Amount::Small(n) => n.into(),
        Amount::Any(n) => n,
    }
}

/// Asserts that `error` is the exhaustion refusal of a request for `requested` bytes.
fn assert_exhausted(error: &Refusal, requested: u64, left: u64) {
    match *error {
        Refusal::Exhausted {
            requested: r,
            remaining,
        } => assert_eq!((r, remaining), (requested, left), "{error}"),
        _ => panic!("refused with {error:?}, expected exhaustion"),
    }
}

/// Makes one call; asserts its outcome against what `left` bytes allow and returns the bytes
/// it granted.
fn call(handle: &ProjectHandle, call: &Call, left: u64) -> u64 {
    match call {
        Call::Consume(amount) => {
            let want = resolve(*amount, left);
            let result = handle.consume(want);
            // A request for 0 bytes is a probe: granted exactly while capacity remains.
            let fits = if want == 0 { left > 0 } else { want <= left };
            match result {
                Ok(()) => {
                    assert!(fits, "consume({want}) granted with {left} left");
                    want
                }
                Err(e) => {
                    assert!(!fits, "consume({want}) refused with {left} left: {e}");
                    assert_exhausted(&e, want, left);
                    0
                }
            }
        }
        Call::Partial(amount) => {
            let want = resolve(*amount, left);
            match handle.consume_partial(want) {
                Ok(granted) => {
                    assert!(
                        left > 0,
                        "consume_partial({want}) granted {granted} of nothing"
                    );
                    assert_eq!(
                        granted,
                        want.min(left),
                        "consume_partial({want}), {left} left"
                    );
                    granted
                }
                Err(e) => {
                    assert_eq!(left, 0, "consume_partial({want}) refused: {e}");
                    assert_exhausted(&e, want, 0);
                    0
                }
            }
        }
        Call::Many(amounts) => {
            let amounts: Vec<u64> = amounts.iter().map(|&a| resolve(a, left)).collect();
            // The longest prefix that fits, summed without overflow.
            let mut fit = (0usize, 0u64);
            for &a in &amounts {
                match fit.1.checked_add(a) {
                    Some(sum) if sum <= left => fit = (fit.0 + 1, sum),
                    _ => break,
                }
            }
            let (count, result) = handle.consume_many(&amounts);
            if left == 0 {
                assert_eq!(
                    count, 0,
                    "consume_many({amounts:?}) granted with nothing left"
                );
                if let Err(e) = &result {
                    assert_exhausted(e, amounts.first().copied().unwrap_or(0), 0);
                }
                return 0;
            }
            assert_eq!(count, fit.0, "consume_many({amounts:?}) with {left} left");
            match (amounts.get(count), result) {
                (None, Ok(())) => {}
                (Some(&refused), Err(e)) => assert_exhausted(&e, refused, left - fit.1),
                (next, result) => panic!(
                    "consume_many({amounts:?}) granted {count}, then {result:?} for {next:?}"
                ),
            }
            fit.1
        }
    }
}

static METERED: Mutex<Option<Metered>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let calls = Decoder(data).calls();
    let mut guard = METERED.lock().unwrap_or_else(|e| e.into_inner());
    let metered = guard.get_or_insert_with(Metered::start);
    metered.renew_if_exhausted();
    for c in &calls {
        let before = metered.handle.usage();
        let granted = call(&metered.handle, c, remaining(&before));
        let after = metered.handle.usage();
        assert_eq!(
            charged(&after).checked_sub(charged(&before)),
            Some(granted),
            "{c:?}: usage went from {before:?} to {after:?}"
        );
        metered.granted += granted;
    }
    let keys: u64 = metered
        .engine
        .keys(&metered.name)
        .expect("list the keys")
        .iter()
        .map(|k| k.used)
        .sum();
    assert_eq!(keys, metered.granted, "keys of {} vs grants", metered.name);
});
