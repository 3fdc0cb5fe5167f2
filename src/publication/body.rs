//! The assembly of one `/metrics` body from a rendering: the cached poll-time pieces, then the
//! scrape-time tail, either as one gzip member (the cached deflated pieces back to back and a
//! trailer whose CRC is combined from theirs) or plain (cached plain lines, or the deflated
//! copy inflated a chunk at a time as it is sent). Owns [`ScrapeBody`] and its [`Chunks`].
//! Renders nothing itself and caches nothing: what to send comes from the rendering.

use bytes::Bytes;

use super::{Rendered, format_index};
use crate::exposition::Format;
use crate::exposition::deflate::{self, Checksum, Inflater};

/// Plain bytes inflated per chunk of a plain body served from the gzipped copy.
const INFLATE_CHUNK: usize = 256 * 1024;

/// One piece of a body.
#[derive(Debug)]
enum Piece {
    /// Sent as they are.
    Bytes(Bytes),
    /// Compressed samples sent inflated, a chunk at a time.
    Inflate(Bytes),
}

/// A `/metrics` body: its length and its chunks, produced as they are sent.
#[derive(Debug)]
pub struct ScrapeBody {
    /// The body's length in bytes (`Content-Length`).
    pub length: usize,
    pieces: Vec<Piece>,
}

impl IntoIterator for ScrapeBody {
    type Item = Bytes;
    type IntoIter = Chunks;

    fn into_iter(self) -> Chunks {
        Chunks {
            pieces: self.pieces.into_iter(),
            inflating: None,
        }
    }
}

/// The chunks of a [`ScrapeBody`].
#[derive(Debug)]
pub struct Chunks {
    pieces: std::vec::IntoIter<Piece>,
    inflating: Option<Inflater>,
}

impl Iterator for Chunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.inflating.as_mut().and_then(Iterator::next) {
                return Some(chunk);
            }
            self.inflating = None;
            match self.pieces.next()? {
                Piece::Bytes(bytes) => return Some(bytes),
                Piece::Inflate(deflated) => {
                    self.inflating = Some(Inflater::new(deflated, INFLATE_CHUNK));
                }
            }
        }
    }
}

/// The body of `rendered` for a scrape at `now` in `format`, gzipped when `gzip`.
pub(super) fn assemble(rendered: &Rendered, format: Format, gzip: bool, now: f64) -> ScrapeBody {
    let index = format_index(format);
    let tail = rendered.tail(format, now);
    let mut pieces = Vec::with_capacity(4 * rendered.families.len() + 3);
    let mut length = 0;
    let mut push = |piece: Piece, len: usize| {
        length += len;
        pieces.push(piece);
    };
    if gzip {
        let tail = deflate::Piece::compress(&tail);
        let mut checksum = Checksum::default();
        push(Piece::Bytes(Bytes::from_static(&deflate::GZIP_HEADER)), 10);
        for family in &rendered.families {
            let header = &family.header.deflated[index];
            checksum = checksum.then(header.plain).then(family.checksum);
            for piece in std::iter::once(header).chain(&family.deflated) {
                push(Piece::Bytes(piece.deflated.clone()), piece.deflated.len());
            }
        }
        checksum = checksum.then(tail.plain);
        push(Piece::Bytes(tail.deflated.clone()), tail.deflated.len());
        let trailer = deflate::trailer(checksum);
        push(
            Piece::Bytes(Bytes::copy_from_slice(&trailer)),
            trailer.len(),
        );
    } else {
        for family in &rendered.families {
            let header = &family.header.plain[index];
            push(Piece::Bytes(header.clone()), header.len());
            match &family.samples {
                Some(samples) => {
                    for chunk in samples {
                        push(Piece::Bytes(chunk.clone()), chunk.len());
                    }
                }
                None => {
                    for piece in &family.deflated {
                        push(
                            Piece::Inflate(piece.deflated.clone()),
                            piece.plain.len as usize,
                        );
                    }
                }
            }
        }
        let len = tail.len();
        push(Piece::Bytes(Bytes::from(tail)), len);
    }
    ScrapeBody { length, pieces }
}
