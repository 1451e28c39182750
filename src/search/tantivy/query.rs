//! A [`SearchRequest`] as a tantivy query: the text scores (BM25), the scope
//! and the operators only filter.

use std::ops::Bound;

use ::tantivy::Term;
use ::tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery, TermSetQuery,
};
use ::tantivy::schema::IndexRecordOption;

use super::analysis::{analyze, prefix_of};
use super::highlight::Matched;
use super::schema::Fields;
use crate::search::SearchRequest;

/// The query to run and the terms to highlight; `None` when nothing can match.
pub fn build(fields: &Fields, request: &SearchRequest) -> Option<(Box<dyn Query>, Matched)> {
    let q = &request.query;
    // No attachments exist yet; a chat outside the searcher's chats is never searched.
    if q.has_file || request.chats.is_empty() {
        return None;
    }
    let chats = match q.in_chat {
        Some(chat) if request.chats.contains(&chat) => vec![chat],
        Some(_) => return None,
        None => request.chats.clone(),
    };

    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let mut matched = Matched::default();
    for word in &q.words {
        for token in analyze(word) {
            // A prefix of some word must match; a whole word scores higher.
            let prefix = Term::from_field_text(fields.prefixes, prefix_of(&token.text));
            let whole = Term::from_field_text(fields.words, &token.text);
            let either = BooleanQuery::new(vec![
                (
                    Occur::Must,
                    Box::new(TermQuery::new(prefix, IndexRecordOption::WithFreqs)) as Box<dyn Query>,
                ),
                (Occur::Should, Box::new(TermQuery::new(whole, IndexRecordOption::WithFreqs))),
            ]);
            clauses.push((Occur::Must, Box::new(either)));
            matched.prefixes.push(token.text);
        }
    }
    for phrase in &q.phrases {
        let tokens = analyze(phrase);
        let Some(first) = tokens.first().map(|t| t.position) else {
            continue;
        };
        let terms: Vec<(usize, String)> = tokens.into_iter().map(|t| (t.position - first, t.text)).collect();
        let query: Box<dyn Query> = match terms.as_slice() {
            [(_, only)] => Box::new(TermQuery::new(
                Term::from_field_text(fields.words, only),
                IndexRecordOption::WithFreqs,
            )),
            _ => Box::new(PhraseQuery::new_with_offset(
                terms.iter().map(|(at, term)| (*at, Term::from_field_text(fields.words, term))).collect(),
            )),
        };
        clauses.push((Occur::Must, query));
        matched.phrases.push(terms);
    }
    if clauses.is_empty() && !q.has_no_text() {
        // Text that analyzes to nothing (only emoji or punctuation) matches nothing.
        return None;
    }
    if clauses.is_empty() {
        clauses.push((Occur::Must, Box::new(AllQuery)));
    }

    let filter =
        |query: Box<dyn Query>| (Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0)) as Box<dyn Query>);
    let term = |t: Term| Box::new(TermQuery::new(t, IndexRecordOption::Basic)) as Box<dyn Query>;
    clauses.push(filter(term(Term::from_field_text(fields.app, request.app.as_str()))));
    clauses.push(filter(Box::new(TermSetQuery::new(
        chats.iter().map(|c| Term::from_field_u64(fields.chat, c.get())),
    ))));
    if let Some(sender) = &q.from {
        clauses.push(filter(term(Term::from_field_text(fields.sender, sender.as_str()))));
    }
    if q.is_thread {
        clauses.push(filter(term(Term::from_field_bool(fields.reply, true))));
    }
    if q.after.is_some() || q.before.is_some() {
        let lower = q
            .after
            .map_or(Bound::Unbounded, |t| Bound::Included(Term::from_field_i64(fields.created_at, t.0)));
        let upper = q
            .before
            .map_or(Bound::Unbounded, |t| Bound::Excluded(Term::from_field_i64(fields.created_at, t.0)));
        clauses.push(filter(Box::new(RangeQuery::new(lower, upper))));
    }
    Some((Box::new(BooleanQuery::new(clauses)), matched))
}
