//! The `avro` decoder, as Trino's: each message is an Avro object container (the writer's
//! schema embedded in it), read with the description's `dataSchema` as the reader schema (so
//! messages written with an older or newer compatible schema still decode). A field's mapping
//! is a slash-separated path through records (and map keys, array indices); unions are
//! looked through.

use std::borrow::Cow;

use apache_avro::Schema;
use apache_avro::types::Value as AvroValue;

use super::{Corrupt, Raw};
use crate::description::FieldSpec;

/// A parsed reader schema and the path of each field.
#[derive(Debug)]
pub(crate) struct AvroPaths {
    schema: Schema,
    paths: Vec<Vec<String>>,
}

impl AvroPaths {
    pub(crate) fn new(schema_text: Option<&str>, fields: &[FieldSpec]) -> Result<Self, String> {
        let text = schema_text.ok_or("the avro format needs a dataSchema (an Avro schema file)")?;
        let schema = Schema::parse_str(text)
            .map_err(|e| format!("dataSchema is not an Avro schema: {e}"))?;
        let paths = fields
            .iter()
            .map(|f| f.path().into_iter().map(str::to_owned).collect())
            .collect();
        Ok(Self { schema, paths })
    }

    pub(crate) fn decode<'a>(&self, data: &'a [u8], out: &mut [Raw<'a>]) -> Result<(), Corrupt> {
        let mut reader =
            apache_avro::Reader::with_schema(&self.schema, data).map_err(|_| Corrupt)?;
        let Some(record) = reader.next() else {
            return Ok(());
        };
        let record = record.map_err(|_| Corrupt)?;
        for (slot, path) in out.iter_mut().zip(&self.paths) {
            *slot = match lookup(&record, path) {
                Some(v) => raw(v)?,
                None => Raw::Null,
            };
        }
        Ok(())
    }
}

fn lookup<'v>(value: &'v AvroValue, path: &[String]) -> Option<&'v AvroValue> {
    let value = match value {
        AvroValue::Union(_, inner) => inner.as_ref(),
        other => other,
    };
    let Some((first, rest)) = path.split_first() else {
        return Some(value);
    };
    let next = match value {
        AvroValue::Record(fields) => fields.iter().find(|(n, _)| n == first).map(|(_, v)| v),
        AvroValue::Map(map) => map.get(first),
        AvroValue::Array(items) => first.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    }?;
    lookup(next, rest)
}

fn raw<'a>(value: &AvroValue) -> Result<Raw<'a>, Corrupt> {
    Ok(match value {
        AvroValue::Null => Raw::Null,
        AvroValue::Boolean(b) => Raw::Bool(*b),
        AvroValue::Int(i) | AvroValue::Date(i) | AvroValue::TimeMillis(i) => {
            Raw::Int(i64::from(*i))
        }
        AvroValue::Long(i) | AvroValue::TimestampMillis(i) | AvroValue::LocalTimestampMillis(i) => {
            Raw::Int(*i)
        }
        AvroValue::TimestampMicros(us) | AvroValue::LocalTimestampMicros(us) => {
            Raw::Int(us.div_euclid(1000))
        }
        AvroValue::TimeMicros(us) => Raw::Int(us.div_euclid(1000)),
        AvroValue::Float(f) => Raw::Float(f64::from(*f)),
        AvroValue::Double(f) => Raw::Float(*f),
        AvroValue::String(s) | AvroValue::Enum(_, s) => Raw::Text(Cow::Owned(s.clone())),
        AvroValue::Uuid(u) => Raw::Text(Cow::Owned(u.to_string())),
        AvroValue::Bytes(b) | AvroValue::Fixed(_, b) => Raw::ByteVec(b.clone()),
        AvroValue::BigDecimal(d) => Raw::Text(Cow::Owned(d.to_string())),
        AvroValue::Union(_, inner) => return raw(inner),
        other => {
            let json = serde_json::Value::try_from(other.clone()).map_err(|_| Corrupt)?;
            Raw::Json(json.to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::decoder::tests::field;
    use crate::decoder::{DataFormat, RowDecoder, Value};
    use crate::description::FieldGroup;
    use crate::encoder::RowEncoder;
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use std::sync::Arc;

    const SCHEMA: &str = r#"{"type": "record", "name": "Order", "fields": [
        {"name": "order_id", "type": "long"},
        {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
            {"name": "name", "type": ["null", "string"]}]}},
        {"name": "quantity", "type": "int"}]}"#;

    #[test]
    fn encodes_and_decodes_container_messages() {
        let group = FieldGroup {
            format: DataFormat::Avro,
            data_schema: Some(SCHEMA.into()),
            fields: vec![
                field("order_id", "bigint", None, None),
                field("name", "varchar", Some("customer/name"), None),
                field("quantity", "integer", None, None),
            ],
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![7])),
            Arc::new(StringArray::from(vec![Some("Ada")])),
            Arc::new(Int64Array::from(vec![3])),
        ];
        let message = RowEncoder::new(&group)
            .expect("encoder")
            .encode(&columns, 0)
            .expect("encode");
        assert!(message.starts_with(b"Obj\x01"), "an object container");
        let decoder = RowDecoder::new(&group).expect("decoder");
        let mut out = vec![];
        decoder
            .decode(Some(&message), &mut out, &mut vec![])
            .expect("decode");
        assert_eq!(
            out,
            vec![Value::Int(7), Value::Text("Ada".into()), Value::Int(3)]
        );
        assert!(
            decoder
                .decode(Some(b"Obj\x01garbage"), &mut out, &mut vec![])
                .is_err()
        );
        let missing = FieldGroup {
            data_schema: None,
            ..group
        };
        assert!(RowDecoder::new(&missing).is_err());
    }
}
