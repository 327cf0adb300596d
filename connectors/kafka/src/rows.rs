//! Arrow builders for the columns a split reads.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, ListBuilder, MapBuilder,
    MapFieldNames, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, TimeUnit};

use crate::decoder::Value;

/// A builder for one column.
#[derive(Debug)]
pub(crate) enum ColumnBuilder {
    Bool(BooleanBuilder),
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Decimal(Decimal128Builder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    TsMillis(TimestampMillisecondBuilder),
    TsMicros(TimestampMicrosecondBuilder),
    Headers(Box<MapBuilder<StringBuilder, ListBuilder<BinaryBuilder>>>),
}

impl ColumnBuilder {
    /// A builder for `data_type` (one of the types Kafka columns have).
    pub(crate) fn new(data_type: &DataType, capacity: usize) -> Self {
        match data_type {
            DataType::Boolean => Self::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Int8 => Self::I8(Int8Builder::with_capacity(capacity)),
            DataType::Int16 => Self::I16(Int16Builder::with_capacity(capacity)),
            DataType::Int32 => Self::I32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => Self::I64(Int64Builder::with_capacity(capacity)),
            DataType::Float32 => Self::F32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => Self::F64(Float64Builder::with_capacity(capacity)),
            DataType::Decimal128(p, s) => Self::Decimal(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*p, *s)
                    .unwrap_or_default(),
            ),
            DataType::Binary => Self::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            DataType::Date32 => Self::Date(Date32Builder::with_capacity(capacity)),
            DataType::Time64(_) => Self::Time(Time64MicrosecondBuilder::with_capacity(capacity)),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => Self::TsMicros(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone_opt(tz.clone()),
            ),
            DataType::Timestamp(_, tz) => Self::TsMillis(
                TimestampMillisecondBuilder::with_capacity(capacity).with_timezone_opt(tz.clone()),
            ),
            DataType::Map(..) => Self::Headers(Box::new(MapBuilder::new(
                Some(MapFieldNames {
                    entry: "entries".into(),
                    key: "keys".into(),
                    value: "values".into(),
                }),
                StringBuilder::new(),
                ListBuilder::new(BinaryBuilder::new()),
            ))),
            _ => Self::Utf8(StringBuilder::with_capacity(capacity, capacity * 16)),
        }
    }

    /// Appends a converted value (whose kind matches the column's type).
    pub(crate) fn append(&mut self, value: &Value<'_>) {
        match (self, value) {
            (Self::Bool(b), Value::Bool(v)) => b.append_value(*v),
            (Self::I8(b), Value::Int(v)) => b.append_value(*v as i8),
            (Self::I16(b), Value::Int(v)) => b.append_value(*v as i16),
            (Self::I32(b), Value::Int(v)) => b.append_value(*v as i32),
            (Self::I64(b), Value::Int(v)) => b.append_value(*v),
            (Self::F32(b), Value::Float(v)) => b.append_value(*v as f32),
            (Self::F64(b), Value::Float(v)) => b.append_value(*v),
            (Self::Decimal(b), Value::Decimal(v)) => b.append_value(*v),
            (Self::Utf8(b), Value::Text(v)) => b.append_value(v),
            (Self::Binary(b), Value::Bytes(v)) => b.append_value(v),
            (Self::Date(b), Value::Int(v)) => b.append_value(*v as i32),
            (Self::Time(b), Value::Int(v)) => b.append_value(*v),
            (Self::TsMillis(b), Value::Int(v)) => b.append_value(*v),
            (Self::TsMicros(b), Value::Int(v)) => b.append_value(*v),
            (this, _) => this.append_null(),
        }
    }

    pub(crate) fn append_null(&mut self) {
        match self {
            Self::Bool(b) => b.append_null(),
            Self::I8(b) => b.append_null(),
            Self::I16(b) => b.append_null(),
            Self::I32(b) => b.append_null(),
            Self::I64(b) => b.append_null(),
            Self::F32(b) => b.append_null(),
            Self::F64(b) => b.append_null(),
            Self::Decimal(b) => b.append_null(),
            Self::Utf8(b) => b.append_null(),
            Self::Binary(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Time(b) => b.append_null(),
            Self::TsMillis(b) => b.append_null(),
            Self::TsMicros(b) => b.append_null(),
            Self::Headers(b) => {
                let _ = b.append(false);
            }
        }
    }

    /// Appends a message's headers (for `_headers`).
    pub(crate) fn append_headers<'h>(
        &mut self,
        headers: impl Iterator<Item = (&'h str, Option<&'h [u8]>)>,
    ) {
        let Self::Headers(b) = self else {
            return self.append_null();
        };
        // Trino's map(varchar, array(varbinary)): repeated keys gather their values.
        let mut entries: Vec<(&str, Vec<Option<&[u8]>>)> = Vec::new();
        for (key, value) in headers {
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some((_, values)) => values.push(value),
                None => entries.push((key, vec![value])),
            }
        }
        for (key, values) in entries {
            b.keys().append_value(key);
            let list = b.values();
            for v in values {
                list.values().append_option(v);
            }
            list.append(true);
        }
        let _ = b.append(true);
    }

    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Bool(b) => Arc::new(b.finish()),
            Self::I8(b) => Arc::new(b.finish()),
            Self::I16(b) => Arc::new(b.finish()),
            Self::I32(b) => Arc::new(b.finish()),
            Self::I64(b) => Arc::new(b.finish()),
            Self::F32(b) => Arc::new(b.finish()),
            Self::F64(b) => Arc::new(b.finish()),
            Self::Decimal(b) => Arc::new(b.finish()),
            Self::Utf8(b) => Arc::new(b.finish()),
            Self::Binary(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Time(b) => Arc::new(b.finish()),
            Self::TsMillis(b) => Arc::new(b.finish()),
            Self::TsMicros(b) => Arc::new(b.finish()),
            Self::Headers(b) => Arc::new(b.finish()),
        }
    }
}
