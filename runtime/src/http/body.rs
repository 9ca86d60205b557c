//! A message body that may start part-way into its buffer.
//!
//! Two copies per upstream call used to cost more CPU than the merge itself (session-9
//! profile, docs/benchmarks.md#proxy-cpu-s9): a node's answer was copied out of the
//! connection's read buffer (where it arrives behind its head), and the merged answer was
//! copied behind the response head into the write buffer. A [`Body`] is bytes `start..` of a
//! `Vec`, so the client hands the read buffer itself over as the body, and a handler that
//! builds its answer in a [`Body::for_response`] lets the server write the head into the room
//! before it and send both with one `send` and no copy ([`Body::prepend`]).

use std::fmt;
use std::ops::Deref;

/// Room [`Body::for_response`] leaves for the response head the server writes (status line,
/// `content-type`, `content-length`, `x-request-id`, `date`, a few more): a head that does
/// not fit is written the old way, so this is a size, not a limit.
const RESPONSE_HEAD_ROOM: usize = 512;

/// Bytes `start..` of `buf`. Dereferences to the body's bytes; the bytes before `start` are
/// not part of it (a read head, or room reserved for the response head).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Body {
    buf: Vec<u8>,
    start: usize,
}

impl Body {
    /// The bytes of `buf` after its first `start` bytes.
    ///
    /// # Panics
    /// If `start > buf.len()` (a caller bug: the prefix must be in the buffer).
    pub fn after(buf: Vec<u8>, start: usize) -> Body {
        assert!(start <= buf.len(), "body start beyond its buffer");
        Body { buf, start }
    }

    /// An empty body in `buf` (cleared) with `room` bytes before it for a response head,
    /// appended to with [`Body::append`].
    pub fn with_head_room(mut buf: Vec<u8>, room: usize) -> Body {
        buf.clear();
        buf.resize(room, 0);
        Body { buf, start: room }
    }

    /// An empty body to build a response in, in a recycled buffer of at least `capacity`
    /// bytes, with room before it for the response head.
    pub fn for_response(capacity: usize) -> Body {
        Body::with_head_room(
            super::recycle::take(RESPONSE_HEAD_ROOM + capacity),
            RESPONSE_HEAD_ROOM,
        )
    }

    /// The buffer to append body bytes to (its bytes before the body stay untouched as long
    /// as the caller only appends or truncates to at least its current length).
    pub fn append(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The body's bytes.
    pub fn as_slice(&self) -> &[u8] {
        self
    }

    /// Writes `head` into the room just before the body when it fits and returns the buffer
    /// with the offset where the head begins: `buf[at..]` is head + body, sent as one.
    /// Without room, the body comes back unchanged in `Err`.
    pub fn prepend(mut self, head: &[u8]) -> Result<(Vec<u8>, usize), Body> {
        if head.len() > self.start {
            return Err(self);
        }
        let at = self.start - head.len();
        self.buf[at..self.start].copy_from_slice(head);
        Ok((self.buf, at))
    }

    /// The body as a `Vec` of its own bytes (moves them to the front when there is a prefix).
    pub fn into_vec(mut self) -> Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
        }
        self.buf
    }

    /// The whole buffer, prefix included: for [`super::recycle::give`], which keeps only its
    /// capacity.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }
}

impl Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Vec<u8>> for Body {
    fn from(buf: Vec<u8>) -> Body {
        Body { buf, start: 0 }
    }
}

impl From<&[u8]> for Body {
    fn from(b: &[u8]) -> Body {
        Body::from(b.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Body {
    fn from(b: &[u8; N]) -> Body {
        Body::from(b.to_vec())
    }
}

impl From<Body> for Vec<u8> {
    fn from(b: Body) -> Vec<u8> {
        b.into_vec()
    }
}

impl PartialEq<[u8]> for Body {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<&[u8]> for Body {
    fn eq(&self, other: &&[u8]) -> bool {
        **self == **other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Body {
    fn eq(&self, other: &&[u8; N]) -> bool {
        **self == other[..]
    }
}

impl PartialEq<Vec<u8>> for Body {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == other[..]
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Body({:?})", String::from_utf8_lossy(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_head_goes_into_the_room_before_the_body() {
        let mut b = Body::with_head_room(Vec::with_capacity(64), 16);
        b.append().extend_from_slice(b"{}");
        assert_eq!(&*b, b"{}");
        let (buf, at) = b.prepend(b"HEAD\r\n").unwrap();
        assert_eq!(&buf[at..], b"HEAD\r\n{}");
        let small = Body::with_head_room(Vec::new(), 2);
        assert_eq!(&*small.prepend(b"HEAD").unwrap_err(), b"");
    }

    proptest! {
        #[test]
        fn a_body_is_its_buffer_after_the_prefix(
            buf in proptest::collection::vec(any::<u8>(), 0..200),
            start in 0usize..200,
        ) {
            let start = start.min(buf.len());
            let b = Body::after(buf.clone(), start);
            prop_assert_eq!(&*b, &buf[start..]);
            prop_assert_eq!(b.len(), buf.len() - start);
            prop_assert_eq!(b.clone().into_vec(), buf[start..].to_vec());
            prop_assert_eq!(b.into_buffer(), buf);
        }
    }
}
