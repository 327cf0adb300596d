//! Column types of topic descriptions: Trino's type names and the Arrow type each becomes.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};

/// A column type as written in a topic description (`bigint`, `varchar(20)`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ColumnType {
    /// `boolean`
    Boolean,
    /// `tinyint`
    TinyInt,
    /// `smallint`
    SmallInt,
    /// `integer` / `int`
    Integer,
    /// `bigint`
    BigInt,
    /// `real`
    Real,
    /// `double`
    Double,
    /// `decimal(p, s)`
    Decimal(u8, i8),
    /// `varchar`, `varchar(n)`, `char(n)`, `json`
    Varchar,
    /// `varbinary`
    Varbinary,
    /// `date`
    Date,
    /// `time`, `time(p)` (microseconds)
    Time,
    /// `timestamp`, `timestamp(p)` (milliseconds up to p = 3, microseconds above)
    Timestamp {
        /// Fractional digits above 3.
        micros: bool,
    },
    /// `timestamp with time zone` (UTC instants)
    TimestampTz {
        /// Fractional digits above 3.
        micros: bool,
    },
}

impl ColumnType {
    /// Parses a Trino type name; `None` when the type is not one a Kafka column can have.
    pub fn parse(text: &str) -> Option<Self> {
        let lower = text.trim().to_ascii_lowercase();
        let (base, args) = match lower.split_once('(') {
            Some((base, rest)) => {
                let (args, tail) = rest.split_once(')')?;
                let base = match tail.trim() {
                    "" => base.trim().to_owned(),
                    tail => format!("{} {tail}", base.trim()),
                };
                (base, Some(args.to_owned()))
            }
            None => (lower.clone(), None),
        };
        let precision = || -> Option<u32> {
            match &args {
                None => Some(3),
                Some(a) => a.trim().parse().ok(),
            }
        };
        let ty = match base.as_str() {
            "boolean" => Self::Boolean,
            "tinyint" => Self::TinyInt,
            "smallint" => Self::SmallInt,
            "integer" | "int" => Self::Integer,
            "bigint" => Self::BigInt,
            "real" => Self::Real,
            "double" => Self::Double,
            "decimal" => {
                let (p, s) = match &args {
                    None => (38, 0),
                    Some(a) => match a.split_once(',') {
                        Some((p, s)) => (p.trim().parse().ok()?, s.trim().parse().ok()?),
                        None => (a.trim().parse().ok()?, 0),
                    },
                };
                if !(1..=38).contains(&p) || s > p as i8 || s < 0 {
                    return None;
                }
                Self::Decimal(p, s)
            }
            "varchar" | "char" | "json" => Self::Varchar,
            "varbinary" => Self::Varbinary,
            "date" => Self::Date,
            "time" => Self::Time,
            "timestamp" | "timestamp without time zone" => Self::Timestamp {
                micros: precision()? > 3,
            },
            "timestamp with time zone" => Self::TimestampTz {
                micros: precision()? > 3,
            },
            _ => return None,
        };
        Some(ty)
    }

    /// The Arrow type of the column.
    pub fn arrow(self) -> DataType {
        match self {
            Self::Boolean => DataType::Boolean,
            Self::TinyInt => DataType::Int8,
            Self::SmallInt => DataType::Int16,
            Self::Integer => DataType::Int32,
            Self::BigInt => DataType::Int64,
            Self::Real => DataType::Float32,
            Self::Double => DataType::Float64,
            Self::Decimal(p, s) => DataType::Decimal128(p, s),
            Self::Varchar => DataType::Utf8,
            Self::Varbinary => DataType::Binary,
            Self::Date => DataType::Date32,
            Self::Time => DataType::Time64(TimeUnit::Microsecond),
            Self::Timestamp { micros } => DataType::Timestamp(unit(micros), None),
            Self::TimestampTz { micros } => {
                DataType::Timestamp(unit(micros), Some(Arc::from("UTC")))
            }
        }
    }

    /// Whether a value of this type is a date or time (decoded with a `dataFormat`).
    pub fn is_temporal(self) -> bool {
        matches!(
            self,
            Self::Date | Self::Time | Self::Timestamp { .. } | Self::TimestampTz { .. }
        )
    }
}

fn unit(micros: bool) -> TimeUnit {
    if micros {
        TimeUnit::Microsecond
    } else {
        TimeUnit::Millisecond
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Boolean => f.write_str("boolean"),
            Self::TinyInt => f.write_str("tinyint"),
            Self::SmallInt => f.write_str("smallint"),
            Self::Integer => f.write_str("integer"),
            Self::BigInt => f.write_str("bigint"),
            Self::Real => f.write_str("real"),
            Self::Double => f.write_str("double"),
            Self::Decimal(p, s) => write!(f, "decimal({p},{s})"),
            Self::Varchar => f.write_str("varchar"),
            Self::Varbinary => f.write_str("varbinary"),
            Self::Date => f.write_str("date"),
            Self::Time => f.write_str("time(6)"),
            Self::Timestamp { micros } => write!(f, "timestamp({})", if *micros { 6 } else { 3 }),
            Self::TimestampTz { micros } => write!(
                f,
                "timestamp({}) with time zone",
                if *micros { 6 } else { 3 }
            ),
        }
    }
}

/// The Arrow type of `_headers`: Trino's `map(varchar, array(varbinary))`.
pub fn headers_type() -> DataType {
    let entries = Fields::from(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new(
            "values",
            DataType::List(Arc::new(Field::new("item", DataType::Binary, true))),
            true,
        ),
    ]);
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trino_type_names() {
        assert_eq!(ColumnType::parse("BIGINT"), Some(ColumnType::BigInt));
        assert_eq!(ColumnType::parse("varchar(20)"), Some(ColumnType::Varchar));
        assert_eq!(
            ColumnType::parse("decimal(10, 2)"),
            Some(ColumnType::Decimal(10, 2))
        );
        assert_eq!(
            ColumnType::parse("timestamp(6) with time zone"),
            Some(ColumnType::TimestampTz { micros: true })
        );
        assert_eq!(
            ColumnType::parse("timestamp"),
            Some(ColumnType::Timestamp { micros: false })
        );
        assert_eq!(ColumnType::parse("array(bigint)"), None);
        assert_eq!(ColumnType::parse("decimal(40,2)"), None);
    }
}
