//! Marks the words of a body that a query matched: whole words for a prefix
//! (`hel` marks `Hello`), and the words of a phrase where the phrase occurs.

use std::collections::HashMap;

use super::analysis::{analyze, prefix_of};

/// The analyzed terms of a query, as the highlighter needs them.
#[derive(Clone, Debug, Default)]
pub struct Matched {
    /// Each matches any word it is a prefix of.
    pub prefixes: Vec<String>,
    /// Each is a run of (relative position, term) that must occur together.
    pub phrases: Vec<Vec<(usize, String)>>,
}

/// `body` with the matched words wrapped in `<mark>…</mark>`.
pub fn highlight(body: &str, matched: &Matched) -> String {
    let tokens = analyze(body);
    let mut marked = vec![false; tokens.len()];
    for (i, token) in tokens.iter().enumerate() {
        if matched.prefixes.iter().any(|p| token.text.starts_with(prefix_of(p))) {
            marked[i] = true;
        }
    }
    // Token index by position (positions rise; a skipped overlong word leaves a gap).
    let by_position: HashMap<usize, usize> =
        tokens.iter().enumerate().map(|(i, t)| (t.position, i)).collect();
    for phrase in &matched.phrases {
        for start in &tokens {
            let base = start.position;
            let at = |offset: usize| by_position.get(&(base + offset)).copied();
            let hits: Option<Vec<usize>> = phrase
                .iter()
                .map(|(offset, term)| at(*offset).filter(|&i| tokens[i].text == *term))
                .collect();
            for i in hits.into_iter().flatten() {
                marked[i] = true;
            }
        }
    }
    // Byte ranges to mark, overlapping ones (CJK bigrams) merged.
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for (token, _) in tokens.iter().zip(&marked).filter(|(_, m)| **m) {
        match ranges.last_mut() {
            Some(last) if token.offset_from < last.1 => last.1 = last.1.max(token.offset_to),
            _ => ranges.push((token.offset_from, token.offset_to)),
        }
    }
    let mut out = String::with_capacity(body.len() + ranges.len() * 13);
    let mut at = 0;
    for (from, to) in ranges {
        out.push_str(&body[at..from]);
        out.push_str("<mark>");
        out.push_str(&body[from..to]);
        out.push_str("</mark>");
        at = to;
    }
    out.push_str(&body[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(words: &[&str]) -> Matched {
        Matched { prefixes: words.iter().map(|w| (*w).to_owned()).collect(), phrases: Vec::new() }
    }

    #[test]
    fn prefixes_mark_whole_words_in_the_original_text() {
        assert_eq!(
            highlight("Hello, Café world", &prefixes(&["hel", "cafe"])),
            "<mark>Hello</mark>, <mark>Café</mark> world"
        );
    }

    #[test]
    fn cjk_bigrams_merge_into_one_mark() {
        assert_eq!(highlight("我住在东京都", &prefixes(&["东京", "京都"])), "我住在<mark>东京都</mark>");
    }

    #[test]
    fn phrases_mark_only_where_they_occur() {
        let matched =
            Matched { prefixes: Vec::new(), phrases: vec![vec![(0, "big".into()), (1, "deal".into())]] };
        assert_eq!(highlight("big fish, big deal", &matched), "big fish, <mark>big</mark> <mark>deal</mark>");
    }
}
