//! Decoders of keys and messages (Trino's `dataFormat`s): each turns the bytes of one key or
//! message into one value per described field, or reports the message corrupt.
//!
//! Every field of a message is decoded and converted, whichever columns a query reads, so
//! whether a message counts as corrupt never depends on the query.

mod avro;
mod convert;
mod csv;
mod datetime;
mod json;
mod raw;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::description::FieldGroup;
pub use convert::Conversion;
pub(crate) use csv::columns as csv_columns;
pub(crate) use raw::{RawField, fields as raw_fields};

/// A key or message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataFormat {
    /// `json`: a JSON object; fields by slash-separated path.
    Json,
    /// `csv`: one line of comma-separated values; fields by column index.
    Csv,
    /// `raw`: fields by byte range, numbers big-endian.
    Raw,
    /// `avro`.
    Avro,
    /// `dummy`: no fields.
    Dummy,
}

impl DataFormat {
    /// Parses a `dataFormat` name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "json" => Self::Json,
            "csv" => Self::Csv,
            "raw" => Self::Raw,
            "avro" => Self::Avro,
            "dummy" => Self::Dummy,
            _ => return None,
        })
    }
}

/// A value as a decoder found it, before conversion to the column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw<'a> {
    /// Absent or `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer too large for `Int`.
    UInt(u64),
    /// A floating-point number.
    Float(f64),
    /// Text (a JSON string, a CSV field).
    Text(Cow<'a, str>),
    /// Bytes (a raw byte range).
    Bytes(&'a [u8]),
    /// A JSON object or array, as JSON text.
    Json(String),
    /// Bytes decoded into a buffer of their own (Avro bytes and fixed).
    ByteVec(Vec<u8>),
}

/// A value converted to its column's type, ready to append.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// NULL.
    Null,
    /// boolean
    Bool(bool),
    /// Any integer type, and dates (days), times (µs) and timestamps (column unit).
    Int(i64),
    /// real, double
    Float(f64),
    /// decimal, unscaled
    Decimal(i128),
    /// varchar
    Text(Cow<'a, str>),
    /// varbinary
    Bytes(Cow<'a, [u8]>),
}

/// Reusable space for decoding one message after another without allocating: the vectors
/// are borrowed for one message at a time ([`Buffers::lend`]) and given back empty.
#[derive(Debug, Default)]
pub struct Buffers {
    values: Vec<Value<'static>>,
    raws: Vec<Raw<'static>>,
}

impl Buffers {
    /// The buffers, for values borrowing from one message.
    pub fn lend<'a>(&mut self) -> (Vec<Value<'a>>, Vec<Raw<'a>>) {
        (
            std::mem::take(&mut self.values),
            std::mem::take(&mut self.raws),
        )
    }

    /// Takes the buffers back, keeping their allocations.
    pub fn give_back(&mut self, values: Vec<Value<'_>>, raws: Vec<Raw<'_>>) {
        self.values = recycle(values);
        self.raws = recycle(raws);
    }
}

/// An emptied vector as a vector of the same type with another lifetime, in place.
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    // Same size and alignment (only the lifetime differs): std collects in place.
    v.into_iter().map(|_| unreachable_value()).collect()
}

fn unreachable_value<U>() -> U {
    unreachable!("the vector is empty")
}

/// A key or message that does not decode: its row is flagged corrupt, its fields NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// Decodes the key or the message of one topic.
#[derive(Debug)]
pub struct RowDecoder {
    kind: Kind,
    conversions: Vec<Conversion>,
}

#[derive(Debug)]
enum Kind {
    Json(json::JsonPaths),
    Csv(Vec<usize>),
    Raw(Vec<raw::RawField>),
    Avro(Box<avro::AvroPaths>),
    Dummy,
}

impl RowDecoder {
    /// A decoder for a described key or message; the error names the field.
    pub fn new(group: &FieldGroup) -> Result<Self, String> {
        let conversions = group
            .fields
            .iter()
            .map(|f| {
                Conversion::new(
                    f.ty,
                    f.data_format.as_deref(),
                    f.format_hint.as_deref(),
                    group.format,
                )
                .map_err(|e| format!("field '{}': {e}", f.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let kind = match group.format {
            DataFormat::Json => Kind::Json(json::JsonPaths::new(&group.fields)?),
            DataFormat::Csv => Kind::Csv(csv::columns(&group.fields)?),
            DataFormat::Raw => Kind::Raw(raw::fields(&group.fields)?),
            DataFormat::Dummy => {
                if let Some(f) = group.fields.first() {
                    return Err(format!(
                        "field '{}': the dummy format has no fields",
                        f.name
                    ));
                }
                Kind::Dummy
            }
            DataFormat::Avro => Kind::Avro(Box::new(avro::AvroPaths::new(
                group.data_schema.as_deref(),
                &group.fields,
            )?)),
        };
        Ok(Self { kind, conversions })
    }

    /// Number of fields (values written by [`Self::decode`]).
    pub fn len(&self) -> usize {
        self.conversions.len()
    }

    /// Whether the decoder has no fields.
    pub fn is_empty(&self) -> bool {
        self.conversions.is_empty()
    }

    /// Decodes one key or message (`None`: a null key or a tombstone) into `out`, one
    /// value per field. `Err(Corrupt)` means corrupt: `out` is then all NULL. `scratch` is
    /// working space (see [`Buffers`]).
    pub fn decode<'a>(
        &self,
        data: Option<&'a [u8]>,
        out: &mut Vec<Value<'a>>,
        scratch: &mut Vec<Raw<'a>>,
    ) -> Result<(), Corrupt> {
        out.clear();
        let n = self.conversions.len();
        let result = self.decode_inner(data, out, scratch);
        if result.is_err() || out.len() != n {
            out.clear();
            out.resize(n, Value::Null);
        }
        result
    }

    fn decode_inner<'a>(
        &self,
        data: Option<&'a [u8]>,
        out: &mut Vec<Value<'a>>,
        raws: &mut Vec<Raw<'a>>,
    ) -> Result<(), Corrupt> {
        let n = self.conversions.len();
        // Trino: an empty message decodes to NULL fields and is not corrupt.
        let Some(data) = data.filter(|d| !d.iter().all(u8::is_ascii_whitespace)) else {
            out.resize(n, Value::Null);
            return Ok(());
        };
        raws.clear();
        raws.resize(n, Raw::Null);
        match &self.kind {
            Kind::Json(paths) => paths.decode(data, raws)?,
            Kind::Csv(columns) => csv::decode(columns, data, raws)?,
            Kind::Raw(fields) => raw::decode(fields, data, raws)?,
            Kind::Avro(paths) => paths.decode(data, raws)?,
            Kind::Dummy => {}
        }
        for (raw, conversion) in raws.drain(..).zip(&self.conversions) {
            out.push(conversion.convert(raw)?);
        }
        Ok(())
    }
}

/// A Joda-Time pattern as chrono's (for encoders writing `custom-date-time` fields).
pub(crate) fn joda_pattern(joda: &str) -> Result<String, String> {
    datetime::joda_to_chrono(joda)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::description::FieldSpec;
    use crate::types::ColumnType;

    pub(crate) fn field(
        name: &str,
        ty: &str,
        mapping: Option<&str>,
        format: Option<&str>,
    ) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            ty: ColumnType::parse(ty).expect("type"),
            mapping: mapping.map(str::to_owned),
            data_format: format.map(str::to_owned),
            format_hint: None,
            hidden: false,
        }
    }

    #[test]
    fn json_message_of_the_seed() {
        let group = FieldGroup {
            format: DataFormat::Json,
            data_schema: None,
            fields: vec![
                field("order_id", "bigint", None, None),
                field("quantity", "integer", None, None),
                field("order_date", "varchar", None, None),
                field("city", "varchar", Some("customer/address/city"), None),
                field(
                    "placed",
                    "timestamp",
                    Some("ts"),
                    Some("milliseconds-since-epoch"),
                ),
            ],
        };
        let d = RowDecoder::new(&group).expect("decoder");
        let mut out = vec![];
        let msg = br#"{"order_id": 7, "quantity": "12", "order_date": "2025-09-01", "extra": [1, {"a": null}],
            "customer": {"name": "x", "address": {"city": "Oslo"}}, "ts": 1700000000123}"#;
        d.decode(Some(msg), &mut out, &mut vec![]).expect("decodes");
        assert_eq!(
            out,
            vec![
                Value::Int(7),
                Value::Int(12),
                Value::Text("2025-09-01".into()),
                Value::Text("Oslo".into()),
                Value::Int(1_700_000_000_123),
            ]
        );
        for corrupt in [
            &b"{\"order_id\": 7"[..],
            b"not json",
            b"{\"quantity\": \"many\"}",
            b"{\"quantity\": 3000000000}",
        ] {
            assert!(
                d.decode(Some(corrupt), &mut out, &mut vec![]).is_err(),
                "{corrupt:?}"
            );
            assert!(out.iter().all(|v| *v == Value::Null));
        }
        d.decode(Some(b""), &mut out, &mut vec![])
            .expect("empty is not corrupt");
        assert!(out.iter().all(|v| *v == Value::Null));
        d.decode(None, &mut out, &mut vec![])
            .expect("tombstone is not corrupt");
    }

    #[test]
    fn csv_and_raw() {
        let group = FieldGroup {
            format: DataFormat::Csv,
            data_schema: None,
            fields: vec![
                field("id", "bigint", Some("0"), None),
                field("name", "varchar", Some("1"), None),
                field("price", "decimal(10,2)", Some("2"), None),
                field("day", "date", Some("3"), Some("iso8601")),
            ],
        };
        let d = RowDecoder::new(&group).expect("decoder");
        let mut out = vec![];
        d.decode(
            Some(br#"5,"Widget, large",12.5,2025-01-02"#),
            &mut out,
            &mut vec![],
        )
        .expect("csv");
        assert_eq!(
            out,
            vec![
                Value::Int(5),
                Value::Text("Widget, large".into()),
                Value::Decimal(1250),
                Value::Int(20090),
            ]
        );
        let group = FieldGroup {
            format: DataFormat::Raw,
            data_schema: None,
            fields: vec![
                field("a", "integer", Some("0:4"), Some("INT")),
                field("b", "double", Some("4:12"), Some("DOUBLE")),
                field("c", "varchar", Some("12"), Some("BYTE")),
            ],
        };
        let d = RowDecoder::new(&group).expect("decoder");
        let mut msg = 42_i32.to_be_bytes().to_vec();
        msg.extend_from_slice(&2.5_f64.to_be_bytes());
        msg.extend_from_slice(b"hello");
        d.decode(Some(&msg), &mut out, &mut vec![]).expect("raw");
        assert_eq!(
            out,
            vec![
                Value::Int(42),
                Value::Float(2.5),
                Value::Text("hello".into())
            ]
        );
        assert!(d.decode(Some(&msg[..6]), &mut out, &mut vec![]).is_err());
    }
}
