//! One gzip member from pieces compressed apart. Each [`Piece`] is raw deflate data that ends
//! byte-aligned (a sync flush, no final block), with the CRC-32 and length of what it holds.
//! Pieces compressed by separate compressors concatenate into one valid deflate stream, so a
//! body is `gzip header + pieces + empty final block + trailer` with the trailer's CRC combined
//! from the pieces': one member, which every client decodes. (Concatenated gzip *members* are
//! valid too, but `curl --compressed` and other zlib-based clients stop after the first one.)
//!
//! Pure: no I/O.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The 10-byte gzip header: deflate, no flags, no time, unknown OS.
pub const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// An empty final block (fixed Huffman, end-of-block only): ends the deflate stream after a sync
/// flush.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// Raw deflate data ending byte-aligned, and the CRC-32 and length of the bytes it holds.
#[derive(Debug, Clone)]
pub struct Piece {
    /// The deflate blocks.
    pub deflated: Bytes,
    /// CRC-32 and length of the plain bytes.
    pub plain: Checksum,
}

impl Piece {
    /// `plain`, compressed as one piece.
    pub fn compress(plain: &[u8]) -> Self {
        Compressor::new().piece(plain)
    }
}

/// The CRC-32 and length of some plain bytes; combinable, so the checksum of a concatenation is
/// known from its parts' without reading them again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksum {
    crc: u32,
    /// The length in bytes.
    pub len: u64,
}

impl Checksum {
    /// The checksum of `self`'s bytes followed by `next`'s.
    pub fn then(self, next: Checksum) -> Checksum {
        let mut crc = crc32fast::Hasher::new_with_initial_len(self.crc, self.len);
        crc.combine(&crc32fast::Hasher::new_with_initial_len(next.crc, next.len));
        Checksum {
            crc: crc.finalize(),
            len: self.len + next.len,
        }
    }
}

/// Compresses pieces one after another, reusing one compressor's memory (its state is a few
/// hundred KiB; each piece still starts from an empty dictionary, so pieces stay independent).
pub struct Compressor {
    compress: Compress,
    out: Vec<u8>,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor").finish_non_exhaustive()
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

impl Compressor {
    /// A compressor at the fast level (level 1: exposition text still compresses ~6-10×).
    pub fn new() -> Self {
        Compressor {
            compress: Compress::new(Compression::fast(), false),
            out: Vec::with_capacity(64 * 1024),
        }
    }

    /// `plain` as one piece: raw deflate ending with a sync flush (byte-aligned, not final).
    pub fn piece(&mut self, plain: &[u8]) -> Piece {
        self.compress.reset();
        self.out.clear();
        let mut input = plain;
        loop {
            if self.out.capacity() - self.out.len() < 1024 {
                self.out.reserve((input.len() / 4).max(16 * 1024));
            }
            let (in_before, out_before) = (self.compress.total_in(), self.out.len());
            self.compress
                .compress_vec(input, &mut self.out, FlushCompress::Sync)
                .expect("deflating into an in-memory buffer cannot fail");
            input = &input[(self.compress.total_in() - in_before) as usize..];
            // zlib's rule: the flush is complete when the call returns with output room to
            // spare; with the output full, call again with more room.
            let room_left = self.out.len() < self.out.capacity();
            let progress = self.compress.total_in() > in_before || self.out.len() > out_before;
            if input.is_empty() && (room_left || !progress) {
                break;
            }
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(plain);
        Piece {
            deflated: Bytes::copy_from_slice(&self.out),
            plain: Checksum {
                crc: crc.finalize(),
                len: plain.len() as u64,
            },
        }
    }
}

/// The end of a gzip member whose plain bytes have `checksum`: the final block, then CRC-32 and
/// length.
pub fn trailer(checksum: Checksum) -> [u8; 10] {
    let mut out = [0u8; 10];
    out[..2].copy_from_slice(&FINAL_BLOCK);
    out[2..6].copy_from_slice(&checksum.crc.to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952).
    out[6..].copy_from_slice(&(checksum.len as u32).to_le_bytes());
    out
}

/// Inflates a piece's deflate data, at most `chunk` plain bytes per call of [`Inflater::next`].
pub struct Inflater {
    decompress: Decompress,
    deflated: Bytes,
    chunk: usize,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater").finish_non_exhaustive()
    }
}

impl Inflater {
    /// Inflates `deflated` (a [`Piece`]'s data).
    pub fn new(deflated: Bytes, chunk: usize) -> Self {
        Inflater {
            decompress: Decompress::new(false),
            deflated,
            chunk: chunk.max(1),
        }
    }
}

impl Iterator for Inflater {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let mut out = Vec::with_capacity(self.chunk);
        while out.len() < out.capacity() {
            let offset = self.decompress.total_in() as usize;
            let before = (self.decompress.total_in(), out.len());
            self.decompress
                .decompress_vec(&self.deflated[offset..], &mut out, FlushDecompress::Sync)
                .expect("inflating deflate data this process wrote cannot fail");
            if (self.decompress.total_in(), out.len()) == before {
                break;
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn text(lines: usize, tag: &str) -> Vec<u8> {
        (0..lines)
            .flat_map(|index| format!("metric_{tag}{{i=\"{index}\"}} {index}\n").into_bytes())
            .collect()
    }

    #[test]
    fn pieces_compressed_apart_make_one_gzip_member_that_decodes_to_their_concatenation() {
        let parts = [
            text(20_000, "a"),
            Vec::new(),
            text(3, "b"),
            text(50_000, "c"),
        ];
        let pieces: Vec<Piece> = parts.iter().map(|part| Piece::compress(part)).collect();
        let mut body = GZIP_HEADER.to_vec();
        for piece in &pieces {
            body.extend_from_slice(&piece.deflated);
        }
        let checksum = pieces
            .iter()
            .fold(Checksum::default(), |sum, piece| sum.then(piece.plain));
        body.extend_from_slice(&trailer(checksum));
        // GzDecoder reads one member and checks its CRC and length.
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(body.as_slice())
            .read_to_end(&mut plain)
            .expect("one valid gzip member");
        assert_eq!(plain, parts.concat());
        let total: usize = parts.iter().map(Vec::len).sum();
        assert!(
            body.len() < total / 3,
            "compressed: {} of {total}",
            body.len()
        );
    }

    #[test]
    fn a_reused_compressor_makes_independent_pieces_that_inflate_in_bounded_chunks() {
        let plain = text(30_000, "x");
        let mut compressor = Compressor::new();
        let first = compressor.piece(b"something else entirely\n");
        let piece = compressor.piece(&plain);
        assert_eq!(piece.plain.len, plain.len() as u64);
        let chunks: Vec<Bytes> = Inflater::new(piece.deflated.clone(), 64 * 1024).collect();
        assert!(chunks.iter().all(|chunk| chunk.len() <= 64 * 1024));
        assert!(chunks.len() > 1);
        assert_eq!(chunks.concat(), plain);
        assert_eq!(
            Inflater::new(first.deflated, 1024)
                .collect::<Vec<_>>()
                .concat(),
            b"something else entirely\n"
        );
        assert_eq!(Inflater::new(Piece::compress(b"").deflated, 10).count(), 0);
    }

    #[test]
    fn the_trailer_of_no_pieces_is_an_empty_member() {
        let mut body = GZIP_HEADER.to_vec();
        body.extend_from_slice(&trailer(Checksum::default()));
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(body.as_slice())
            .read_to_end(&mut plain)
            .expect("an empty gzip member");
        assert!(plain.is_empty());
    }
}
