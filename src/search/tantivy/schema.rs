//! The index's fields and how a [`SearchDoc`] fills them.

use ::tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use ::tantivy::{TantivyDocument, Term};

use super::analysis;
use crate::ids::{AppId, ChatNumber, MessageNumber};
use crate::search::SearchDoc;

/// The fields, resolved once.
#[derive(Clone, Copy, Debug)]
pub struct Fields {
    /// `app/chat/seq`: the unique id that makes indexing idempotent.
    pub id: Field,
    pub app: Field,
    pub chat: Field,
    pub seq: Field,
    pub sender: Field,
    pub created_at: Field,
    /// Whether the message is a reply (`is:thread`).
    pub reply: Field,
    /// The body as whole words with positions (words, phrases); stored for highlights.
    pub words: Field,
    /// The body as the prefixes of its words (partial words).
    pub prefixes: Field,
}

impl Fields {
    /// The schema and its fields.
    pub fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        let words = TextOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(analysis::WORDS)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            )
            .set_stored();
        let prefixes = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(analysis::PREFIXES)
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let fields = Fields {
            id: b.add_text_field("id", STRING),
            app: b.add_text_field("app", STRING),
            chat: b.add_u64_field("chat", INDEXED | FAST | STORED),
            seq: b.add_u64_field("seq", INDEXED | FAST | STORED),
            sender: b.add_text_field("sender", STRING),
            created_at: b.add_i64_field("created_at", INDEXED | FAST),
            reply: b.add_bool_field("reply", INDEXED),
            words: b.add_text_field("words", words),
            prefixes: b.add_text_field("prefixes", prefixes),
        };
        (b.build(), fields)
    }

    /// The id term of a message.
    pub fn id_term(&self, app: &AppId, chat: ChatNumber, seq: MessageNumber) -> Term {
        Term::from_field_text(self.id, &id_text(app, chat, seq))
    }

    /// The document of `doc`.
    pub fn document(&self, doc: &SearchDoc) -> TantivyDocument {
        let mut d = TantivyDocument::default();
        d.add_text(self.id, id_text(&doc.app, doc.chat, doc.seq));
        d.add_text(self.app, doc.app.as_str());
        d.add_u64(self.chat, doc.chat.get());
        d.add_u64(self.seq, doc.seq.get());
        if let Some(sender) = &doc.sender {
            d.add_text(self.sender, sender.as_str());
        }
        d.add_i64(self.created_at, doc.created_at.0);
        d.add_bool(self.reply, doc.reply_to.is_some());
        d.add_text(self.words, &doc.body);
        d.add_text(self.prefixes, &doc.body);
        d
    }
}

/// A message's unique id. Application ids never hold a control character, so
/// the separator is unambiguous.
fn id_text(app: &AppId, chat: ChatNumber, seq: MessageNumber) -> String {
    format!("{}\u{1f}{chat}\u{1f}{seq}", app.as_str())
}
