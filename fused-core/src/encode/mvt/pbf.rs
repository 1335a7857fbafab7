//! The few Protocol Buffers primitives a vector tile needs: varints, tags, packed fields.

/// Wire type of varint fields.
pub(super) const VARINT: u8 = 0;
/// Wire type of 64-bit fields (doubles).
pub(super) const FIXED64: u8 = 1;
/// Wire type of length-delimited fields (strings, messages, packed arrays).
pub(super) const LEN: u8 = 2;
/// Wire type of 32-bit fields (floats).
pub(super) const FIXED32: u8 = 5;

/// Appends `v` as a base-128 varint.
pub(super) fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends a field's tag.
pub(super) fn tag(buf: &mut Vec<u8>, field: u32, wire: u8) {
    varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

/// Appends a length-delimited field holding `bytes`.
pub(super) fn bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(buf, field, LEN);
    varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// Appends a varint field.
pub(super) fn uint(buf: &mut Vec<u8>, field: u32, v: u64) {
    tag(buf, field, VARINT);
    varint(buf, v);
}

/// Appends a packed repeated `uint32` field (nothing when `values` is empty).
pub(super) fn packed(buf: &mut Vec<u8>, field: u32, values: &[u32]) {
    if values.is_empty() {
        return;
    }
    let len: usize = values.iter().map(|v| varint_len(u64::from(*v))).sum();
    tag(buf, field, LEN);
    varint(buf, len as u64);
    for v in values {
        varint(buf, u64::from(*v));
    }
}

/// Bytes a varint of `v` takes.
pub(super) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros()).div_ceil(7) as usize
}

/// ZigZag encoding of a signed 32-bit delta.
pub(super) fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

/// ZigZag encoding of a signed 64-bit value.
pub(super) fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_the_protobuf_examples() {
        let mut b = Vec::new();
        varint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut b = Vec::new();
            varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
        }
        assert_eq!(zigzag32(0), 0);
        assert_eq!(zigzag32(-1), 1);
        assert_eq!(zigzag32(1), 2);
        assert_eq!(zigzag32(-2), 3);
        assert_eq!(zigzag64(i64::MIN), u64::MAX);
    }
}
