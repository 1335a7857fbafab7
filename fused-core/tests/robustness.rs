//! Hostile input never panics: arbitrary text, JSON and bytes thrown at every parser and
//! decoder a caller can reach.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use fused_core::args::coerce_value;
use fused_core::encode::{decode, decode_npy, decode_output, encode_output};
use fused_core::{MaxAge, Output, ParamKind, RunMetadata, Tile};
use proptest::prelude::*;
use serde_json::Value;

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn any_kind() -> impl Strategy<Value = ParamKind> {
    prop_oneof![
        Just(ParamKind::Int {
            min: None,
            max: None
        }),
        Just(ParamKind::Int {
            min: Some(0.0),
            max: Some(10.0)
        }),
        Just(ParamKind::Float),
        Just(ParamKind::Bool),
        Just(ParamKind::Str { choices: None }),
        Just(ParamKind::Str {
            choices: Some(vec!["a".into(), "b".into()])
        }),
        Just(ParamKind::List {
            items: Box::new(ParamKind::Float)
        }),
        Just(ParamKind::List {
            items: Box::new(ParamKind::Int {
                min: None,
                max: None
            })
        }),
        Just(ParamKind::Object),
        Just(ParamKind::Bounds),
        Just(ParamKind::Any),
    ]
}

proptest! {
    #[test]
    fn max_age_parses_or_refuses(text in ".{0,24}") {
        let _ = MaxAge::parse(&text);
    }

    #[test]
    fn coercion_binds_or_names_the_parameter(v in any_json(), kind in any_kind()) {
        match coerce_value("p", &v, &kind) {
            Ok(out) => {
                // What binds, binds again to itself: coercion is idempotent.
                prop_assert_eq!(coerce_value("p", &out, &kind).unwrap(), out);
            }
            Err(e) => prop_assert!(e.to_string().contains("`p`")),
        }
    }

    #[test]
    fn text_arguments_bind_or_name_the_parameter(text in ".{0,30}", kind in any_kind()) {
        if let Err(e) = coerce_value("q", &Value::String(text), &kind) {
            prop_assert!(e.to_string().contains("`q`"));
        }
    }

    #[test]
    fn decoders_refuse_garbage_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let b = Bytes::from(bytes);
        let _ = decode_output(&b);
        let _ = decode_npy(&b);
        for ct in ["application/json", "application/x-numpy-data", "application/octet-stream", "image/png"] {
            let _ = decode(ct, b.clone());
        }
        let _ = serde_json::from_slice::<RunMetadata>(&b);
    }

    #[test]
    fn truncated_cache_entries_are_errors(v in any_json(), cut in 0usize..64) {
        let enc = encode_output(&Output::Json(v)).unwrap();
        let cut = cut.min(enc.len().saturating_sub(1));
        prop_assert!(decode_output(&enc.slice(..cut)).is_err());
    }

    #[test]
    fn any_tile_numbers_are_checked(x in any::<u64>(), y in any::<u64>(), z in any::<u64>()) {
        if let Ok(t) = Tile::new(x, y, z) {
            prop_assert!(u64::from(t.z) <= 30 && u64::from(t.x) < t.side() && u64::from(t.y) < t.side());
        }
    }
}
