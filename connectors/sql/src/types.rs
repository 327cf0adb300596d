//! Remote column types → Arrow types, and how each is read off the wire.
//! The table in the crate documentation (lib.rs) is the contract; keep the two in step.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::config::UnsupportedTypeHandling;
use crate::dialect::Dialect;

/// How a column's values are decoded from the driver and which Arrow type holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadAs {
    /// `BOOLEAN`, MySQL `TINYINT(1)` → Boolean.
    Bool,
    /// `TINYINT` → Int8.
    I8,
    /// `SMALLINT` → Int16.
    I16,
    /// `INTEGER`, MySQL `MEDIUMINT` → Int32.
    I32,
    /// `BIGINT` → Int64.
    I64,
    /// MySQL `TINYINT UNSIGNED` → Int16 (Trino's widening).
    U8,
    /// MySQL `SMALLINT UNSIGNED` → Int32.
    U16,
    /// MySQL `INT`/`MEDIUMINT UNSIGNED` → Int64.
    U32,
    /// MySQL `BIGINT UNSIGNED` → Decimal(20,0).
    U64,
    /// `REAL`/`FLOAT` → Float32.
    F32,
    /// `DOUBLE` → Float64.
    F64,
    /// `DECIMAL(p,s)` with p ≤ 28, decoded exactly → Decimal128(p,s).
    Decimal {
        /// Precision.
        precision: u8,
        /// Scale.
        scale: i8,
    },
    /// `DECIMAL(p,s)` with 28 < p ≤ 38 (or from SQLite), read as the database's text of the
    /// number and parsed exactly → Decimal128(p,s).
    DecimalText {
        /// Precision.
        precision: u8,
        /// Scale.
        scale: i8,
    },
    /// Character types → Utf8.
    Text,
    /// Binary types → Binary.
    Bytes,
    /// `DATE` → Date32.
    Date,
    /// `TIME` → Time64(µs).
    Time,
    /// `TIMESTAMP` (no zone), MySQL `DATETIME` → Timestamp(µs).
    Timestamp,
    /// `TIMESTAMP WITH TIME ZONE`, MySQL `TIMESTAMP` → Timestamp(µs, UTC).
    TimestampTz,
    /// PostgreSQL arrays of a scalar → List.
    Array(Box<ReadAs>),
}

impl ReadAs {
    /// The Arrow type this column has in Tributary.
    pub fn data_type(&self) -> DataType {
        match self {
            Self::Bool => DataType::Boolean,
            Self::I8 => DataType::Int8,
            Self::I16 | Self::U8 => DataType::Int16,
            Self::I32 | Self::U16 => DataType::Int32,
            Self::I64 | Self::U32 => DataType::Int64,
            Self::U64 => DataType::Decimal128(20, 0),
            Self::F32 => DataType::Float32,
            Self::F64 => DataType::Float64,
            Self::Decimal { precision, scale } | Self::DecimalText { precision, scale } => {
                DataType::Decimal128(*precision, *scale)
            }
            Self::Text => DataType::Utf8,
            Self::Bytes => DataType::Binary,
            Self::Date => DataType::Date32,
            Self::Time => DataType::Time64(TimeUnit::Microsecond),
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Self::Array(element) => {
                DataType::List(Arc::new(Field::new("item", element.data_type(), true)))
            }
        }
    }

    fn decimal(precision: i64, scale: i64) -> Option<Self> {
        let precision = u8::try_from(precision)
            .ok()
            .filter(|p| (1..=38).contains(p))?;
        let scale = i8::try_from(scale)
            .ok()
            .filter(|s| *s >= 0 && *s as u8 <= precision)?;
        Some(if precision <= 28 {
            Self::Decimal { precision, scale }
        } else {
            Self::DecimalText { precision, scale }
        })
    }
}

/// One column of a remote table as its catalog describes it.
#[derive(Debug, Clone, Default)]
pub struct RemoteColumn {
    /// Name in the database.
    pub name: String,
    /// MySQL `DATA_TYPE`, PostgreSQL `typname`, SQLite declared type; lower case.
    pub type_name: String,
    /// MySQL `COLUMN_TYPE` (`int(10) unsigned`, `tinyint(1)`); PostgreSQL `format_type`.
    pub full_type: String,
    /// Numeric precision, where the type has one.
    pub precision: Option<i64>,
    /// Numeric scale, where the type has one.
    pub scale: Option<i64>,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// PostgreSQL: `e` for enums, `b` base types, `d` domains…
    pub type_kind: Option<String>,
    /// PostgreSQL arrays: the element's `typname`.
    pub element_type: Option<String>,
}

/// A mapped column: how to read it, and whether the database must convert it to text first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMapping {
    /// How to decode.
    pub read_as: ReadAs,
    /// Selected as `CAST(col AS text)`: JSON, UUID, enums, or any type under
    /// `unsupported-type-handling=CONVERT_TO_VARCHAR`. Filters on such columns stay in
    /// Tributary.
    pub as_text: bool,
    /// PostgreSQL `char(n)`: values come padded, but the database compares them without
    /// their trailing blanks, so filters on them are not pushed.
    #[serde(default)]
    pub padded: bool,
}

impl ColumnMapping {
    fn native(read_as: ReadAs) -> Option<Self> {
        // Decimals wider than the driver's exact type travel as the database's text.
        let as_text = matches!(read_as, ReadAs::DecimalText { .. });
        Some(Self {
            read_as,
            as_text,
            padded: false,
        })
    }

    fn text() -> Option<Self> {
        Some(Self {
            read_as: ReadAs::Text,
            as_text: true,
            padded: false,
        })
    }
}

/// Maps a remote column; `None` when it is left out (unsupported, handling IGNORE).
pub fn map_column(
    dialect: Dialect,
    column: &RemoteColumn,
    handling: UnsupportedTypeHandling,
) -> Option<ColumnMapping> {
    let mapped = match dialect {
        Dialect::MySql => map_mysql(column),
        Dialect::Postgres => map_postgres(column),
        Dialect::Sqlite => map_sqlite(column),
    };
    mapped.or_else(|| match handling {
        UnsupportedTypeHandling::Ignore => None,
        UnsupportedTypeHandling::ConvertToVarchar => ColumnMapping::text(),
    })
}

fn map_mysql(c: &RemoteColumn) -> Option<ColumnMapping> {
    let unsigned = c.full_type.contains("unsigned");
    let read_as = match c.type_name.as_str() {
        "tinyint" if c.full_type.starts_with("tinyint(1)") && !unsigned => ReadAs::Bool,
        "bool" | "boolean" => ReadAs::Bool,
        "tinyint" if unsigned => ReadAs::U8,
        "tinyint" => ReadAs::I8,
        "smallint" if unsigned => ReadAs::U16,
        "smallint" => ReadAs::I16,
        "mediumint" if unsigned => ReadAs::U32,
        "mediumint" => ReadAs::I32,
        "int" | "integer" if unsigned => ReadAs::U32,
        "int" | "integer" => ReadAs::I32,
        "bigint" if unsigned => ReadAs::U64,
        "bigint" => ReadAs::I64,
        "float" => ReadAs::F32,
        "double" | "real" => ReadAs::F64,
        "decimal" | "numeric" => ReadAs::decimal(c.precision?, c.scale.unwrap_or(0))?,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" => {
            ReadAs::Text
        }
        "json" | "uuid" | "inet4" | "inet6" => return ColumnMapping::text(),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => ReadAs::Bytes,
        "date" => ReadAs::Date,
        "time" => ReadAs::Time,
        "datetime" => ReadAs::Timestamp,
        "timestamp" => ReadAs::TimestampTz,
        _ => return None,
    };
    ColumnMapping::native(read_as)
}

fn postgres_scalar(type_name: &str, c: &RemoteColumn) -> Option<ReadAs> {
    Some(match type_name {
        "bool" => ReadAs::Bool,
        "int2" => ReadAs::I16,
        "int4" => ReadAs::I32,
        "int8" => ReadAs::I64,
        "float4" => ReadAs::F32,
        "float8" => ReadAs::F64,
        // Unbounded NUMERIC has no fixed scale: unsupported, as in Trino's default.
        "numeric" => ReadAs::decimal(c.precision?, c.scale.unwrap_or(0))?,
        "varchar" | "text" | "bpchar" | "name" | "char" => ReadAs::Text,
        "bytea" => ReadAs::Bytes,
        "date" => ReadAs::Date,
        "time" => ReadAs::Time,
        "timestamp" => ReadAs::Timestamp,
        "timestamptz" => ReadAs::TimestampTz,
        _ => return None,
    })
}

fn map_postgres(c: &RemoteColumn) -> Option<ColumnMapping> {
    if let Some(element) = &c.element_type {
        let element = match element.as_str() {
            "bool" => ReadAs::Bool,
            "int2" => ReadAs::I16,
            "int4" => ReadAs::I32,
            "int8" => ReadAs::I64,
            "float4" => ReadAs::F32,
            "float8" => ReadAs::F64,
            "text" | "varchar" | "bpchar" | "name" => ReadAs::Text,
            _ => return None,
        };
        return ColumnMapping::native(ReadAs::Array(Box::new(element)));
    }
    if c.type_kind.as_deref() == Some("e") {
        return ColumnMapping::text();
    }
    match c.type_name.as_str() {
        "json" | "jsonb" | "uuid" | "citext" => ColumnMapping::text(),
        "bpchar" => Some(ColumnMapping {
            read_as: ReadAs::Text,
            as_text: false,
            padded: true,
        }),
        name => ColumnMapping::native(postgres_scalar(name, c)?),
    }
}

/// SQLite: the declared type's affinity (https://sqlite.org/datatype3.html), with the names
/// people declare for dates and decimals honoured.
fn map_sqlite(c: &RemoteColumn) -> Option<ColumnMapping> {
    let t = c.type_name.to_ascii_lowercase();
    let read_as = if t.starts_with("bool") {
        ReadAs::Bool
    } else if t.contains("int") {
        ReadAs::I64
    } else if t.contains("char") || t.contains("clob") || t.contains("text") {
        ReadAs::Text
    } else if t.contains("blob") {
        ReadAs::Bytes
    } else if t.contains("real") || t.contains("floa") || t.contains("doub") {
        ReadAs::F64
    } else if t.starts_with("datetime") || t.starts_with("timestamp") {
        ReadAs::Timestamp
    } else if t.starts_with("date") {
        ReadAs::Date
    } else if t.starts_with("time") {
        ReadAs::Time
    } else if t.starts_with("decimal") || t.starts_with("numeric") {
        let (ReadAs::Decimal { precision, scale } | ReadAs::DecimalText { precision, scale }) =
            ReadAs::decimal(c.precision.unwrap_or(38), c.scale.unwrap_or(0))?
        else {
            return None;
        };
        return Some(ColumnMapping {
            read_as: ReadAs::DecimalText { precision, scale },
            as_text: true,
            padded: false,
        });
    } else {
        // No declared type: values of any kind; read as text.
        return ColumnMapping::text();
    };
    ColumnMapping::native(read_as)
}

/// `decimal(10, 2)` → (10, 2); used for SQLite's declared types.
pub(crate) fn declared_precision(declared: &str) -> (Option<i64>, Option<i64>) {
    let Some((_, rest)) = declared.split_once('(') else {
        return (None, None);
    };
    let inner = rest.trim_end_matches(')');
    let mut parts = inner.split(',').map(|p| p.trim().parse::<i64>().ok());
    (parts.next().flatten(), parts.next().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(type_name: &str, full_type: &str, p: Option<i64>, s: Option<i64>) -> RemoteColumn {
        RemoteColumn {
            name: "c".into(),
            type_name: type_name.into(),
            full_type: full_type.into(),
            precision: p,
            scale: s,
            nullable: true,
            ..Default::default()
        }
    }

    #[test]
    fn mysql_types() {
        let ignore = UnsupportedTypeHandling::Ignore;
        let m = |c: RemoteColumn| map_column(Dialect::MySql, &c, ignore).map(|m| m.read_as);
        assert_eq!(
            m(col("decimal", "decimal(10,2)", Some(10), Some(2))),
            Some(ReadAs::Decimal {
                precision: 10,
                scale: 2
            })
        );
        assert_eq!(
            m(col("tinyint", "tinyint(1)", None, None)),
            Some(ReadAs::Bool)
        );
        assert_eq!(
            m(col("bigint", "bigint(20) unsigned", None, None)).map(|r| r.data_type()),
            Some(DataType::Decimal128(20, 0))
        );
        assert_eq!(m(col("geometry", "geometry", None, None)), None);
        let converted = map_column(
            Dialect::MySql,
            &col("geometry", "geometry", None, None),
            UnsupportedTypeHandling::ConvertToVarchar,
        )
        .expect("converted");
        assert!(converted.as_text);
    }

    #[test]
    fn postgres_types() {
        let ignore = UnsupportedTypeHandling::Ignore;
        let mut array = col("_int4", "integer[]", None, None);
        array.element_type = Some("int4".into());
        let mapped = map_column(Dialect::Postgres, &array, ignore).expect("array");
        assert!(matches!(mapped.read_as.data_type(), DataType::List(_)));
        assert_eq!(
            map_column(
                Dialect::Postgres,
                &col("numeric", "numeric", None, None),
                ignore
            ),
            None
        );
        assert_eq!(declared_precision("DECIMAL(10, 2)"), (Some(10), Some(2)));
    }
}
