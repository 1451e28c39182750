//! Which message numbers of one chat a socket received: a bitset, so that a
//! duplicate is found in O(1) and the final count check is cheap.

/// The highest message number tracked (beyond it a number counts as an error).
pub const MAX_SEQ: u64 = 1 << 28;

/// A set of message numbers.
#[derive(Clone, Debug, Default)]
pub struct SeqSet {
    words: Vec<u64>,
}

impl SeqSet {
    /// Adds `seq`: `Some(true)` when new, `Some(false)` when already there,
    /// `None` when above [`MAX_SEQ`].
    pub fn insert(&mut self, seq: u64) -> Option<bool> {
        if seq > MAX_SEQ {
            return None;
        }
        let (word, bit) = (usize::try_from(seq / 64).ok()?, seq % 64);
        if word >= self.words.len() {
            self.words.resize((word + 1).next_power_of_two(), 0);
        }
        let fresh = self.words[word] & (1 << bit) == 0;
        self.words[word] |= 1 << bit;
        Some(fresh)
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        usize::try_from(seq / 64)
            .ok()
            .and_then(|word| self.words.get(word))
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    /// The numbers in the set, in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &word)| {
            (0..64u64).filter(move |bit| word & (1 << bit) != 0).map(move |bit| i as u64 * 64 + bit)
        })
    }
}

impl FromIterator<u64> for SeqSet {
    fn from_iter<I: IntoIterator<Item = u64>>(seqs: I) -> Self {
        let mut set = SeqSet::default();
        for seq in seqs {
            set.insert(seq);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_bounds() {
        let mut set = SeqSet::default();
        assert_eq!(set.insert(1), Some(true));
        assert_eq!(set.insert(1000), Some(true));
        assert_eq!(set.insert(1), Some(false));
        assert_eq!(set.insert(MAX_SEQ + 1), None);
        assert!(set.contains(1) && set.contains(1000));
        assert!(!set.contains(2) && !set.contains(u64::MAX));
        assert_eq!(set.iter().collect::<Vec<_>>(), [1, 1000]);
        assert_eq!(SeqSet::from_iter([5, 3, 5]).iter().collect::<Vec<_>>(), [3, 5]);
    }
}
