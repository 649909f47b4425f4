//! Framing: each frame is a 4-byte **big-endian** length followed by that many bytes of a
//! serialized [`ProtoMessage`](crate::proto::ProtoMessage). Sans-IO: [`FrameDecoder`] is fed bytes
//! as they arrive (any chunking) and yields complete frame bodies; [`encode_frame`] /
//! [`encode_envelope`] produce the bytes to write.
//!
//! **Maximum frame size (our choice; Spotware documents none).** The default,
//! [`DEFAULT_MAX_FRAME_LEN`] = 15,000,000 bytes, is the cap in Spotware's Python SDK, so a server
//! response that SDK accepts we accept too (large `SymbolByIdRes`/`GetTrendbarsRes`/`DealListRes`
//! pages are a few MB at most). The cap is checked on the length prefix *before* buffering, so a
//! hostile or garbage prefix cannot make us allocate. A frame of length 0 is legal (an empty
//! `ProtoMessage` is a valid protobuf encoding but lacks the required `payloadType`, so decoding its
//! envelope fails later with [`crate::proto::DecodeError`]). After a [`FrameError`] the stream is
//! out of sync: the decoder stays failed and the connection must be dropped.

use bytes::{Buf, BufMut, BytesMut};

use crate::proto::Envelope;

/// Default maximum frame body length: 15,000,000 bytes (the Python SDK's cap).
pub const DEFAULT_MAX_FRAME_LEN: usize = 15_000_000;

/// Length of the frame header (the big-endian `u32` body length).
pub const HEADER_LEN: usize = 4;

/// Why a byte stream is not a valid frame sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A length prefix announces a body larger than the configured maximum.
    #[error("frame too long: {len} bytes announced, maximum is {max}")]
    TooLong {
        /// The announced length.
        len: usize,
        /// The decoder's maximum.
        max: usize,
    },
    /// The decoder already failed; the stream cannot be resynchronised.
    #[error("frame stream already failed; the connection must be reset")]
    Poisoned,
}

/// Incremental decoder for length-prefixed frames (sans-IO).
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame_len: usize,
    failed: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames whose body exceeds `max_frame_len` bytes.
    pub fn new(max_frame_len: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_frame_len,
            failed: false,
        }
    }

    /// The configured maximum body length.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame body, `Ok(None)` if more bytes are needed, or an error if the
    /// stream is invalid (then every later call returns [`FrameError::Poisoned`]).
    pub fn next_frame(&mut self) -> Result<Option<BytesMut>, FrameError> {
        if self.failed {
            return Err(FrameError::Poisoned);
        }
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > self.max_frame_len {
            self.failed = true;
            self.buf = BytesMut::new();
            return Err(FrameError::TooLong {
                len,
                max: self.max_frame_len,
            });
        }
        if self.buf.len() < HEADER_LEN + len {
            // Reserve once for the whole frame (bounded by max_frame_len above).
            self.buf.reserve(HEADER_LEN + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        Ok(Some(self.buf.split_to(len)))
    }
}

/// Appends one frame (`body` with its length prefix) to `out`.
///
/// # Panics
/// If `body` is longer than `u32::MAX` bytes (impossible for a frame within any sane maximum).
pub fn encode_frame_into(body: &[u8], out: &mut impl BufMut) {
    let len = u32::try_from(body.len()).expect("frame body longer than u32::MAX");
    out.put_u32(len);
    out.put_slice(body);
}

/// One frame (`body` with its length prefix).
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    encode_frame_into(body, &mut out);
    out
}

/// The frame bytes for an [`Envelope`].
pub fn encode_envelope(env: &Envelope) -> Vec<u8> {
    encode_frame(&env.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn too_long_is_reported_before_buffering() {
        let mut d = FrameDecoder::new(10);
        d.feed(&[0, 0, 0, 11]);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLong { len: 11, max: 10 })
        );
        d.feed(&[1, 2, 3]);
        assert_eq!(d.next_frame(), Err(FrameError::Poisoned));
    }

    #[test]
    fn exact_maximum_is_accepted() {
        let mut d = FrameDecoder::new(3);
        d.feed(&encode_frame(&[7, 8, 9]));
        assert_eq!(d.next_frame().unwrap().unwrap().as_ref(), &[7, 8, 9]);
        assert_eq!(d.next_frame(), Ok(None));
    }

    proptest! {
        #[test]
        fn roundtrip_any_chunking(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
            cuts in proptest::collection::vec(1usize..64, 1..50),
        ) {
            let mut wire = Vec::new();
            for b in &bodies { encode_frame_into(b, &mut wire); }
            let mut d = FrameDecoder::new(300);
            let mut got = Vec::new();
            let mut pos = 0;
            let mut i = 0;
            while pos < wire.len() {
                let n = cuts[i % cuts.len()].min(wire.len() - pos);
                d.feed(&wire[pos..pos + n]);
                pos += n;
                i += 1;
                while let Some(f) = d.next_frame().unwrap() { got.push(f.to_vec()); }
            }
            prop_assert_eq!(got, bodies);
            prop_assert_eq!(d.buffered(), 0);
        }
    }
}
