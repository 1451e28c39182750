//! How text becomes terms: one analyzer for whole words (with positions, for
//! words and phrases) and one for the prefixes of those words (edge n-grams).
//!
//! Words are runs of letters and digits; everything else (punctuation, URL
//! syntax, emoji) separates them. Chinese, Japanese and Korean text has no
//! spaces to split on, so a run of those characters becomes its overlapping
//! bigrams (`東京都` → `東京`, `京都`; a lone character stays one term). Terms
//! are lowercased and folded to ASCII (`Café` → `cafe`).

use ::tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The name of the whole-word analyzer in the index's tokenizer manager.
pub const WORDS: &str = "weft_words";
/// The name of the prefix analyzer in the index's tokenizer manager.
pub const PREFIXES: &str = "weft_prefixes";
/// The longest prefix indexed, in characters: a longer query word is cut to
/// this length on the prefix field (and still scores higher where it matches a
/// whole word exactly).
pub const MAX_GRAM: usize = 20;
/// Longer words (in bytes, after folding) are not indexed: base64 blobs, keys.
const MAX_WORD_BYTES: usize = 200;

/// The whole-word analyzer: words and CJK bigrams, lowercased, ASCII-folded.
pub fn words() -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer)
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(RemoveLongFilter::limit(MAX_WORD_BYTES))
        .build()
}

/// The prefix analyzer: every prefix (1..=[`MAX_GRAM`] characters) of every word.
pub fn prefixes() -> TextAnalyzer {
    TextAnalyzer::from(EdgeNgrams { words: words() })
}

/// The analyzed terms of `text`, with positions and byte offsets into it.
pub fn analyze(text: &str) -> Vec<Token> {
    let mut analyzer = words();
    let mut stream = analyzer.token_stream(text);
    let mut tokens = Vec::new();
    while let Some(token) = stream.next() {
        tokens.push(token.clone());
    }
    tokens
}

/// `term` cut to at most [`MAX_GRAM`] characters: what the prefix field holds.
pub fn prefix_of(term: &str) -> &str {
    match term.char_indices().nth(MAX_GRAM) {
        Some((end, _)) => &term[..end],
        None => term,
    }
}

/// Whether `c` belongs to a script written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0x1100..=0x11FF    // Hangul Jamo
        | 0x3130..=0x318F    // Hangul compatibility Jamo
        | 0xFF66..=0xFF9F    // half-width Katakana
        | 0x20000..=0x2FA1F) // CJK Extensions B–F, compatibility supplement
}

/// Splits text into words and CJK bigrams.
#[derive(Clone, Debug)]
struct WordTokenizer;

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = VecTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream {
        VecTokenStream::new(split(text))
    }
}

/// The raw tokens of `text` (not yet lowercased or folded).
fn split(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let push = |tokens: &mut Vec<Token>, from: usize, to: usize| {
        let position = tokens.len();
        tokens.push(Token {
            offset_from: from,
            offset_to: to,
            position,
            text: text[from..to].to_owned(),
            position_length: 1,
        });
    };
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| chars.get(i).map_or(text.len(), |&(at, _)| at);
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if is_cjk(c) {
            let mut j = i;
            while j < chars.len() && is_cjk(chars[j].1) {
                j += 1;
            }
            if j - i == 1 {
                push(&mut tokens, start, end_of(j));
            } else {
                for (k, &(at, _)) in chars.iter().enumerate().take(j - 1).skip(i) {
                    push(&mut tokens, at, end_of(k + 2));
                }
            }
            i = j;
        } else if c.is_alphanumeric() {
            let mut j = i;
            while j < chars.len() && chars[j].1.is_alphanumeric() && !is_cjk(chars[j].1) {
                j += 1;
            }
            push(&mut tokens, start, end_of(j));
            i = j;
        } else {
            i += 1;
        }
    }
    tokens
}

/// Every prefix of every word of the word analyzer, at the word's position.
#[derive(Clone)]
struct EdgeNgrams {
    words: TextAnalyzer,
}

impl Tokenizer for EdgeNgrams {
    type TokenStream<'a> = VecTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream {
        let mut grams = Vec::new();
        let mut stream = self.words.token_stream(text);
        while let Some(word) = stream.next() {
            let ends = word.text.char_indices().map(|(at, _)| at).skip(1).chain([word.text.len()]);
            for end in ends.take(MAX_GRAM) {
                grams.push(Token { text: word.text[..end].to_owned(), ..word.clone() });
            }
        }
        VecTokenStream::new(grams)
    }
}

/// Tokens computed up front.
struct VecTokenStream {
    tokens: Vec<Token>,
    /// One past the current token (0: before the first).
    next: usize,
}

impl VecTokenStream {
    fn new(tokens: Vec<Token>) -> Self {
        Self { tokens, next: 0 }
    }

    fn index(&self) -> usize {
        self.next.saturating_sub(1).min(self.tokens.len().saturating_sub(1))
    }
}

impl TokenStream for VecTokenStream {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.index()]
    }

    fn token_mut(&mut self) -> &mut Token {
        let index = self.index();
        &mut self.tokens[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(mut analyzer: TextAnalyzer, text: &str) -> Vec<String> {
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            out.push(token.text.clone());
        }
        out
    }

    #[test]
    fn words_are_folded_and_split_on_punctuation_and_emoji() {
        assert_eq!(
            terms(words(), "Café, see https://Example.com/a?b=1 🎉ok"),
            ["cafe", "see", "https", "example", "com", "a", "b", "1", "ok"]
        );
    }

    #[test]
    fn cjk_runs_become_bigrams_with_positions_and_offsets() {
        let tokens = analyze("我爱东京 tokyo 京");
        let texts: Vec<_> = tokens.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["我爱", "爱东", "东京", "tokyo", "京"]);
        let positions: Vec<_> = tokens.iter().map(|t| t.position).collect();
        assert_eq!(positions, [0, 1, 2, 3, 4]);
        assert_eq!(&"我爱东京 tokyo 京"[tokens[2].offset_from..tokens[2].offset_to], "东京");
    }

    #[test]
    fn prefixes_stop_at_the_max_gram() {
        assert_eq!(terms(prefixes(), "Héllo"), ["h", "he", "hel", "hell", "hello"]);
        let long = "a".repeat(30);
        assert_eq!(terms(prefixes(), &long).len(), MAX_GRAM);
        assert_eq!(prefix_of(&long).len(), MAX_GRAM);
        assert_eq!(prefix_of("abc"), "abc");
    }
}
