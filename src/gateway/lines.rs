//! Batched frames: several frames in one WebSocket text frame, one JSON object
//! a line, for a session that asked for it (`GET /ws?batch=1`, docs/protocol.md,
//! "Batched frames").
//!
//! A session woken for frames takes all its outbox holds; under load that is
//! several. Packed into one WebSocket frame, they cost the client one read,
//! one frame header and one wake-up instead of one each (Centrifugo's JSON
//! protocol does the same). A compact JSON object never holds a raw newline
//! (serde_json escapes it inside strings), so a newline separates them safely.

use axum::extract::ws::{Message as WsMessage, Utf8Bytes};

/// A packed frame grows to this many bytes at most; a frame as large on its own goes alone.
pub(super) const MAX_PACKED: usize = 16 * 1024;

/// The WebSocket frames that carry `texts`, in their order: one each, or, when
/// `batch`, as few as fit in [`MAX_PACKED`] bytes, joined by newlines.
pub(super) fn pack(texts: Vec<Utf8Bytes>, batch: bool) -> Vec<WsMessage> {
    if !batch || texts.len() < 2 {
        return texts.into_iter().map(WsMessage::Text).collect();
    }
    let mut frames = Vec::new();
    let mut start = 0;
    let mut len = 0;
    for (i, text) in texts.iter().enumerate() {
        if i > start && len + 1 + text.len() > MAX_PACKED {
            frames.push(join(&texts[start..i]));
            start = i;
            len = 0;
        }
        len += usize::from(i > start) + text.len();
    }
    if start < texts.len() {
        frames.push(join(&texts[start..]));
    }
    frames
}

/// One frame of `group`'s texts, a line each (a lone text is not copied).
fn join(group: &[Utf8Bytes]) -> WsMessage {
    if let [one] = group {
        return WsMessage::Text(one.clone());
    }
    let len = group.iter().map(|t| t.len() + 1).sum::<usize>();
    let mut joined = String::with_capacity(len);
    for (i, text) in group.iter().enumerate() {
        if i > 0 {
            joined.push('\n');
        }
        joined.push_str(text.as_str());
    }
    WsMessage::Text(joined.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lens: &[usize]) -> Vec<Utf8Bytes> {
        lens.iter()
            .enumerate()
            .map(|(i, &len)| {
                let head = format!("{{\"n\":{i},\"pad\":\"");
                let pad = "x".repeat(len.saturating_sub(head.len() + 2));
                Utf8Bytes::from(format!("{head}{pad}\"}}"))
            })
            .collect()
    }

    fn lines(frames: &[WsMessage]) -> Vec<Vec<String>> {
        frames
            .iter()
            .map(|f| match f {
                WsMessage::Text(t) => t.as_str().split('\n').map(str::to_owned).collect(),
                other => panic!("not a text frame: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn without_batch_each_text_is_its_own_frame() {
        let input = texts(&[40, 50, 60]);
        let frames = pack(input.clone(), false);
        assert_eq!(frames, input.into_iter().map(WsMessage::Text).collect::<Vec<_>>());
    }

    #[test]
    fn with_batch_the_texts_share_one_frame_a_line_each_in_order() {
        let input = texts(&[40, 50, 60]);
        let frames = pack(input.clone(), true);
        assert_eq!(frames.len(), 1);
        let got = lines(&frames).concat();
        let want: Vec<String> = input.iter().map(|t| t.as_str().to_owned()).collect();
        assert_eq!(got, want);
        for line in got {
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert!(value.is_object());
        }
    }

    #[test]
    fn a_packed_frame_stays_within_the_cap_and_an_oversized_text_goes_alone() {
        let input = texts(&[6000, 6000, 6000, 20_000, 100, 100]);
        let frames = pack(input.clone(), true);
        let got = lines(&frames);
        // 6000 + 1 + 6000 fits; a third would not; 20,000 is alone; the last two share.
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1, 1, 2]);
        for frame in &frames {
            let WsMessage::Text(text) = frame else { unreachable!() };
            assert!(text.len() <= MAX_PACKED || !text.contains('\n'));
        }
        let want: Vec<String> = input.iter().map(|t| t.as_str().to_owned()).collect();
        assert_eq!(got.concat(), want);
    }

    #[test]
    fn a_lone_text_is_not_copied() {
        let input = texts(&[80]);
        let frames = pack(input.clone(), true);
        assert_eq!(frames, vec![WsMessage::Text(input[0].clone())]);
    }

    #[test]
    fn an_encoded_server_frame_holds_no_raw_newline() {
        let frame = crate::protocol::ServerFrame::TokenExpiring { expires_at: crate::ids::Timestamp::now() };
        let text = frame.to_text();
        assert!(!text.contains('\n'));
        let with_newline = serde_json::json!({"body": "two\nlines"}).to_string();
        assert!(!with_newline.contains('\n'), "serde_json escapes newlines in strings");
    }
}
