//! Encoders for `INSERT`: each row's described fields become a key and a message in the
//! table's formats (json, csv, raw, avro), the inverse of the decoders, so rows read back equal.

use apache_avro::Schema;
use apache_avro::types::Value as AvroValue;
use arrow::array::ArrayRef;
use chrono::{DateTime, NaiveTime};
use datafusion::common::ScalarValue;

use crate::decoder::{DataFormat, RawField, csv_columns, raw_fields};
use crate::description::{FieldGroup, FieldSpec};
use crate::types::ColumnType;

/// Encodes the key or the message of one topic.
#[derive(Debug)]
pub struct RowEncoder {
    format: DataFormat,
    fields: Vec<FieldSpec>,
    /// Raw: each field's byte range; CSV: each field's column.
    positions: Vec<(usize, Option<usize>)>,
    /// Avro: the `dataSchema` messages are written with.
    avro_schema: Option<Schema>,
}

impl RowEncoder {
    /// An encoder for a described key or message.
    pub fn new(group: &FieldGroup) -> Result<Self, String> {
        // The decoders' own reading of the mappings, so both sides cut messages alike.
        let positions = match group.format {
            DataFormat::Csv => csv_columns(&group.fields)?
                .into_iter()
                .map(|c| (c, None))
                .collect(),
            DataFormat::Raw => raw_fields(&group.fields)?
                .iter()
                .map(RawField::range)
                .collect(),
            DataFormat::Json | DataFormat::Dummy | DataFormat::Avro => vec![],
        };
        let avro_schema = match (group.format, &group.data_schema) {
            (DataFormat::Avro, Some(text)) => Some(
                Schema::parse_str(text)
                    .map_err(|e| format!("dataSchema is not an Avro schema: {e}"))?,
            ),
            (DataFormat::Avro, None) => {
                return Err("the avro format needs a dataSchema (an Avro schema file)".into());
            }
            _ => None,
        };
        Ok(Self {
            format: group.format,
            fields: group.fields.clone(),
            positions,
            avro_schema,
        })
    }

    /// Encodes row `row` of `columns` (one array per field).
    pub fn encode(&self, columns: &[ArrayRef], row: usize) -> Result<Vec<u8>, String> {
        let mut values = Vec::with_capacity(columns.len());
        for c in columns {
            values.push(ScalarValue::try_from_array(c, row).map_err(|e| e.to_string())?);
        }
        match self.format {
            DataFormat::Json => self.json(&values),
            DataFormat::Csv => Ok(self.csv(&values)),
            DataFormat::Raw => self.raw(&values),
            DataFormat::Avro => self.avro(&values),
            DataFormat::Dummy => Ok(vec![]),
        }
    }

    fn json(&self, values: &[ScalarValue]) -> Result<Vec<u8>, String> {
        let mut root = serde_json::Map::new();
        for (f, v) in self.fields.iter().zip(values) {
            let value = json_value(f, v)?;
            let mut segments = f.path();
            let last = segments.pop().unwrap_or_default();
            let mut node = &mut root;
            for s in segments {
                let entry = node
                    .entry(s.to_owned())
                    .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
                node = entry.as_object_mut().ok_or_else(|| {
                    format!(
                        "field '{}': mapping '{}' crosses another field",
                        f.name,
                        f.path().join("/")
                    )
                })?;
            }
            node.insert(last.to_owned(), value);
        }
        serde_json::to_vec(&root).map_err(|e| e.to_string())
    }

    fn csv(&self, values: &[ScalarValue]) -> Vec<u8> {
        let width = self.positions.iter().map(|(c, _)| c + 1).max().unwrap_or(0);
        let mut cells = vec![String::new(); width];
        for ((f, v), (column, _)) in self.fields.iter().zip(values).zip(&self.positions) {
            cells[*column] = text(f, v).unwrap_or_default();
        }
        let line: Vec<String> = cells
            .into_iter()
            .map(|c| {
                if c.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", c.replace('"', "\"\""))
                } else {
                    c
                }
            })
            .collect();
        line.join(",").into_bytes()
    }

    fn raw(&self, values: &[ScalarValue]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        for ((f, v), (start, end)) in self.fields.iter().zip(values).zip(&self.positions) {
            let bytes: Vec<u8> = match f.ty {
                ColumnType::Varchar | ColumnType::Varbinary => match v {
                    ScalarValue::Binary(Some(b)) | ScalarValue::LargeBinary(Some(b)) => b.clone(),
                    other => text(f, other).unwrap_or_default().into_bytes(),
                },
                _ => {
                    let width = end.map(|e| e - start);
                    let format = f
                        .data_format
                        .as_deref()
                        .unwrap_or("BYTE")
                        .to_ascii_uppercase();
                    number_bytes(v, &format).ok_or_else(|| {
                        format!(
                            "field '{}': value {v} cannot be written as raw {format}{}",
                            f.name,
                            width.map(|w| format!(" in {w} bytes")).unwrap_or_default()
                        )
                    })?
                }
            };
            let end = end.unwrap_or(start + bytes.len());
            if bytes.len() != end - start {
                return Err(format!(
                    "field '{}': value takes {} bytes, its mapping {start}:{end} has {}",
                    f.name,
                    bytes.len(),
                    end - start
                ));
            }
            if out.len() < end {
                out.resize(end, 0);
            }
            out[*start..end].copy_from_slice(&bytes);
        }
        Ok(out)
    }

    fn avro(&self, values: &[ScalarValue]) -> Result<Vec<u8>, String> {
        let schema = self
            .avro_schema
            .as_ref()
            .ok_or("the avro format needs a dataSchema")?;
        let leaves: Vec<(Vec<&str>, AvroValue)> = self
            .fields
            .iter()
            .zip(values)
            .map(|(f, v)| (f.path(), avro_value(v)))
            .collect();
        let record = avro_record(schema, &[], &leaves);
        let record = record
            .resolve(schema)
            .map_err(|e| format!("the row does not fit the dataSchema: {e}"))?;
        let mut writer = apache_avro::Writer::new(schema, Vec::new());
        writer.append(record).map_err(|e| e.to_string())?;
        writer.into_inner().map_err(|e| e.to_string())
    }
}

/// The record of `schema` at `prefix`, with the fields' values where their paths lead.
fn avro_record(schema: &Schema, prefix: &[&str], leaves: &[(Vec<&str>, AvroValue)]) -> AvroValue {
    let record = match schema {
        Schema::Record(r) => r,
        Schema::Union(u) => match u.variants().iter().find(|s| matches!(s, Schema::Record(_))) {
            Some(s) => return avro_record(s, prefix, leaves),
            None => return AvroValue::Null,
        },
        _ => return AvroValue::Null,
    };
    let fields = record
        .fields
        .iter()
        .map(|f| {
            let mut path = prefix.to_vec();
            path.push(f.name.as_str());
            let value = match leaves.iter().find(|(p, _)| *p == path) {
                Some((_, v)) => v.clone(),
                None if leaves.iter().any(|(p, _)| p.starts_with(&path)) => {
                    avro_record(&f.schema, &path, leaves)
                }
                None => AvroValue::Null,
            };
            (f.name.clone(), value)
        })
        .collect();
    AvroValue::Record(fields)
}

/// A value in the Avro form that resolves to the schema's type (ints to int or long, days
/// to date, milliseconds to timestamp-millis).
fn avro_value(v: &ScalarValue) -> AvroValue {
    if v.is_null() {
        return AvroValue::Null;
    }
    if let Some(i) = integer(v) {
        return AvroValue::Long(i);
    }
    match v {
        ScalarValue::Float32(Some(x)) => AvroValue::Float(*x),
        ScalarValue::Float64(Some(x)) => AvroValue::Double(*x),
        ScalarValue::Decimal128(Some(_), _, _) => v
            .to_string()
            .parse::<f64>()
            .map_or(AvroValue::Null, AvroValue::Double),
        ScalarValue::Date32(Some(d)) => AvroValue::Int(*d),
        ScalarValue::Binary(Some(b)) | ScalarValue::LargeBinary(Some(b)) => {
            AvroValue::Bytes(b.clone())
        }
        other => match micros(other) {
            Some(us) => AvroValue::Long(us.div_euclid(1000)),
            None => AvroValue::String(match other {
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)) => s.clone(),
                o => o.to_string(),
            }),
        },
    }
}

fn number_bytes(v: &ScalarValue, format: &str) -> Option<Vec<u8>> {
    let float = || -> Option<f64> {
        match v {
            ScalarValue::Float32(Some(f)) => Some(f64::from(*f)),
            ScalarValue::Float64(Some(f)) => Some(*f),
            other => integer(other).map(|i| i as f64),
        }
    };
    Some(match format {
        "BYTE" => i8::try_from(integer(v)?).ok()?.to_be_bytes().to_vec(),
        "SHORT" => i16::try_from(integer(v)?).ok()?.to_be_bytes().to_vec(),
        "INT" => i32::try_from(integer(v)?).ok()?.to_be_bytes().to_vec(),
        "LONG" => integer(v)?.to_be_bytes().to_vec(),
        "FLOAT" => (float()? as f32).to_be_bytes().to_vec(),
        "DOUBLE" => float()?.to_be_bytes().to_vec(),
        _ => return None,
    })
}

fn integer(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Boolean(Some(b)) => Some(i64::from(*b)),
        ScalarValue::Int8(Some(i)) => Some(i64::from(*i)),
        ScalarValue::Int16(Some(i)) => Some(i64::from(*i)),
        ScalarValue::Int32(Some(i)) => Some(i64::from(*i)),
        ScalarValue::Int64(Some(i)) => Some(*i),
        ScalarValue::UInt8(Some(i)) => Some(i64::from(*i)),
        ScalarValue::UInt16(Some(i)) => Some(i64::from(*i)),
        ScalarValue::UInt32(Some(i)) => Some(i64::from(*i)),
        ScalarValue::UInt64(Some(i)) => i64::try_from(*i).ok(),
        _ => None,
    }
}

/// Microseconds since the epoch of a temporal value (days for dates become midnight).
fn micros(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Date32(Some(d)) => Some(i64::from(*d) * 86_400_000_000),
        ScalarValue::Date64(Some(ms)) => Some(ms * 1000),
        ScalarValue::TimestampSecond(Some(s), _) => Some(s * 1_000_000),
        ScalarValue::TimestampMillisecond(Some(ms), _) => Some(ms * 1000),
        ScalarValue::TimestampMicrosecond(Some(us), _) => Some(*us),
        ScalarValue::TimestampNanosecond(Some(ns), _) => Some(ns / 1000),
        ScalarValue::Time64Microsecond(Some(us)) => Some(*us),
        ScalarValue::Time64Nanosecond(Some(ns)) => Some(ns / 1000),
        ScalarValue::Time32Millisecond(Some(ms)) => Some(i64::from(*ms) * 1000),
        ScalarValue::Time32Second(Some(s)) => Some(i64::from(*s) * 1_000_000),
        _ => None,
    }
}

/// A temporal value in the field's `dataFormat`: text, or a number for the epoch formats.
fn temporal(f: &FieldSpec, v: &ScalarValue) -> Option<serde_json::Value> {
    let us = micros(v)?;
    let format = f.data_format.as_deref().map(str::to_ascii_lowercase);
    match format.as_deref() {
        Some("milliseconds-since-epoch") => return Some(us.div_euclid(1000).into()),
        Some("seconds-since-epoch") => return Some(us.div_euclid(1_000_000).into()),
        _ => {}
    }
    let dt = DateTime::from_timestamp_micros(us)?;
    let text = match (format.as_deref(), f.ty) {
        (Some("rfc2822"), _) => dt.to_rfc2822(),
        (Some("custom-date-time"), _) => {
            let pattern = crate::decoder::joda_pattern(f.format_hint.as_deref()?).ok()?;
            dt.format(&pattern).to_string()
        }
        (_, ColumnType::Date) => dt.format("%Y-%m-%d").to_string(),
        (_, ColumnType::Time) => {
            let t = NaiveTime::from_num_seconds_from_midnight_opt(
                (us.rem_euclid(86_400_000_000) / 1_000_000) as u32,
                (us.rem_euclid(1_000_000) * 1000) as u32,
            )?;
            t.format("%H:%M:%S%.6f").to_string()
        }
        (_, ColumnType::TimestampTz { .. }) => dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        _ => dt.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
    };
    Some(text.into())
}

fn json_value(f: &FieldSpec, v: &ScalarValue) -> Result<serde_json::Value, String> {
    if v.is_null() {
        return Ok(serde_json::Value::Null);
    }
    if f.ty.is_temporal() {
        return temporal(f, v).ok_or_else(|| format!("field '{}': {v} is not a {}", f.name, f.ty));
    }
    Ok(match v {
        ScalarValue::Boolean(Some(b)) => (*b).into(),
        ScalarValue::Float32(Some(x)) => {
            serde_json::Number::from_f64(f64::from(*x)).map_or(serde_json::Value::Null, Into::into)
        }
        ScalarValue::Float64(Some(x)) => {
            serde_json::Number::from_f64(*x).map_or(serde_json::Value::Null, Into::into)
        }
        other => match integer(other) {
            Some(i) if !matches!(f.ty, ColumnType::Varchar) => i.into(),
            // Decimals as text keep every digit; the decoder reads them back exactly.
            _ => text(f, other).unwrap_or_default().into(),
        },
    })
}

/// A value as text (CSV cells, varchar fields).
fn text(f: &FieldSpec, v: &ScalarValue) -> Option<String> {
    if v.is_null() {
        return None;
    }
    if f.ty.is_temporal() {
        return temporal(f, v).map(|j| match j {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
    }
    Some(match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => s.clone(),
        ScalarValue::Binary(Some(b)) | ScalarValue::LargeBinary(Some(b)) => {
            String::from_utf8_lossy(b).into_owned()
        }
        other => other.to_string(),
    })
}
