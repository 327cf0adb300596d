//! Values bound as statement parameters (filter literals, inserted rows): never pasted into
//! SQL text.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DecimalType;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type,
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use datafusion::scalar::ScalarValue;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A parameter value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Value {
    /// NULL of the given kind (PostgreSQL types its parameters).
    Null(NullKind),
    /// Boolean.
    Bool(bool),
    /// Any integer.
    I64(i64),
    /// Any float.
    F64(f64),
    /// Exact decimal, as text (`-12.50`).
    Decimal(String),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 1970-01-01 00:00, no zone.
    Timestamp(i64),
    /// Microseconds since 1970-01-01 00:00 UTC.
    TimestampTz(i64),
}

/// The type a NULL parameter is bound as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum NullKind {
    /// Boolean.
    Bool,
    /// Integer.
    Int,
    /// Float.
    Float,
    /// Decimal.
    Decimal,
    /// Text.
    Text,
    /// Bytes.
    Bytes,
    /// Date.
    Date,
    /// Time.
    Time,
    /// Timestamp.
    Timestamp,
    /// Timestamp with time zone.
    TimestampTz,
}

impl Value {
    /// The value of a literal, where it has a bindable type.
    pub(crate) fn from_scalar(scalar: &ScalarValue) -> Option<Self> {
        use ScalarValue::*;
        Some(match scalar {
            Boolean(Some(b)) => Self::Bool(*b),
            Int8(Some(v)) => Self::I64(i64::from(*v)),
            Int16(Some(v)) => Self::I64(i64::from(*v)),
            Int32(Some(v)) => Self::I64(i64::from(*v)),
            Int64(Some(v)) => Self::I64(*v),
            UInt8(Some(v)) => Self::I64(i64::from(*v)),
            UInt16(Some(v)) => Self::I64(i64::from(*v)),
            UInt32(Some(v)) => Self::I64(i64::from(*v)),
            UInt64(Some(v)) => Self::I64(i64::try_from(*v).ok()?),
            Float32(Some(v)) => Self::F64(f64::from(*v)),
            Float64(Some(v)) => Self::F64(*v),
            Decimal128(Some(v), _, s) => {
                let d = Decimal::try_from_i128_with_scale(*v, u32::try_from(*s).ok()?).ok()?;
                Self::Decimal(d.to_string())
            }
            Utf8(Some(s)) | LargeUtf8(Some(s)) | Utf8View(Some(s)) => Self::Text(s.clone()),
            Binary(Some(b)) | LargeBinary(Some(b)) | BinaryView(Some(b)) => Self::Bytes(b.clone()),
            Date32(Some(d)) => Self::Date(*d),
            Time64Microsecond(Some(t)) => Self::Time(*t),
            TimestampSecond(Some(v), tz) => timestamp(v.checked_mul(1_000_000)?, tz.is_some()),
            TimestampMillisecond(Some(v), tz) => timestamp(v.checked_mul(1000)?, tz.is_some()),
            TimestampMicrosecond(Some(v), tz) => timestamp(*v, tz.is_some()),
            TimestampNanosecond(Some(v), tz) if v % 1000 == 0 => timestamp(v / 1000, tz.is_some()),
            _ => return None,
        })
    }

    /// Row `row` of an array, for INSERT.
    pub(crate) fn from_array(array: &ArrayRef, row: usize) -> Result<Self, String> {
        let kind = null_kind(array.data_type())?;
        if array.is_null(row) {
            return Ok(Self::Null(kind));
        }
        Ok(match array.data_type() {
            DataType::Boolean => Self::Bool(array.as_boolean().value(row)),
            DataType::Int8 => Self::I64(array.as_primitive::<Int8Type>().value(row).into()),
            DataType::Int16 => Self::I64(array.as_primitive::<Int16Type>().value(row).into()),
            DataType::Int32 => Self::I64(array.as_primitive::<Int32Type>().value(row).into()),
            DataType::Int64 => Self::I64(array.as_primitive::<Int64Type>().value(row)),
            DataType::UInt8 => Self::I64(array.as_primitive::<UInt8Type>().value(row).into()),
            DataType::UInt16 => Self::I64(array.as_primitive::<UInt16Type>().value(row).into()),
            DataType::UInt32 => Self::I64(array.as_primitive::<UInt32Type>().value(row).into()),
            DataType::Float32 => Self::F64(array.as_primitive::<Float32Type>().value(row).into()),
            DataType::Float64 => Self::F64(array.as_primitive::<Float64Type>().value(row)),
            DataType::Decimal128(_, s) => {
                let v = array.as_primitive::<Decimal128Type>().value(row);
                Self::Decimal(Decimal128Type::format_decimal(v, 38, *s))
            }
            DataType::Utf8 => Self::Text(array.as_string::<i32>().value(row).to_owned()),
            DataType::LargeUtf8 => Self::Text(array.as_string::<i64>().value(row).to_owned()),
            DataType::Utf8View => Self::Text(array.as_string_view().value(row).to_owned()),
            DataType::Binary => Self::Bytes(array.as_binary::<i32>().value(row).to_vec()),
            DataType::LargeBinary => Self::Bytes(array.as_binary::<i64>().value(row).to_vec()),
            DataType::BinaryView => Self::Bytes(array.as_binary_view().value(row).to_vec()),
            DataType::Date32 => Self::Date(array.as_primitive::<Date32Type>().value(row)),
            DataType::Time64(TimeUnit::Microsecond) => {
                Self::Time(array.as_primitive::<Time64MicrosecondType>().value(row))
            }
            DataType::Timestamp(unit, tz) => {
                let micros = match unit {
                    TimeUnit::Second => array
                        .as_primitive::<TimestampSecondType>()
                        .value(row)
                        .saturating_mul(1_000_000),
                    TimeUnit::Millisecond => array
                        .as_primitive::<TimestampMillisecondType>()
                        .value(row)
                        .saturating_mul(1000),
                    TimeUnit::Microsecond => {
                        array.as_primitive::<TimestampMicrosecondType>().value(row)
                    }
                    TimeUnit::Nanosecond => {
                        array.as_primitive::<TimestampNanosecondType>().value(row) / 1000
                    }
                };
                timestamp(micros, tz.is_some())
            }
            other => return Err(format!("cannot write values of type {other}")),
        })
    }

    /// Shown in EXPLAIN next to the remote SQL.
    pub(crate) fn display(&self) -> String {
        match self {
            Self::Null(_) => "NULL".into(),
            Self::Bool(b) => b.to_string(),
            Self::I64(v) => v.to_string(),
            Self::F64(v) => v.to_string(),
            Self::Decimal(d) => d.clone(),
            Self::Text(s) => format!("'{}'", s.replace('\'', "''")),
            Self::Bytes(b) => format!("<{} bytes>", b.len()),
            Self::Date(_) => self.date().map(|d| d.to_string()).unwrap_or_default(),
            Self::Time(_) => self.time().map(|t| t.to_string()).unwrap_or_default(),
            Self::Timestamp(_) => self.timestamp().map(|t| t.to_string()).unwrap_or_default(),
            Self::TimestampTz(_) => self
                .timestamp_tz()
                .map(|t| t.to_string())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn decimal(&self) -> Option<Decimal> {
        match self {
            Self::Decimal(text) => text.parse().ok(),
            _ => None,
        }
    }

    pub(crate) fn date(&self) -> Option<NaiveDate> {
        match self {
            Self::Date(days) => NaiveDate::from_ymd_opt(1970, 1, 1)?
                .checked_add_signed(chrono::Duration::days(i64::from(*days))),
            _ => None,
        }
    }

    pub(crate) fn time(&self) -> Option<NaiveTime> {
        match self {
            Self::Time(micros) => {
                let secs = u32::try_from(micros.div_euclid(1_000_000)).ok()?;
                let nanos = u32::try_from(micros.rem_euclid(1_000_000) * 1000).ok()?;
                NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
            }
            _ => None,
        }
    }

    pub(crate) fn timestamp(&self) -> Option<NaiveDateTime> {
        match self {
            Self::Timestamp(micros) => {
                DateTime::from_timestamp_micros(*micros).map(|t| t.naive_utc())
            }
            _ => None,
        }
    }

    pub(crate) fn timestamp_tz(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::TimestampTz(micros) => DateTime::from_timestamp_micros(*micros),
            _ => None,
        }
    }
}

fn timestamp(micros: i64, with_zone: bool) -> Value {
    if with_zone {
        Value::TimestampTz(micros)
    } else {
        Value::Timestamp(micros)
    }
}

fn null_kind(data_type: &DataType) -> Result<NullKind, String> {
    use DataType::*;
    Ok(match data_type {
        Boolean => NullKind::Bool,
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 => NullKind::Int,
        Float32 | Float64 => NullKind::Float,
        Decimal128(..) => NullKind::Decimal,
        Utf8 | LargeUtf8 | Utf8View | Null => NullKind::Text,
        Binary | LargeBinary | BinaryView => NullKind::Bytes,
        Date32 => NullKind::Date,
        Time64(TimeUnit::Microsecond) => NullKind::Time,
        Timestamp(_, None) => NullKind::Timestamp,
        Timestamp(_, Some(_)) => NullKind::TimestampTz,
        other => return Err(format!("cannot write values of type {other}")),
    })
}

/// Binds a decimal: exactly (MySQL, PostgreSQL) or as its text (SQLite has no exact type).
macro_rules! bind_decimal {
    ($query:expr, $value:expr, $bad:expr, true) => {
        match $value {
            $crate::value::Value::Decimal(d) => $query.bind(d.clone()),
            _ => $query.bind(None::<String>),
        }
    };
    ($query:expr, $value:expr, $bad:expr, false) => {
        match $value {
            $crate::value::Value::Decimal(_) => {
                $query.bind($value.decimal().ok_or_else(|| $bad("decimal"))?)
            }
            _ => $query.bind(None::<rust_decimal::Decimal>),
        }
    };
}
pub(crate) use bind_decimal;

/// Binds a [`Value`] to an sqlx query of one database. The arms differ only in how each
/// database takes decimals (SQLite has no exact decimal: it gets the text).
macro_rules! bind_value {
    ($query:expr, $value:expr, decimal_as_text = $text:tt) => {{
        let query = $query;
        let value: &$crate::value::Value = $value;
        use $crate::value::{NullKind, Value};
        let bad = |what: &str| format!("{what} {} cannot be bound", value.display());
        match value {
            Value::Null(kind) => match kind {
                NullKind::Bool => query.bind(None::<bool>),
                NullKind::Int => query.bind(None::<i64>),
                NullKind::Float => query.bind(None::<f64>),
                NullKind::Decimal => $crate::value::bind_decimal!(query, value, bad, $text),
                NullKind::Text => query.bind(None::<String>),
                NullKind::Bytes => query.bind(None::<Vec<u8>>),
                NullKind::Date => query.bind(None::<chrono::NaiveDate>),
                NullKind::Time => query.bind(None::<chrono::NaiveTime>),
                NullKind::Timestamp => query.bind(None::<chrono::NaiveDateTime>),
                NullKind::TimestampTz => query.bind(None::<chrono::DateTime<chrono::Utc>>),
            },
            Value::Bool(b) => query.bind(*b),
            Value::I64(v) => query.bind(*v),
            Value::F64(v) => query.bind(*v),
            Value::Decimal(_) => $crate::value::bind_decimal!(query, value, bad, $text),
            Value::Text(s) => query.bind(s.clone()),
            Value::Bytes(b) => query.bind(b.clone()),
            Value::Date(_) => query.bind(value.date().ok_or_else(|| bad("date"))?),
            Value::Time(_) => query.bind(value.time().ok_or_else(|| bad("time"))?),
            Value::Timestamp(_) => query.bind(value.timestamp().ok_or_else(|| bad("timestamp"))?),
            Value::TimestampTz(_) => {
                query.bind(value.timestamp_tz().ok_or_else(|| bad("timestamp"))?)
            }
        }
    }};
}
pub(crate) use bind_value;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn literals_and_rows() {
        assert_eq!(
            Value::from_scalar(&ScalarValue::Decimal128(Some(1250), 10, 2)),
            Some(Value::Decimal("12.50".into()))
        );
        let date = Value::from_scalar(&ScalarValue::Date32(Some(20089))).expect("date");
        assert_eq!(date.display(), "2025-01-01");
        let array: ArrayRef = Arc::new(arrow::array::Int32Array::from(vec![Some(1), None]));
        assert_eq!(Value::from_array(&array, 1), Ok(Value::Null(NullKind::Int)));
        assert_eq!(Value::from_array(&array, 0), Ok(Value::I64(1)));
    }
}
