//! The case budget and seed every property test runs with (`tests/props_*.rs`).
//!
//! CI runs a fixed budget from a fixed seed, so a run is repeatable and all
//! the property tests together stay well under a minute in a debug build on
//! two cores. `PROPTEST_CASES=N` runs N cases per property instead, and
//! `PROPTEST_RNG_SEED=S` another seed (`docs/design.md`, "Property tests").

use proptest::test_runner::{Config, RngSeed};

/// The seed of every property when `PROPTEST_RNG_SEED` is unset.
pub const SEED: u64 = 0x7765_6674; // "weft"

/// A config running `cases` cases from [`SEED`], unless the environment says otherwise.
pub fn budget(cases: u32) -> Config {
    // `Config::default()` reads `PROPTEST_CASES` and `PROPTEST_RNG_SEED`.
    let defaults = Config::default();
    let set = |name: &str| std::env::var_os(name).is_some();
    Config {
        cases: if set("PROPTEST_CASES") { defaults.cases } else { cases },
        rng_seed: if set("PROPTEST_RNG_SEED") { defaults.rng_seed } else { RngSeed::Fixed(SEED) },
        ..defaults
    }
}
