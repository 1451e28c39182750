//! Model-based property test of the in-process claims: random claims,
//! replacements, forgets and recalls on a few keys, against a map. A claim is
//! answered to every later claim of its key (never a second number) for as
//! long as the two generations promise, replaced only from the value it holds,
//! and kept in Redis in a form that reads back the same.

use std::collections::HashMap;

use proptest::prelude::*;

use super::{Claim, IdempotencyKey, Seen};
use crate::ids::{AppId, ChatNumber, MessageNumber};

/// The case budget and seed of `tests/props_support` (`docs/design.md`, "Property tests").
fn budget(cases: u32) -> ProptestConfig {
    let defaults = ProptestConfig::default();
    let set = |name: &str| std::env::var_os(name).is_some();
    ProptestConfig {
        cases: if set("PROPTEST_CASES") { defaults.cases } else { cases },
        rng_seed: if set("PROPTEST_RNG_SEED") {
            defaults.rng_seed
        } else {
            proptest::test_runner::RngSeed::Fixed(0x7765_6674)
        },
        ..defaults
    }
}

/// A small capacity, so that generations turn over within a run.
const CAPACITY: usize = 6;
const KEYS: u8 = 8;

#[derive(Clone, Debug)]
enum Op {
    Claim(u8, Claim),
    /// Replace the key's claim: from the value it holds (`true`) or from another.
    Replace(u8, bool, Claim),
    Forget(u8),
    Recall(u8),
}

fn claim() -> impl Strategy<Value = Claim> {
    (1..4u64, 1..6u64, any::<bool>(), 0..3i64).prop_map(|(chat, seq, committed, at)| Claim {
        chat: ChatNumber(chat),
        seq: MessageNumber(seq),
        committed,
        at,
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..KEYS, claim()).prop_map(|(k, c)| Op::Claim(k, c)),
        2 => (0..KEYS, any::<bool>(), claim()).prop_map(|(k, held, c)| Op::Replace(k, held, c)),
        1 => (0..KEYS).prop_map(Op::Forget),
        2 => (0..KEYS).prop_map(Op::Recall),
    ]
}

fn key(k: u8) -> IdempotencyKey {
    (AppId::new("app"), None, format!("k{k}"))
}

/// What the claims must hold: each key's claim, and when it was recorded.
#[derive(Default)]
struct Model {
    claims: HashMap<u8, (Claim, usize)>,
    /// Claims recorded so far.
    recorded: usize,
}

impl Model {
    /// The key's claim, and whether it must still be there: a claim survives
    /// at least `CAPACITY / 2` later recorded claims (two generations).
    fn get(&self, k: u8) -> Option<(Claim, bool)> {
        self.claims.get(&k).map(|&(claim, at)| (claim, self.recorded - at <= CAPACITY / 2))
    }
}

proptest! {
    #![proptest_config(budget(512))]

    #[test]
    fn claims_follow_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut seen = Seen::default();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Claim(k, claim) => {
                    let earlier = seen.claim(&key(k), claim, CAPACITY);
                    match (model.get(k), earlier) {
                        // The first answer, never a second one.
                        (Some((held, _)), Some(earlier)) => prop_assert_eq!(earlier, held),
                        (Some((_, true)), None) => prop_assert!(false, "k{} forgotten too early", k),
                        (None, Some(earlier)) => prop_assert!(false, "k{} holds {:?} unclaimed", k, earlier),
                        (Some((_, false)) | None, None) => {
                            model.recorded += 1;
                            model.claims.insert(k, (claim, model.recorded));
                        }
                    }
                }
                Op::Replace(k, from_held, new) => {
                    let held = model.get(k);
                    let old = match held {
                        Some((claim, _)) if from_held => claim,
                        Some((claim, _)) => Claim { at: claim.at + 1, ..claim },
                        None => new,
                    };
                    let replaced = seen.replace(&key(k), old, new);
                    match held {
                        Some((claim, must)) if claim == old => {
                            prop_assert!(replaced || !must, "k{} not replaced from the value it held", k);
                            if replaced {
                                if let Some(entry) = model.claims.get_mut(&k) {
                                    entry.0 = new;
                                }
                            } else {
                                // Dropped with its generation meanwhile.
                                model.claims.remove(&k);
                            }
                        }
                        _ => prop_assert!(!replaced, "k{} replaced from a value it did not hold", k),
                    }
                }
                Op::Forget(k) => {
                    seen.forget(&key(k));
                    model.claims.remove(&k);
                }
                Op::Recall(k) => {
                    let recalled = seen.get(&key(k)).copied();
                    match model.get(k) {
                        Some((held, true)) => prop_assert_eq!(recalled, Some(held)),
                        Some((held, false)) => {
                            prop_assert!(recalled.is_none() || recalled == Some(held));
                            if recalled.is_none() {
                                model.claims.remove(&k);
                            }
                        }
                        None => prop_assert_eq!(recalled, None),
                    }
                }
            }
            prop_assert!(seen.current.len() + seen.previous.len() <= CAPACITY);
        }
    }

    /// The Redis form reads back as the claim; any other text reads as nothing or a claim, never a panic.
    #[test]
    fn claims_read_back_from_their_redis_form(
        chat in any::<u64>(),
        seq in any::<u64>(),
        committed in any::<bool>(),
        at in any::<i64>(),
        text in "[PC0-9:-]{0,24}|\\PC{0,16}",
    ) {
        let claim = Claim { chat: ChatNumber(chat), seq: MessageNumber(seq), committed, at };
        prop_assert_eq!(Claim::decode(&claim.encode()), Some(claim));
        let _ = Claim::decode(&text);
    }
}
