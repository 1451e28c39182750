//! The wire format: frames are a `u32` big-endian length and the payload; the
//! first frame each way is a hello carrying the node id.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use quinn::RecvStream;

use super::{LinkError, MAX_NODE_ID_BYTES};

/// The start of every hello payload; the node id follows.
const HELLO_MAGIC: &[u8] = b"weft-hello/1 ";

/// A hello is small: the magic and a node id.
pub(super) const HELLO_MAX_BYTES: usize = HELLO_MAGIC.len() + MAX_NODE_ID_BYTES;

/// Appends one frame: its length as a `u32` big-endian, then the payload.
pub(super) fn encode_frame(buf: &mut BytesMut, payload: &[u8]) {
    buf.reserve(4 + payload.len());
    // `send` refuses frames over `max_frame_bytes`, which `check` keeps within u32.
    buf.put_u32(payload.len() as u32);
    buf.extend_from_slice(payload);
}

/// Takes one whole frame off the front of `buf`, if it holds one.
fn decode_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, LinkError> {
    let Some(prefix) = buf.get(..4) else { return Ok(None) };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len > max {
        return Err(LinkError::FrameTooLarge { len, max });
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

pub(super) fn hello_frame(node_id: &str) -> Bytes {
    let mut payload = BytesMut::with_capacity(HELLO_MAGIC.len() + node_id.len());
    payload.extend_from_slice(HELLO_MAGIC);
    payload.extend_from_slice(node_id.as_bytes());
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, &payload);
    buf.freeze()
}

pub(super) fn parse_hello(payload: &[u8]) -> Result<String, LinkError> {
    let id = payload.strip_prefix(HELLO_MAGIC).ok_or(LinkError::BadHello)?;
    let id = std::str::from_utf8(id).map_err(|_| LinkError::BadHello)?;
    if !valid_node_id(id) {
        return Err(LinkError::BadHello);
    }
    Ok(id.to_owned())
}

pub(super) fn valid_node_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_NODE_ID_BYTES && !id.chars().any(char::is_control)
}

/// Frames from a stream, read in chunks and split without copying them again.
pub(super) struct FrameReader {
    recv: RecvStream,
    buf: BytesMut,
    pub(super) max: usize,
}

impl FrameReader {
    pub(super) fn new(recv: RecvStream, max: usize) -> FrameReader {
        FrameReader { recv, buf: BytesMut::new(), max }
    }

    /// The next frame; `None` when the peer finished the stream between frames.
    pub(super) async fn next(&mut self) -> Result<Option<Bytes>, LinkError> {
        loop {
            if let Some(frame) = decode_frame(&mut self.buf, self.max)? {
                return Ok(Some(frame));
            }
            match self.recv.read_chunk(usize::MAX, true).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(LinkError::Truncated),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_whole_or_in_pieces() {
        let mut encoded = BytesMut::new();
        for payload in [&b""[..], b"a", b"hello world"] {
            encode_frame(&mut encoded, payload);
        }
        let encoded = encoded.freeze();
        // Fed one byte at a time, the decoder yields the same frames.
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for byte in encoded.iter() {
            buf.put_u8(*byte);
            while let Some(frame) = decode_frame(&mut buf, 64).unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames, [&b""[..], b"a", b"hello world"]);
        assert!(buf.is_empty());
    }

    #[test]
    fn an_oversized_length_is_refused_before_its_payload_arrives() {
        let mut buf = BytesMut::new();
        buf.put_u32(65);
        assert!(matches!(decode_frame(&mut buf, 64), Err(LinkError::FrameTooLarge { len: 65, max: 64 })));
    }

    #[test]
    fn hellos_carry_a_valid_node_id() {
        let frame = hello_frame("node-1");
        let payload = decode_frame(&mut BytesMut::from(&frame[..]), HELLO_MAX_BYTES).unwrap().unwrap();
        assert_eq!(parse_hello(&payload).unwrap(), "node-1");
        assert!(parse_hello(b"weft-hello/1 ").is_err());
        assert!(parse_hello(b"weft-hello/2 node-1").is_err());
        assert!(parse_hello(b"weft-hello/1 a\nb").is_err());
        assert!(parse_hello(&[HELLO_MAGIC, &[0xff]].concat()).is_err());
        assert!(!valid_node_id(&"x".repeat(MAX_NODE_ID_BYTES + 1)));
    }
}
