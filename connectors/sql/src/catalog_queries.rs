//! The databases' own catalog queries: schemas, tables, columns and size estimates.

use sqlx::Row;

use crate::pool::Pool;
use crate::types::{RemoteColumn, declared_precision};

/// Statistics of a remote table.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TableStats {
    pub(crate) rows: Option<u64>,
    pub(crate) bytes: Option<u64>,
}

pub(crate) async fn strings(
    pool: &Pool,
    sql: &str,
    binds: &[&str],
) -> std::result::Result<Vec<String>, sqlx::Error> {
    macro_rules! run {
        ($p:expr) => {{
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            for b in binds {
                q = q.bind(*b);
            }
            q.fetch_all($p)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect()
        }};
    }
    match pool {
        Pool::MySql(p) => run!(p),
        Pool::Postgres(p) => run!(p),
        Pool::Sqlite(p) => run!(p),
    }
}

pub(crate) async fn list_tables(
    pool: &Pool,
    schema: &str,
) -> std::result::Result<Vec<String>, sqlx::Error> {
    let q = match pool {
        Pool::MySql(_) => {
            "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?"
        }
        Pool::Postgres(_) => {
            "SELECT c.relname::text FROM pg_catalog.pg_class c \
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
            WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'f', 'p')"
        }
        Pool::Sqlite(_) => {
            return strings(pool, "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'", &[]).await;
        }
    };
    strings(pool, q, &[schema]).await
}

pub(crate) async fn columns(
    pool: &Pool,
    schema: &str,
    table: &str,
) -> std::result::Result<Vec<RemoteColumn>, sqlx::Error> {
    match pool {
        Pool::MySql(p) => {
            let q = "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR), \
                     CAST(NUMERIC_PRECISION AS SIGNED), CAST(NUMERIC_SCALE AS SIGNED), CAST(IS_NULLABLE AS CHAR) \
                     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";
            let rows = sqlx::query(q).bind(schema).bind(table).fetch_all(p).await?;
            rows.iter()
                .map(|r| {
                    Ok(RemoteColumn {
                        name: r.try_get(0)?,
                        type_name: r.try_get::<String, _>(1)?.to_lowercase(),
                        full_type: r.try_get::<String, _>(2)?.to_lowercase(),
                        precision: r.try_get(3)?,
                        scale: r.try_get(4)?,
                        nullable: r.try_get::<String, _>(5)? == "YES",
                        type_kind: None,
                        element_type: None,
                    })
                })
                .collect()
        }
        Pool::Postgres(p) => {
            let q = "SELECT a.attname::text, t.typname::text, format_type(a.atttypid, a.atttypmod), \
                     CASE WHEN t.typname = 'numeric' AND a.atttypmod >= 4 THEN (((a.atttypmod - 4) >> 16) & 65535)::int8 END, \
                     CASE WHEN t.typname = 'numeric' AND a.atttypmod >= 4 THEN ((a.atttypmod - 4) & 65535)::int8 END, \
                     NOT a.attnotnull, t.typtype::text, et.typname::text \
                     FROM pg_catalog.pg_attribute a \
                     JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
                     LEFT JOIN pg_catalog.pg_type et ON et.oid = t.typelem AND t.typcategory = 'A' \
                     WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
                     ORDER BY a.attnum";
            let rows = sqlx::query(q).bind(schema).bind(table).fetch_all(p).await?;
            rows.iter()
                .map(|r| {
                    Ok(RemoteColumn {
                        name: r.try_get(0)?,
                        type_name: r.try_get(1)?,
                        full_type: r.try_get(2)?,
                        precision: r.try_get(3)?,
                        scale: r.try_get(4)?,
                        nullable: r.try_get(5)?,
                        type_kind: r.try_get(6)?,
                        element_type: r.try_get(7)?,
                    })
                })
                .collect()
        }
        Pool::Sqlite(p) => {
            let q = "SELECT name, type, \"notnull\" FROM pragma_table_info(?)";
            let rows = sqlx::query(q).bind(table).fetch_all(p).await?;
            rows.iter()
                .map(|r| {
                    let declared: String = r.try_get(1)?;
                    let (precision, scale) = declared_precision(&declared);
                    Ok(RemoteColumn {
                        name: r.try_get(0)?,
                        type_name: declared.to_lowercase(),
                        full_type: declared,
                        precision,
                        scale,
                        nullable: r.try_get::<i64, _>(2)? == 0,
                        type_kind: None,
                        element_type: None,
                    })
                })
                .collect()
        }
    }
}

pub(crate) async fn stats(
    pool: &Pool,
    schema: &str,
    table: &str,
) -> std::result::Result<TableStats, sqlx::Error> {
    let to_u64 = |v: Option<i64>| v.filter(|v| *v >= 0).map(|v| v as u64);
    match pool {
        Pool::MySql(p) => {
            let q = "SELECT CAST(TABLE_ROWS AS SIGNED), CAST(DATA_LENGTH AS SIGNED) FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";
            let row = sqlx::query(q)
                .bind(schema)
                .bind(table)
                .fetch_optional(p)
                .await?;
            Ok(match row {
                Some(r) => TableStats {
                    rows: to_u64(r.try_get(0)?),
                    bytes: to_u64(r.try_get(1)?),
                },
                None => TableStats::default(),
            })
        }
        Pool::Postgres(p) => {
            let q = "SELECT c.reltuples::int8, pg_relation_size(c.oid)::int8 FROM pg_catalog.pg_class c \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2";
            let row = sqlx::query(q)
                .bind(schema)
                .bind(table)
                .fetch_optional(p)
                .await?;
            Ok(match row {
                // reltuples is -1 until the table was first analysed.
                Some(r) => TableStats {
                    rows: to_u64(r.try_get(0)?),
                    bytes: to_u64(r.try_get(1)?),
                },
                None => TableStats::default(),
            })
        }
        Pool::Sqlite(_) => Ok(TableStats::default()),
    }
}
