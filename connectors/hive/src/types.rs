//! Hive type names (as the metastore stores them) ↔ Arrow types.
//!
//! | Hive / Trino | Arrow |
//! | --- | --- |
//! | boolean | Boolean |
//! | tinyint, smallint, int/integer, bigint | Int8, Int16, Int32, Int64 |
//! | real/float, double | Float32, Float64 |
//! | decimal(p,s) | Decimal128(p,s) |
//! | string, varchar, varchar(n), char(n) | Utf8 |
//! | binary, varbinary | Binary |
//! | date | Date32 |
//! | timestamp, timestamp(n) | Timestamp(µs) |
//! | array<t> | List(t) |

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};

/// The Hive type name of an Arrow type, or `None` if it has none.
pub fn hive_type(data_type: &DataType) -> Option<String> {
    Some(match data_type {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "int".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::List(f) | DataType::LargeList(f) => {
            format!("array<{}>", hive_type(f.data_type())?)
        }
        _ => return None,
    })
}

/// The Arrow type of a Hive type name, or `None` if it is not supported.
pub fn arrow_type(hive: &str) -> Option<DataType> {
    let t = hive.trim().to_ascii_lowercase();
    let base = t.split('(').next().unwrap_or("").trim();
    Some(match base {
        "boolean" => DataType::Boolean,
        "tinyint" => DataType::Int8,
        "smallint" => DataType::Int16,
        "int" | "integer" => DataType::Int32,
        "bigint" => DataType::Int64,
        "float" | "real" => DataType::Float32,
        "double" => DataType::Float64,
        "string" | "varchar" | "char" => DataType::Utf8,
        "binary" | "varbinary" => DataType::Binary,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "decimal" => {
            let args = t.split_once('(')?.1.trim_end_matches(')');
            let (p, s) = args.split_once(',').unwrap_or((args, "0"));
            DataType::Decimal128(p.trim().parse().ok()?, s.trim().parse().ok()?)
        }
        _ if t.starts_with("array<") && t.ends_with('>') => {
            let inner = arrow_type(&t[6..t.len() - 1])?;
            DataType::List(Arc::new(Field::new("item", inner, true)))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for t in [
            "boolean",
            "tinyint",
            "smallint",
            "int",
            "bigint",
            "float",
            "double",
            "decimal(10,2)",
            "string",
            "binary",
            "date",
            "timestamp",
            "array<bigint>",
        ] {
            let arrow = arrow_type(t).unwrap_or_else(|| panic!("{t}"));
            assert_eq!(hive_type(&arrow).as_deref(), Some(t));
        }
        assert_eq!(arrow_type("varchar(20)"), Some(DataType::Utf8));
        assert_eq!(arrow_type("INTEGER"), Some(DataType::Int32));
        assert_eq!(arrow_type("map<string,int>"), None);
    }
}
