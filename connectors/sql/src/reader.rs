//! The scan of one remote table: its handle (what executors receive), its splits (key or
//! `ctid` ranges), the remote SQL of each, and the [`SplitReader`] that streams it.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tributary_connector::{SplitInfo, SplitReader, SplitStream};

use crate::client::SqlClient;
use crate::dialect::Dialect;
use crate::error::SqlError;
use crate::pg_copy;
use crate::pool::Pool;
use crate::remote_plan::RemoteQuery;
use crate::rows::BatchBuilder;
use crate::table::TableColumn;
use crate::value::{Value, bind_value};

/// How a table is cut into splits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SplitKey {
    /// An integer primary key (MySQL) or SQLite's rowid: `key >= lo AND key < hi`.
    Key(String),
    /// PostgreSQL heap block ranges: `ctid >= '(lo,0)' AND ctid < '(hi,0)'`.
    Ctid,
}

/// Everything an executor needs to read splits of a table: sent as JSON inside the scan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TableHandle {
    /// Remote schema.
    pub(crate) schema: String,
    /// Remote table.
    pub(crate) table: String,
    /// The table's columns (all of them; scans project).
    pub(crate) columns: Vec<TableColumn>,
    /// Pushed-down WHERE clause, with parameter markers.
    pub(crate) filter: Option<String>,
    /// Its parameters.
    pub(crate) params: Vec<Value>,
    /// Pushed-down LIMIT.
    pub(crate) limit: Option<usize>,
    /// How splits are cut.
    pub(crate) split_key: Option<SplitKey>,
    /// An aggregate or top-N computed by the database (`columns` are then its outputs).
    #[serde(default)]
    pub(crate) query: Option<RemoteQuery>,
    /// PostgreSQL: the exported snapshot every split imports.
    #[serde(default)]
    pub(crate) snapshot: Option<String>,
}

/// Starts a split's transaction on the scan's shared snapshot. Snapshot ids come from the
/// server (`pg_export_snapshot()`); `SET TRANSACTION SNAPSHOT` takes no parameters, so the
/// id is checked to be one before it is written into the statement.
async fn import_snapshot(conn: &mut sqlx::PgConnection, snapshot: &str) -> Result<(), sqlx::Error> {
    if snapshot.is_empty() || !snapshot.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(sqlx::Error::Protocol(format!(
            "invalid snapshot id '{snapshot}'"
        )));
    }
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET TRANSACTION SNAPSHOT '{snapshot}'"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Imports the scan's snapshot on PostgreSQL connections (`pg`), nothing elsewhere.
macro_rules! snapshot_begin {
    (pg, $conn:expr, $snapshot:expr) => {
        match $snapshot {
            Some(s) => import_snapshot(&mut *$conn, s).await,
            None => Ok(()),
        }
    };
    (other, $conn:expr, $snapshot:expr) => {
        Ok::<(), sqlx::Error>(())
    };
}

/// Ends a split's snapshot transaction.
macro_rules! snapshot_end {
    (pg, $conn:expr, $snapshot:expr) => {
        match $snapshot {
            Some(_) => sqlx::raw_sql("COMMIT").execute(&mut *$conn).await.map(drop),
            None => Ok(()),
        }
    };
    (other, $conn:expr, $snapshot:expr) => {
        Ok::<(), sqlx::Error>(())
    };
}

impl TableHandle {
    pub(crate) fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.data_type(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// The remote SQL of one split over the projected columns.
    pub(crate) fn sql(
        &self,
        dialect: Dialect,
        projection: &[usize],
        split: &str,
        limit: Option<usize>,
    ) -> Result<String, SqlError> {
        let select: Vec<String> = projection
            .iter()
            .map(|i| {
                if let Some(q) = &self.query {
                    return q.select[*i].clone();
                }
                let c = &self.columns[*i];
                let name = dialect.quote(&c.remote);
                if c.mapping.as_text {
                    dialect.as_text(&name)
                } else {
                    name
                }
            })
            .collect();
        let select = if select.is_empty() {
            "1".to_owned()
        } else {
            select.join(", ")
        };
        let from = match (&self.query, dialect) {
            (
                Some(RemoteQuery {
                    from: Some(from), ..
                }),
                _,
            ) => from.clone(),
            (_, Dialect::Sqlite) => dialect.quote(&self.table),
            _ => dialect.table_name(&self.schema, &self.table),
        };
        let mut conditions = Vec::new();
        if let Some(filter) = &self.filter {
            conditions.push(filter.clone());
        }
        if let Some(range) = self.split_condition(dialect, split)? {
            conditions.push(range);
        }
        let mut sql = format!("SELECT {select} FROM {from}");
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        if let Some(q) = &self.query {
            if !q.group_by.is_empty() {
                sql.push_str(&format!(" GROUP BY {}", q.group_by.join(", ")));
            }
            if !q.order_by.is_empty() {
                sql.push_str(&format!(" ORDER BY {}", q.order_by.join(", ")));
            }
        }
        let query_limit = self.query.as_ref().and_then(|q| q.limit);
        let limit = match (query_limit, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let limit = match (self.limit, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        Ok(sql)
    }

    /// `all`, `key/lt/10`, `key/10/20`, `key/ge/20`, `ctid/0/128`, … → a range condition.
    fn split_condition(&self, dialect: Dialect, split: &str) -> Result<Option<String>, SqlError> {
        let bad = |reason: &str| SqlError::Decode {
            what: "split",
            reason: format!("'{split}': {reason}"),
        };
        if split == "all" {
            return Ok(None);
        }
        let parts: Vec<&str> = split.split('/').collect();
        let [kind, lo, hi] = parts[..] else {
            return Err(bad("expected kind/low/high"));
        };
        let number = |s: &str| s.parse::<i64>().map_err(|_| bad("bounds must be integers"));
        let (column, lo_sql, hi_sql): (String, Option<String>, Option<String>) =
            match (kind, &self.split_key) {
                ("key", Some(SplitKey::Key(column))) => {
                    let lo = if lo == "lt" {
                        None
                    } else {
                        Some(number(lo)?.to_string())
                    };
                    let hi = if hi == "ge" {
                        None
                    } else {
                        Some(number(hi)?.to_string())
                    };
                    (dialect.quote(column), lo, hi)
                }
                ("ctid", Some(SplitKey::Ctid)) => {
                    let tid = |s: &str| -> Result<String, SqlError> {
                        Ok(format!("'({},0)'::tid", number(s)?))
                    };
                    let lo = if lo == "lt" { None } else { Some(tid(lo)?) };
                    let hi = if hi == "ge" { None } else { Some(tid(hi)?) };
                    ("ctid".to_owned(), lo, hi)
                }
                _ => return Err(bad("does not match the table's split key")),
            };
        let mut conds = Vec::new();
        if let Some(lo) = lo_sql {
            conds.push(format!("{column} >= {lo}"));
        }
        if let Some(hi) = hi_sql {
            conds.push(format!("{column} < {hi}"));
        }
        Ok(Some(format!("({})", conds.join(" AND "))))
    }
}

/// Cuts `[lo, hi]` into `n` ranges; the first and last are open so no row is missed.
pub(crate) fn range_splits(kind: &str, lo: i64, hi: i64, n: usize, size: u64) -> Vec<SplitInfo> {
    let span = (i128::from(hi) - i128::from(lo) + 1).max(1);
    let n = (n as i128).min(span).max(1);
    if n == 1 {
        return vec![SplitInfo::new("all", size)];
    }
    let bounds: Vec<i64> = (1..n)
        .map(|i| (i128::from(lo) + span * i / n) as i64)
        .collect();
    let each = size / n as u64;
    let mut splits = Vec::with_capacity(n as usize);
    splits.push(SplitInfo::new(format!("{kind}/lt/{}", bounds[0]), each));
    for w in bounds.windows(2) {
        splits.push(SplitInfo::new(format!("{kind}/{}/{}", w[0], w[1]), each));
    }
    splits.push(SplitInfo::new(
        format!("{kind}/{}/ge", bounds[bounds.len() - 1]),
        each,
    ));
    splits
}

/// Reads splits of one remote table.
#[derive(Debug)]
pub(crate) struct SqlReader {
    pub(crate) client: Arc<SqlClient>,
    pub(crate) handle: TableHandle,
    pub(crate) schema: SchemaRef,
}

impl SqlReader {
    pub(crate) fn new(client: Arc<SqlClient>, handle: TableHandle) -> Self {
        let schema = handle.arrow_schema();
        Self {
            client,
            handle,
            schema,
        }
    }

    pub(crate) fn decode(client: Arc<SqlClient>, bytes: &[u8]) -> Result<Self, SqlError> {
        let handle: TableHandle = serde_json::from_slice(bytes).map_err(|e| SqlError::Decode {
            what: "table handle",
            reason: e.to_string(),
        })?;
        Ok(Self::new(client, handle))
    }

    fn qualified(&self) -> String {
        format!(
            "{}.{}.{}",
            self.client.config().catalog,
            self.handle.schema,
            self.handle.table
        )
    }
}

impl SplitReader for SqlReader {
    fn kind(&self) -> &'static str {
        self.client.dialect().connector_name()
    }

    fn table_schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn encode_table(&self) -> tributary_connector::Result<Vec<u8>> {
        tributary_connector::encode_json("table handle", &self.handle)
    }

    fn describe(&self, projection: &[usize]) -> Option<String> {
        let sql = self
            .handle
            .sql(self.client.dialect(), projection, "all", None)
            .ok()?;
        let params: Vec<String> = self.handle.params.iter().map(Value::display).collect();
        let mut key = match &self.handle.split_key {
            Some(SplitKey::Key(k)) => format!(", split_by={k}"),
            Some(SplitKey::Ctid) => ", split_by=ctid".to_owned(),
            None => String::new(),
        };
        if let Some(snapshot) = &self.handle.snapshot {
            key.push_str(&format!(", snapshot={snapshot}"));
        }
        Some(if params.is_empty() {
            format!("remote_sql=\"{sql}\"{key}")
        } else {
            format!("remote_sql=\"{sql}\", params=[{}]{key}", params.join(", "))
        })
    }

    fn read(
        &self,
        split: &str,
        projection: &[usize],
        batch_size: usize,
        limit: Option<usize>,
    ) -> tributary_connector::Result<SplitStream> {
        let dialect = self.client.dialect();
        let sql = self.handle.sql(dialect, projection, split, limit)?;
        let schema = Arc::new(self.schema.project(projection)?);
        let read_as: Vec<_> = projection
            .iter()
            .map(|i| self.handle.columns[*i].mapping.read_as.clone())
            .collect();
        let params = self.handle.params.clone();
        let snapshot = self.handle.snapshot.clone();
        let pool = self.client.pool();
        let config = Arc::clone(self.client.config());
        let table = self.qualified();
        let (tx, rx) = tokio::sync::mpsc::channel::<
            datafusion::error::Result<arrow::record_batch::RecordBatch>,
        >(2);
        // A driver that panics (sqlx does on PostgreSQL's infinite dates) must fail the
        // query, never end the stream early as if all rows were read.
        let supervisor = tx.clone();
        let panicked_table = self.qualified();
        let reading = self.client.spawn(async move {
            let fail = |e: SqlError| -> DataFusionError {
                let transient = e.is_transient();
                let message = match &e {
                    SqlError::Conversion { message, .. } => format!("reading {table}: {message}"),
                    other => format!("reading {table}: {other}"),
                };
                if transient {
                    DataFusionError::IoError(std::io::Error::other(message))
                } else {
                    DataFusionError::Execution(message)
                }
            };
            let mut builder = BatchBuilder::new(Arc::clone(&schema), &read_as, batch_size);
            macro_rules! stream_rows {
                ($pool:expr, $text:tt, $kind:tt) => {{
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                    for p in &params {
                        query = match (|| -> Result<_, String> {
                            Ok(bind_value!(query, p, decimal_as_text = $text))
                        })() {
                            Ok(q) => q,
                            Err(message) => {
                                let _ = tx.send(Err(DataFusionError::Execution(message))).await;
                                return;
                            }
                        };
                    }
                    let mut conn = match $pool.acquire().await {
                        Ok(conn) => conn,
                        Err(e) => {
                            let _ = tx.send(Err(fail(SqlError::from_sqlx(&config, e)))).await;
                            return;
                        }
                    };
                    if let Err(e) = snapshot_begin!($kind, conn, snapshot.as_deref()) {
                        drop(conn.detach());
                        let _ = tx.send(Err(fail(SqlError::from_sqlx(&config, e)))).await;
                        return;
                    }
                    let mut rows = query.fetch(&mut *conn);
                    loop {
                        let row = match rows.try_next().await {
                            Ok(Some(row)) => row,
                            Ok(None) => break,
                            Err(e) => {
                                // A connection whose statement failed is not trusted again.
                                drop(rows);
                                drop(conn.detach());
                                let e = SqlError::from_sqlx(&config, e);
                                let _ = tx.send(Err(fail(e))).await;
                                return;
                            }
                        };
                        if let Err(message) = builder.append(&row) {
                            drop(rows);
                            drop(conn.detach());
                            let e = SqlError::Conversion {
                                catalog: config.catalog.clone(),
                                table: table.clone(),
                                message,
                            };
                            let _ = tx.send(Err(fail(e))).await;
                            return;
                        }
                        if builder.rows() >= batch_size {
                            let batch = builder
                                .finish()
                                .map_err(|e| DataFusionError::ArrowError(Box::new(e), None));
                            if tx.send(batch).await.is_err() {
                                // The query was cancelled or has all it needs: close the
                                // connection rather than have the pool drain the rest.
                                drop(rows);
                                drop(conn.detach());
                                return;
                            }
                        }
                    }
                    drop(rows);
                    if let Err(e) = snapshot_end!($kind, conn, snapshot.as_deref()) {
                        drop(conn.detach());
                        let _ = tx.send(Err(fail(SqlError::from_sqlx(&config, e)))).await;
                        return;
                    }
                }};
            }
            match &pool {
                Pool::MySql(p) => stream_rows!(p, false, other),
                // COPY takes no parameters: filtered splits use the extended protocol.
                Pool::Postgres(p) if params.is_empty() && pg_copy::supported(&read_as) => {
                    let result =
                        copy_rows(p, &sql, snapshot.as_deref(), &mut builder, batch_size, &tx)
                            .await;
                    if let Err(e) = result {
                        let e = match e {
                            CopyError::Sql(e) => SqlError::from_sqlx(&config, e),
                            CopyError::Decode(message) => SqlError::Conversion {
                                catalog: config.catalog.clone(),
                                table: table.clone(),
                                message,
                            },
                        };
                        let _ = tx.send(Err(fail(e))).await;
                        return;
                    }
                }
                Pool::Postgres(p) => stream_rows!(p, false, pg),
                Pool::Sqlite(p) => stream_rows!(p, true, other),
            }
            if builder.rows() > 0 {
                let batch = builder
                    .finish()
                    .map_err(|e| DataFusionError::ArrowError(Box::new(e), None));
                let _ = tx.send(batch).await;
            }
        });
        drop(self.client.spawn(async move {
            if let Err(e) = reading.await
                && e.is_panic()
            {
                let panic = e.into_panic();
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let message = format!("reading {panicked_table}: the database driver failed on a value it cannot represent ({what})");
                let _ = supervisor.send(Err(DataFusionError::Execution(message))).await;
            }
        }));
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (b, rx))
        })))
    }
}

enum CopyError {
    Sql(sqlx::Error),
    Decode(String),
}

type BatchSender =
    tokio::sync::mpsc::Sender<datafusion::error::Result<arrow::record_batch::RecordBatch>>;

/// Streams one split through `COPY (…) TO STDOUT (FORMAT binary)`. Full batches are sent as
/// they fill; the last partial one stays in `builder`. A consumer that stops early closes the
/// connection (a half-read COPY cannot be reused).
async fn copy_rows(
    pool: &sqlx::PgPool,
    sql: &str,
    snapshot: Option<&str>,
    builder: &mut BatchBuilder,
    batch_size: usize,
    tx: &BatchSender,
) -> Result<(), CopyError> {
    let mut conn = pool.acquire().await.map_err(CopyError::Sql)?;
    if let Some(snapshot) = snapshot
        && let Err(e) = import_snapshot(&mut conn, snapshot).await
    {
        drop(conn.detach());
        return Err(CopyError::Sql(e));
    }
    let mut parser = pg_copy::CopyParser::new();
    let read = async {
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut chunks = conn
            .copy_out_raw(&format!("COPY ({sql}) TO STDOUT (FORMAT binary)"))
            .await
            .map_err(CopyError::Sql)?;
        while let Some(chunk) = chunks.try_next().await.map_err(CopyError::Sql)? {
            buf.extend_from_slice(&chunk);
            let mut start = 0;
            loop {
                let used = parser
                    .parse(&buf[start..], builder, batch_size)
                    .map_err(CopyError::Decode)?;
                start += used;
                if builder.rows() >= batch_size {
                    let batch = builder
                        .finish()
                        .map_err(|e| CopyError::Decode(e.to_string()))?;
                    if tx.send(Ok(batch)).await.is_err() {
                        return Ok(true);
                    }
                    continue;
                }
                break;
            }
            buf.drain(..start);
        }
        Ok(false)
    }
    .await;
    // A COPY left half-read (stopped early or failed) cannot serve another query: close it.
    let stopped = match read {
        Ok(stopped) => stopped,
        Err(e) => {
            drop(conn.detach());
            return Err(e);
        }
    };
    if stopped {
        drop(conn.detach());
        return Ok(());
    }
    if !parser.finished {
        drop(conn.detach());
        return Err(CopyError::Decode(
            "the COPY stream ended before its last row".into(),
        ));
    }
    if snapshot.is_some()
        && let Err(e) = sqlx::raw_sql("COMMIT").execute(&mut *conn).await
    {
        drop(conn.detach());
        return Err(CopyError::Sql(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_once() {
        let splits = range_splits("key", 1, 100, 4, 1000);
        let names: Vec<&str> = splits.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["key/lt/26", "key/26/51", "key/51/76", "key/76/ge"]);
        assert_eq!(range_splits("key", 5, 5, 4, 10).len(), 1);
        assert_eq!(range_splits("ctid", 0, 2, 8, 10).len(), 3);
    }
}
