//! Property tests of path and query parameters: only the canonical decimal
//! form names a chat or message; any query string gives a page, a range and a
//! reader or `invalid_parameter`.

use proptest::collection::vec;
use proptest::prelude::*;

use super::{ListQuery, MAX_PER_PAGE, chat_number, message_number, positive, user_id};
use crate::api::error::ApiError;
use crate::api::input::props::budget;
use crate::ids::{ChatNumber, MessageNumber};

fn code(e: &ApiError) -> &'static str {
    e.status_and_code().1
}

/// Numbers as clients write them, right and wrong.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        "[0-9]{1,24}",
        "[+ 0-]{0,2}[0-9]{1,4}[ .a-z]{0,2}",
        "\\PC{0,8}",
    ]
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop::sample::select(vec!["page", "per_page", "before", "after", "user", "chat", "q"]);
    vec((name.prop_map(str::to_owned), prop_oneof![number_text(), "[A-Za-z0-9_.@:-]{1,10}"]), 0..6)
}

proptest! {
    #![proptest_config(budget(512))]

    /// A path number is a positive u64 written canonically, else not found.
    #[test]
    fn path_numbers_are_canonical_or_not_found(raw in number_text(), n in 1..=u64::MAX) {
        let canonical = raw.parse::<u64>().ok().filter(|n| *n > 0 && n.to_string() == raw);
        prop_assert_eq!(positive(&raw), canonical);
        match chat_number(&raw) {
            Ok(chat) => prop_assert_eq!(Some(chat.get()), canonical),
            Err(e) => prop_assert_eq!((canonical, code(&e)), (None, "chat_not_found")),
        }
        match message_number(&raw) {
            Ok(seq) => prop_assert_eq!(Some(seq.get()), canonical),
            Err(e) => prop_assert_eq!((canonical, code(&e)), (None, "message_not_found")),
        }
        prop_assert_eq!(chat_number(&n.to_string()).ok(), Some(ChatNumber(n)));
        prop_assert_eq!(message_number(&n.to_string()).ok(), Some(MessageNumber(n)));
    }

    /// A user in a path is a valid id or `invalid_field`.
    #[test]
    fn path_users_are_valid_or_invalid_field(raw in "\\PC{0,12}|[A-Za-z0-9_.@:-]{1,130}") {
        if let Err(e) = user_id(&raw) {
            prop_assert_eq!(code(&e), "invalid_field");
        }
    }

    /// Any list parameters: a page, a range and a reader within bounds, or `invalid_parameter`.
    #[test]
    fn list_queries_are_read_or_invalid_parameter(pairs in pairs()) {
        let query = ListQuery { pairs };
        let refusals = [
            query.page().err(),
            query.message_range().err(),
            query.reader().err(),
            query.positive("chat").err(),
        ];
        for e in refusals.iter().flatten() {
            prop_assert_eq!(code(e), "invalid_parameter", "{:?}", e);
        }
        if let Ok(page) = query.page() {
            prop_assert!((1..=MAX_PER_PAGE).contains(&page.limit));
            prop_assert_eq!(page.skip % page.limit, 0);
        }
        if let Ok(range) = query.message_range() {
            prop_assert!(range.before.is_none_or(|b| b.get() >= 1));
        }
    }

    /// Any raw query string reads as pairs or is refused the way the extractor refuses it.
    #[test]
    fn raw_query_strings_never_panic(raw in "[a-z_=&%0-9+\\[\\]]{0,40}|\\PC{0,20}") {
        if let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(&raw) {
            let query = ListQuery { pairs };
            let _ = (query.page(), query.message_range(), query.reader());
        }
    }
}
