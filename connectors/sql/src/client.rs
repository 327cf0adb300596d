//! One catalog's connection to its database on one node: the runtime its pool lives on (a
//! [`CatalogRuntime`]), the metadata cache, and the calls the connector makes (listings,
//! columns, statistics, key ranges, DDL, snapshots). The SQL of the catalog queries is in
//! `catalog_queries.rs`.
//!
//! Every database call runs on the catalog's own small tokio runtime: its pool is tied to
//! it, whichever runtime (scheduler, executor, a test's) calls in, and DataFusion's
//! synchronous catalog methods (`schema_names`, `register_table`, …) can wait for it without
//! blocking the runtime they are called from.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sqlx::Row;
use tributary_connector::CatalogRuntime;

use crate::catalog_queries::{TableStats, columns, list_tables, stats, strings};
use crate::config::SqlConfig;
use crate::dialect::Dialect;
use crate::error::{Result, SqlError};
use crate::pool::Pool;
use crate::pool::make_pool;
use crate::types::RemoteColumn;

type Cached<T> = Mutex<HashMap<String, (Instant, T)>>;

/// Longest an exported PostgreSQL snapshot is kept open if its query never reports its end.
pub(crate) const SNAPSHOT_MAX_HOLD: std::time::Duration = std::time::Duration::from_secs(3600);

/// One catalog's connection to its database.
#[derive(Debug)]
pub struct SqlClient {
    config: Arc<SqlConfig>,
    pool: Pool,
    runtime: CatalogRuntime,
    schemas: Cached<Vec<String>>,
    tables: Cached<Vec<String>>,
}

impl SqlClient {
    /// A client; connects lazily (no I/O here, so a database that is down does not stop
    /// start-up).
    pub fn new(config: Arc<SqlConfig>) -> Result<Self> {
        let runtime = CatalogRuntime::new(&format!("sql-{}", config.catalog), 2)
            .map_err(|e| SqlError::Runtime(e.to_string()))?;
        let pool = {
            let _guard = runtime.handle().enter();
            make_pool(&config)
        };
        Ok(Self {
            config,
            pool,
            runtime,
            schemas: Mutex::default(),
            tables: Mutex::default(),
        })
    }

    /// The catalog's configuration.
    pub fn config(&self) -> &Arc<SqlConfig> {
        &self.config
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.config.dialect
    }

    pub(crate) fn pool(&self) -> Pool {
        self.pool.clone()
    }

    /// Runs a database future on the catalog's runtime.
    pub(crate) async fn run<T, F>(&self, fut: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime
            .run(fut)
            .await
            .map_err(|e| SqlError::Runtime(e.to_string()))?
    }

    /// Runs a database future from synchronous code (DataFusion's catalog methods).
    pub(crate) fn run_blocking<T, F>(&self, fut: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime
            .block_on(fut)
            .map_err(|e| SqlError::Runtime(e.to_string()))?
    }

    /// Spawns a task on the catalog's runtime.
    pub(crate) fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.runtime.spawn(fut)
    }

    fn fresh<T: Clone>(&self, cache: &Cached<T>, key: &str) -> Option<T> {
        let ttl = self.config.metadata_cache_ttl;
        let cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, v)| v.clone())
    }

    fn remember<T>(cache: &Cached<T>, key: &str, value: T) {
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), (Instant::now(), value));
    }

    /// Forgets cached listings (after DDL).
    pub(crate) fn invalidate(&self) {
        self.schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Remote schema names (MySQL databases, PostgreSQL schemas of the URL's database).
    pub(crate) fn schemas_blocking(&self) -> Result<Vec<String>> {
        if let Some(v) = self.fresh(&self.schemas, "") {
            return Ok(v);
        }
        let pool = self.pool();
        let config = Arc::clone(&self.config);
        let names = self.run_blocking(async move {
            let q = match &pool {
                Pool::MySql(_) => "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA \
                    WHERE SCHEMA_NAME NOT IN ('information_schema', 'mysql', 'performance_schema', 'sys')",
                Pool::Postgres(_) => "SELECT nspname::text FROM pg_catalog.pg_namespace \
                    WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'",
                Pool::Sqlite(_) => return Ok(vec!["main".to_owned()]),
            };
            strings(&pool, q, &[]).await.map_err(|e| SqlError::from_sqlx(&config, e))
        })?;
        Self::remember(&self.schemas, "", names.clone());
        Ok(names)
    }

    /// The remote name of a schema: as written, or matched without case when configured.
    pub(crate) fn resolve_schema(&self, name: &str) -> Result<Option<String>> {
        let names = self.schemas_blocking()?;
        Ok(resolve_name(
            &names,
            name,
            self.config.case_insensitive_name_matching,
        ))
    }

    /// Tables and views of a remote schema.
    pub(crate) fn tables_blocking(&self, schema: &str) -> Result<Vec<String>> {
        if let Some(v) = self.fresh(&self.tables, schema) {
            return Ok(v);
        }
        let pool = self.pool();
        let config = Arc::clone(&self.config);
        let s = schema.to_owned();
        let names = self.run_blocking(async move {
            list_tables(&pool, &s)
                .await
                .map_err(|e| SqlError::from_sqlx(&config, e))
        })?;
        Self::remember(&self.tables, schema, names.clone());
        Ok(names)
    }

    /// Columns of a remote table, in order; empty when it does not exist.
    pub(crate) async fn columns(&self, schema: &str, table: &str) -> Result<Vec<RemoteColumn>> {
        let pool = self.pool();
        let config = Arc::clone(&self.config);
        let (s, t) = (schema.to_owned(), table.to_owned());
        self.run(async move {
            columns(&pool, &s, &t)
                .await
                .map_err(|e| SqlError::from_sqlx(&config, e))
        })
        .await
    }

    /// The remote name of a table of a (remote) schema; case-insensitively when configured.
    pub(crate) async fn resolve_table(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<(String, Vec<RemoteColumn>)>> {
        let columns = self.columns(schema, table).await?;
        if !columns.is_empty() {
            return Ok(Some((table.to_owned(), columns)));
        }
        let pool = self.pool();
        let config = Arc::clone(&self.config);
        let s = schema.to_owned();
        let names = self
            .run(async move {
                list_tables(&pool, &s)
                    .await
                    .map_err(|e| SqlError::from_sqlx(&config, e))
            })
            .await?;
        let Some(remote) = resolve_name(&names, table, self.config.case_insensitive_name_matching)
        else {
            return Ok(None);
        };
        let columns = self.columns(schema, &remote).await?;
        Ok((!columns.is_empty()).then_some((remote, columns)))
    }

    /// A checksum of a table's rows (MySQL/MariaDB `CHECKSUM TABLE`; PostgreSQL: the row
    /// count and the sum of every row's hash), or `None` where the database has none (SQLite).
    /// Equal checksums: the view over the table is fresh. Reads the whole table.
    pub(crate) async fn content_checksum(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<String>> {
        let pool = self.pool();
        let config = Arc::clone(&self.config);
        let dialect = self.dialect();
        let name = format!("{}.{}", dialect.quote(schema), dialect.quote(table));
        self.run(async move {
            let checksum = match &pool {
                Pool::MySql(p) => {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!("CHECKSUM TABLE {name}")))
                        .fetch_one(p)
                        .await
                        .map_err(|e| SqlError::from_sqlx(&config, e))?;
                    row.try_get::<Option<u64>, _>(1)
                        .map(|c| c.map(|c| c.to_string()))
                        .or_else(|_| row.try_get::<Option<i64>, _>(1).map(|c| c.map(|c| c.to_string())))
                        .map_err(|e| SqlError::from_sqlx(&config, e))?
                }
                Pool::Postgres(_) => {
                    let q = format!(
                        "SELECT count(*)::text || ':' || coalesce(sum(hashtext(ROW(tributary_row.*)::text)::bigint), 0)::text FROM {name} AS tributary_row"
                    );
                    strings(&pool, &q, &[])
                        .await
                        .map_err(|e| SqlError::from_sqlx(&config, e))?
                        .pop()
                }
                Pool::Sqlite(_) => None,
            };
            Ok(checksum)
        })
        .await
    }

    /// Row count and size estimates from the database's catalog.
    pub(crate) async fn stats(&self, schema: &str, table: &str) -> Result<TableStats> {
        let pool = self.pool();
        let config = Arc::clone(&self.config);
        let (s, t) = (schema.to_owned(), table.to_owned());
        self.run(async move {
            stats(&pool, &s, &t)
                .await
                .map_err(|e| SqlError::from_sqlx(&config, e))
        })
        .await
    }

    /// Executes one statement (DDL).
    pub(crate) fn execute_blocking(&self, sql: String) -> Result<()> {
        let pool = self.pool();
        let config = Arc::clone(&self.config);
        let result = self.run_blocking(async move {
            let r = match &pool {
                Pool::MySql(p) => sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(p)
                    .await
                    .map(drop),
                Pool::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(p)
                    .await
                    .map(drop),
                Pool::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(p)
                    .await
                    .map(drop),
            };
            r.map_err(|e| SqlError::from_sqlx(&config, e))
        });
        self.invalidate();
        result
    }

    /// `(min, max)` of an integer column, for key-range splits.
    pub(crate) async fn key_range(
        &self,
        table: String,
        column: String,
    ) -> Result<Option<(i64, i64)>> {
        let pool = self.pool();
        let config = Arc::clone(&self.config);
        self.run(async move {
            let r: std::result::Result<Option<(i64, i64)>, sqlx::Error> = async {
                Ok(match &pool {
                    Pool::MySql(p) => {
                        let q = format!("SELECT CAST(MIN({column}) AS SIGNED), CAST(MAX({column}) AS SIGNED) FROM {table}");
                        let row = sqlx::query(sqlx::AssertSqlSafe(q)).fetch_one(p).await?;
                        row.try_get::<Option<i64>, _>(0)?.zip(row.try_get::<Option<i64>, _>(1)?)
                    }
                    Pool::Postgres(p) => {
                        let q = format!("SELECT MIN({column})::int8, MAX({column})::int8 FROM {table}");
                        let row = sqlx::query(sqlx::AssertSqlSafe(q)).fetch_one(p).await?;
                        row.try_get::<Option<i64>, _>(0)?.zip(row.try_get::<Option<i64>, _>(1)?)
                    }
                    Pool::Sqlite(p) => {
                        let q = format!("SELECT MIN({column}), MAX({column}) FROM {table}");
                        let row = sqlx::query(sqlx::AssertSqlSafe(q)).fetch_one(p).await?;
                        row.try_get::<Option<i64>, _>(0)?.zip(row.try_get::<Option<i64>, _>(1)?)
                    }
                })
            }
            .await;
            r.map_err(|e| SqlError::from_sqlx(&config, e))
        })
        .await
    }

    /// MySQL: the first column of the table's primary key, when it is an integer (ranges of
    /// a key prefix are index range scans, so `(l_orderkey, l_linenumber)` splits too).
    pub(crate) async fn integer_primary_key(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<String>> {
        let Pool::MySql(p) = self.pool() else {
            return Ok(None);
        };
        let config = Arc::clone(&self.config);
        let (s, t) = (schema.to_owned(), table.to_owned());
        self.run(async move {
            let q = "SELECT CAST(k.COLUMN_NAME AS CHAR), CAST(c.DATA_TYPE AS CHAR) \
                     FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.COLUMNS c \
                     ON c.TABLE_SCHEMA = k.TABLE_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME AND c.COLUMN_NAME = k.COLUMN_NAME \
                     WHERE k.TABLE_SCHEMA = ? AND k.TABLE_NAME = ? AND k.CONSTRAINT_NAME = 'PRIMARY' \
                     ORDER BY k.ORDINAL_POSITION LIMIT 1";
            let row = sqlx::query(q).bind(s).bind(t).fetch_optional(&p).await.map_err(|e| SqlError::from_sqlx(&config, e))?;
            let Some(row) = row else { return Ok(None) };
            let name: String = row.try_get(0).map_err(|e| SqlError::from_sqlx(&config, e))?;
            let kind: String = row.try_get(1).map_err(|e| SqlError::from_sqlx(&config, e))?;
            Ok(matches!(kind.as_str(), "tinyint" | "smallint" | "mediumint" | "int" | "bigint").then_some(name))
        })
        .await
    }

    /// PostgreSQL: opens a read-only REPEATABLE READ transaction and exports its snapshot,
    /// which every split of one scan imports, so all splits see the table at one moment. The
    /// transaction stays open until the returned sender is dropped (the query's end) or
    /// [`SNAPSHOT_MAX_HOLD`] passes.
    pub(crate) async fn export_snapshot(
        &self,
    ) -> Result<(String, tokio::sync::oneshot::Sender<()>)> {
        let Pool::Postgres(p) = self.pool() else {
            return Err(SqlError::NotSupported(
                "snapshots are exported by PostgreSQL only".into(),
            ));
        };
        let config = Arc::clone(&self.config);
        self.run(async move {
            let sql = |e| SqlError::from_sqlx(&config, e);
            // Its own connection, outside the pool's count, for as long as the query runs.
            let mut conn = p.acquire().await.map_err(sql)?.detach();
            sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut conn)
                .await
                .map_err(sql)?;
            let id: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
                .fetch_one(&mut conn)
                .await
                .map_err(sql)?;
            let (release, released) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(SNAPSHOT_MAX_HOLD, released).await;
                let _ = sqlx::Connection::close(conn).await;
            });
            Ok((id, release))
        })
        .await
    }

    /// PostgreSQL: the number of heap blocks of a plain table or materialised view (`None`
    /// for views and other relations, which cannot be cut by `ctid`).
    pub(crate) async fn heap_blocks(&self, schema: &str, table: &str) -> Result<Option<u64>> {
        let Pool::Postgres(p) = self.pool() else {
            return Ok(None);
        };
        let config = Arc::clone(&self.config);
        let (s, t) = (schema.to_owned(), table.to_owned());
        self.run(async move {
            let q = "SELECT (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 \
                     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'm')";
            let row = sqlx::query(q).bind(s).bind(t).fetch_optional(&p).await.map_err(|e| SqlError::from_sqlx(&config, e))?;
            Ok(match row {
                Some(row) => row.try_get::<Option<i64>, _>(0).map_err(|e| SqlError::from_sqlx(&config, e))?.map(|b| b.max(0) as u64),
                None => None,
            })
        })
        .await
    }
}

/// A remote name for `name`: the exact one, else the one name that differs only in case
/// (when matching is case-insensitive, or when `name` is lower case, as unquoted SQL names
/// are: remote mixed-case names are shown lower-cased, as Trino does).
fn resolve_name(names: &[String], name: &str, case_insensitive: bool) -> Option<String> {
    if let Some(exact) = names.iter().find(|n| *n == name) {
        return Some(exact.clone());
    }
    if !case_insensitive && name != name.to_lowercase() {
        return None;
    }
    let mut matches = names
        .iter()
        .filter(|n| n.eq_ignore_ascii_case(name) || n.to_lowercase() == name.to_lowercase());
    match (matches.next(), matches.next()) {
        (Some(one), None) => Some(one.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_like_trino() {
        let names = vec!["Orders".to_owned(), "products".to_owned()];
        assert_eq!(
            resolve_name(&names, "products", false).as_deref(),
            Some("products")
        );
        assert_eq!(
            resolve_name(&names, "orders", true).as_deref(),
            Some("Orders")
        );
        assert_eq!(resolve_name(&names, "ORDERS", false), None);
    }
}
