//! What differs between the databases: identifier quoting, parameter markers, DDL types and
//! which comparisons they evaluate exactly as Tributary does.

use arrow::datatypes::{DataType, TimeUnit};

/// A database flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MySQL and MariaDB.
    MySql,
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// How far a comparison on a column evaluated by the database can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exactness {
    /// The database returns exactly the rows Tributary would keep.
    Exact,
    /// The database returns a superset (e.g. MySQL's case-insensitive `=`); Tributary
    /// filters again.
    Superset,
    /// Not pushed down.
    No,
}

impl Dialect {
    /// The `connector.name` this dialect is configured under (MariaDB shares MySQL's).
    pub fn connector_name(self) -> &'static str {
        match self {
            Self::MySql => "mysql",
            Self::Postgres => "postgresql",
            Self::Sqlite => "sqlite",
        }
    }

    pub(crate) fn url_example(self) -> &'static str {
        match self {
            Self::MySql => "jdbc:mysql://host:3306/database",
            Self::Postgres => "jdbc:postgresql://host:5432/database",
            Self::Sqlite => "jdbc:sqlite:/path/to/file.db",
        }
    }

    pub(crate) fn url_schemes(self) -> &'static [&'static str] {
        match self {
            Self::MySql => &["mysql", "mariadb"],
            Self::Postgres => &["postgresql", "postgres"],
            Self::Sqlite => &["sqlite"],
        }
    }

    pub(crate) fn default_port(self) -> u16 {
        match self {
            Self::MySql => 3306,
            Self::Postgres => 5432,
            Self::Sqlite => 0,
        }
    }

    /// Quotes an identifier so that any character in it, quotes included, is only a name.
    pub fn quote(self, identifier: &str) -> String {
        let q = match self {
            Self::MySql => '`',
            Self::Postgres | Self::Sqlite => '"',
        };
        let mut out = String::with_capacity(identifier.len() + 2);
        out.push(q);
        for c in identifier.chars() {
            if c == q {
                out.push(q);
            }
            out.push(c);
        }
        out.push(q);
        out
    }

    /// `schema.table`, quoted (SQLite has one schema, `main`).
    pub fn table_name(self, schema: &str, table: &str) -> String {
        format!("{}.{}", self.quote(schema), self.quote(table))
    }

    /// An SQL expression converted to text by the database.
    pub(crate) fn as_text(self, expr: &str) -> String {
        match self {
            Self::MySql => format!("CAST({expr} AS CHAR)"),
            Self::Postgres | Self::Sqlite => format!("CAST({expr} AS TEXT)"),
        }
    }

    /// The marker of the `n`th (1-based) bound parameter.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Self::MySql | Self::Sqlite => "?".to_owned(),
            Self::Postgres => format!("${n}"),
        }
    }

    /// Most parameters one statement may bind.
    pub(crate) fn max_parameters(self) -> usize {
        match self {
            Self::MySql | Self::Postgres => 65_535,
            Self::Sqlite => 32_766,
        }
    }

    /// How exactly the database compares values of a column of this type with `op`
    /// (`=`, `<>`, `<`, `<=`, `>`, `>=`, `LIKE`).
    pub(crate) fn comparison(self, data_type: &DataType, op: &str) -> Exactness {
        let text = matches!(
            data_type,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        );
        if !text {
            return match (data_type, op) {
                (DataType::Float32 | DataType::Float64, _) if self == Self::MySql => {
                    // MySQL stores no NaN and compares floats like we do.
                    Exactness::Exact
                }
                (_, "LIKE") => Exactness::No,
                // SQLite has no exact decimals: a DECIMAL column holds REAL values.
                (DataType::Decimal128(..), _) if self == Self::Sqlite => Exactness::No,
                _ => Exactness::Exact,
            };
        }
        match self {
            // Default collations are case- and trailing-space-insensitive: `=`, IN and LIKE
            // match a superset; ordering differs.
            Self::MySql => match op {
                "=" | "LIKE" => Exactness::Superset,
                _ => Exactness::No,
            },
            // Deterministic collations: equality is exact; ordering follows the locale.
            Self::Postgres => match op {
                "=" | "<>" | "LIKE" => Exactness::Exact,
                _ => Exactness::No,
            },
            // BINARY collation orders by bytes as we do; LIKE ignores ASCII case.
            Self::Sqlite => match op {
                "LIKE" => Exactness::Superset,
                _ => Exactness::Exact,
            },
        }
    }

    /// The column type `CREATE TABLE` uses for an Arrow type (Trino's write mappings).
    pub fn ddl_type(self, data_type: &DataType) -> Option<String> {
        use DataType::*;
        let (mysql, postgres, sqlite): (String, String, &str) = match data_type {
            Boolean => ("BOOLEAN".into(), "BOOLEAN".into(), "BOOLEAN"),
            Int8 => ("TINYINT".into(), "SMALLINT".into(), "INTEGER"),
            Int16 => ("SMALLINT".into(), "SMALLINT".into(), "INTEGER"),
            Int32 => ("INTEGER".into(), "INTEGER".into(), "INTEGER"),
            Int64 => ("BIGINT".into(), "BIGINT".into(), "INTEGER"),
            UInt8 => ("TINYINT UNSIGNED".into(), "SMALLINT".into(), "INTEGER"),
            UInt16 => ("SMALLINT UNSIGNED".into(), "INTEGER".into(), "INTEGER"),
            UInt32 => ("INTEGER UNSIGNED".into(), "BIGINT".into(), "INTEGER"),
            Float32 => ("FLOAT".into(), "REAL".into(), "REAL"),
            Float64 => ("DOUBLE".into(), "DOUBLE PRECISION".into(), "REAL"),
            Decimal128(p, s) if *s >= 0 => (
                format!("DECIMAL({p},{s})"),
                format!("DECIMAL({p},{s})"),
                "DECIMAL",
            ),
            Utf8 | LargeUtf8 | Utf8View => ("LONGTEXT".into(), "TEXT".into(), "TEXT"),
            Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => {
                ("LONGBLOB".into(), "BYTEA".into(), "BLOB")
            }
            Date32 | Date64 => ("DATE".into(), "DATE".into(), "DATE"),
            Time32(_) | Time64(_) => ("TIME(6)".into(), "TIME(6)".into(), "TIME"),
            Timestamp(unit, None) => {
                let p = precision(unit);
                (
                    format!("DATETIME({p})"),
                    format!("TIMESTAMP({p})"),
                    "DATETIME",
                )
            }
            Timestamp(unit, Some(_)) => {
                let p = precision(unit);
                (
                    format!("TIMESTAMP({p}) NULL"),
                    format!("TIMESTAMP({p}) WITH TIME ZONE"),
                    "DATETIME",
                )
            }
            _ => return None,
        };
        Some(match self {
            Self::MySql => mysql,
            Self::Postgres => postgres,
            Self::Sqlite => sqlite.to_owned(),
        })
    }
}

fn precision(unit: &TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond | TimeUnit::Nanosecond => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_anything() {
        assert_eq!(Dialect::MySql.quote("a`b; DROP"), "`a``b; DROP`");
        assert_eq!(Dialect::Postgres.quote("x\"y"), "\"x\"\"y\"");
        assert_eq!(Dialect::Postgres.placeholder(3), "$3");
        assert_eq!(
            Dialect::MySql
                .ddl_type(&DataType::Decimal128(10, 2))
                .as_deref(),
            Some("DECIMAL(10,2)")
        );
        assert_eq!(
            Dialect::MySql.comparison(&DataType::Utf8, "<"),
            Exactness::No
        );
    }
}
