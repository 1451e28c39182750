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

/// `frames` as written: each alone, or, when `batch`, consecutive text frames
/// joined by newlines into as few as fit in [`MAX_PACKED`] bytes, in order.
/// Without `batch` they are returned as they are (the hot path allocates nothing).
pub(super) fn pack(frames: Vec<WsMessage>, batch: bool) -> Vec<WsMessage> {
    if !batch || frames.len() < 2 {
        return frames;
    }
    let mut packed = Vec::new();
    let mut group = Vec::new();
    let mut len = 0;
    for frame in frames {
        let WsMessage::Text(text) = frame else {
            flush(&mut packed, &mut group);
            packed.push(frame);
            continue;
        };
        if !group.is_empty() && len + 1 + text.len() > MAX_PACKED {
            flush(&mut packed, &mut group);
        }
        len = if group.is_empty() { text.len() } else { len + 1 + text.len() };
        group.push(text);
    }
    flush(&mut packed, &mut group);
    packed
}

/// Moves `group`'s texts into one frame, a line each, onto `packed` (a lone
/// text is not copied).
fn flush(packed: &mut Vec<WsMessage>, group: &mut Vec<Utf8Bytes>) {
    match group.len() {
        0 => return,
        1 => packed.extend(group.pop().map(WsMessage::Text)),
        _ => {
            let len = group.iter().map(|t| t.len() + 1).sum::<usize>();
            let mut joined = String::with_capacity(len);
            for (i, text) in group.iter().enumerate() {
                if i > 0 {
                    joined.push('\n');
                }
                joined.push_str(text.as_str());
            }
            packed.push(WsMessage::Text(joined.into()));
        }
    }
    group.clear();
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

    fn messages(texts: &[Utf8Bytes]) -> Vec<WsMessage> {
        texts.iter().cloned().map(WsMessage::Text).collect()
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
        let frames = pack(messages(&input), false);
        assert_eq!(frames, input.into_iter().map(WsMessage::Text).collect::<Vec<_>>());
    }

    #[test]
    fn with_batch_the_texts_share_one_frame_a_line_each_in_order() {
        let input = texts(&[40, 50, 60]);
        let frames = pack(messages(&input), true);
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
        let frames = pack(messages(&input), true);
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
    fn a_frame_that_is_not_text_ends_a_group_and_goes_alone() {
        let input = texts(&[40, 50, 60]);
        let mut frames = messages(&input);
        frames.insert(2, WsMessage::Ping(Default::default()));
        let packed = pack(frames, true);
        assert_eq!(packed.len(), 3);
        assert_eq!(lines(&packed[..1]).concat().len(), 2);
        assert!(matches!(packed[1], WsMessage::Ping(_)));
        assert_eq!(packed[2], WsMessage::Text(input[2].clone()));
    }

    #[test]
    fn a_lone_text_is_not_copied() {
        let input = texts(&[80]);
        let frames = pack(messages(&input), true);
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
