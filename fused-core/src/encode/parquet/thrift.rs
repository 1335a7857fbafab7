//! A writer of the Thrift compact protocol, the encoding of Parquet's page headers and footer.
//!
//! Only what writing needs: structs with field ids, integers (zigzag varints), binary, bools,
//! lists. Written from the Thrift compact protocol specification.

/// Compact-protocol type codes.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub(super) enum Ty {
    True = 1,
    False = 2,
    Byte = 3,
    I32 = 5,
    I64 = 6,
    Binary = 8,
    List = 9,
    Struct = 12,
}

/// Writes one Thrift value tree into a byte buffer.
pub(super) struct Writer<'a> {
    out: &'a mut Vec<u8>,
    /// The last field id of each open struct (field headers store deltas).
    last: Vec<i16>,
}

impl<'a> Writer<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, last: vec![0] }
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn field(&mut self, id: i16, ty: Ty) {
        let delta = id - self.last.last().copied().unwrap_or(0);
        if (1..=15).contains(&delta) {
            self.out.push(((delta as u8) << 4) | ty as u8);
        } else {
            self.out.push(ty as u8);
            self.zigzag(i64::from(id));
        }
        if let Some(last) = self.last.last_mut() {
            *last = id;
        }
    }

    /// An `i32` field.
    pub(super) fn i32(&mut self, id: i16, v: i32) -> &mut Self {
        self.field(id, Ty::I32);
        self.zigzag(i64::from(v));
        self
    }

    /// An `i64` field.
    pub(super) fn i64(&mut self, id: i16, v: i64) -> &mut Self {
        self.field(id, Ty::I64);
        self.zigzag(v);
        self
    }

    /// An `i8` field (written as one raw byte).
    pub(super) fn i8(&mut self, id: i16, v: i8) -> &mut Self {
        self.field(id, Ty::Byte);
        self.out.push(v as u8);
        self
    }

    /// A `bool` field (the value lives in the type nibble).
    pub(super) fn bool(&mut self, id: i16, v: bool) -> &mut Self {
        self.field(id, if v { Ty::True } else { Ty::False });
        self
    }

    /// A `string` or `binary` field.
    pub(super) fn binary(&mut self, id: i16, v: &[u8]) -> &mut Self {
        self.field(id, Ty::Binary);
        self.varint(v.len() as u64);
        self.out.extend_from_slice(v);
        self
    }

    /// Opens a struct field; close it with [`end`](Self::end).
    pub(super) fn begin(&mut self, id: i16) -> &mut Self {
        self.field(id, Ty::Struct);
        self.last.push(0);
        self
    }

    /// Closes the innermost open struct (or the top-level one).
    pub(super) fn end(&mut self) -> &mut Self {
        self.out.push(0);
        self.last.pop();
        self
    }

    /// Opens a list field of `len` elements of type `elem`.
    pub(super) fn list(&mut self, id: i16, elem: Ty, len: usize) -> &mut Self {
        self.field(id, Ty::List);
        if len < 15 {
            self.out.push(((len as u8) << 4) | elem as u8);
        } else {
            self.out.push(0xF0 | elem as u8);
            self.varint(len as u64);
        }
        self
    }

    /// Starts a struct element of a list; close it with [`end`](Self::end).
    pub(super) fn element(&mut self) -> &mut Self {
        self.last.push(0);
        self
    }

    /// An `i32` list element.
    pub(super) fn elem_i32(&mut self, v: i32) -> &mut Self {
        self.zigzag(i64::from(v));
        self
    }

    /// A `string` list element.
    pub(super) fn elem_binary(&mut self, v: &[u8]) -> &mut Self {
        self.varint(v.len() as u64);
        self.out.extend_from_slice(v);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_encoding_matches_the_spec() {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        // field 1 i32 = -1 (zigzag 1), field 3 (delta 2) string "ab", field 20 (long form) i64 300,
        // field 21 bool true, then stop.
        w.i32(1, -1)
            .binary(3, b"ab")
            .i64(20, 300)
            .bool(21, true)
            .end();
        assert_eq!(
            out,
            vec![
                0x15, 0x01, 0x28, 0x02, b'a', b'b', 0x06, 0x28, 0xD8, 0x04, 0x11, 0x00
            ]
        );

        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        w.list(2, Ty::I32, 16);
        for i in 0..16 {
            w.elem_i32(i);
        }
        w.begin(3).i8(1, 7).end().end();
        assert_eq!(&out[..3], &[0x29, 0xF5, 0x10]);
        assert_eq!(&out[out.len() - 5..], &[0x1C, 0x13, 0x07, 0x00, 0x00]);
    }
}
