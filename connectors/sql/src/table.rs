//! The catalog, schemas and tables of a database as DataFusion sees them, with filter,
//! projection and limit pushdown, split planning, DDL and INSERT.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, Statistics};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tributary_connector::{QueryScope, ScanBuilder};

use crate::client::{Pool, SqlClient};
use crate::dialect::{Dialect, Exactness};
use crate::error::SqlError;
use crate::pushdown::Pushdown;
use crate::reader::{SplitKey, SqlReader, TableHandle, range_splits};
use crate::types::{ColumnMapping, map_column};
use crate::value::{Value, bind_value};

/// One column as Tributary shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableColumn {
    /// Name in Tributary (lower case, as Trino shows remote names).
    pub(crate) name: String,
    /// Name in the database.
    pub(crate) remote: String,
    /// How it is read.
    pub(crate) mapping: ColumnMapping,
    /// Whether NULL is allowed.
    pub(crate) nullable: bool,
}

impl TableColumn {
    pub(crate) fn data_type(&self) -> DataType {
        self.mapping.read_as.data_type()
    }
}

fn df(e: SqlError) -> DataFusionError {
    e.into()
}

/// A database as a DataFusion catalog.
#[derive(Debug)]
pub struct SqlCatalog {
    client: Arc<SqlClient>,
}

impl SqlCatalog {
    /// The catalog of a client.
    pub fn new(client: Arc<SqlClient>) -> Self {
        Self { client }
    }
}

impl CatalogProvider for SqlCatalog {
    fn schema_names(&self) -> Vec<String> {
        match self.client.schemas_blocking() {
            Ok(names) => names.into_iter().map(|n| n.to_lowercase()).collect(),
            Err(e) => {
                tracing::warn!("cannot list schemas: {e}");
                vec![]
            }
        }
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let remote = match self.client.resolve_schema(name) {
            Ok(remote) => remote?,
            // The database cannot be asked now: assume the schema exists, so that reading
            // its tables reports what is wrong (unreachable, refused login) to the user.
            Err(e) => {
                tracing::warn!("cannot look up schema '{name}': {e}");
                name.to_owned()
            }
        };
        Some(Arc::new(SqlSchema {
            client: Arc::clone(&self.client),
            remote,
        }))
    }

    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        let dialect = self.client.dialect();
        let sql = match dialect {
            Dialect::MySql => format!("CREATE DATABASE {}", dialect.quote(name)),
            Dialect::Postgres => format!("CREATE SCHEMA {}", dialect.quote(name)),
            Dialect::Sqlite => {
                return Err(df(SqlError::NotSupported(
                    "SQLite catalogs have one schema, 'main'".into(),
                )));
            }
        };
        self.client.execute_blocking(sql).map_err(df)?;
        Ok(None)
    }

    fn deregister_schema(
        &self,
        name: &str,
        cascade: bool,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        let Some(schema) = self.schema(name) else {
            return Ok(None);
        };
        let Some(remote) = self.client.resolve_schema(name).map_err(df)? else {
            return Ok(None);
        };
        let dialect = self.client.dialect();
        let sql = match dialect {
            Dialect::MySql => {
                if !cascade && !self.client.tables_blocking(&remote).map_err(df)?.is_empty() {
                    return Err(df(SqlError::Database {
                        catalog: self.client.config().catalog.clone(),
                        message: format!(
                            "schema '{name}' is not empty (use DROP SCHEMA … CASCADE)"
                        ),
                    }));
                }
                format!("DROP DATABASE {}", dialect.quote(&remote))
            }
            Dialect::Postgres => format!(
                "DROP SCHEMA {}{}",
                dialect.quote(&remote),
                if cascade { " CASCADE" } else { "" }
            ),
            Dialect::Sqlite => {
                return Err(df(SqlError::NotSupported(
                    "SQLite's schema 'main' cannot be dropped".into(),
                )));
            }
        };
        self.client.execute_blocking(sql).map_err(df)?;
        Ok(Some(schema))
    }
}

/// One remote schema.
#[derive(Debug)]
struct SqlSchema {
    client: Arc<SqlClient>,
    remote: String,
}

impl SqlSchema {
    fn remote_table_name(&self, table: &str) -> String {
        match self.client.dialect() {
            Dialect::Sqlite => self.client.dialect().quote(table),
            d => d.table_name(&self.remote, table),
        }
    }

    fn resolve_blocking(&self, name: &str) -> DfResult<Option<String>> {
        let names = self.client.tables_blocking(&self.remote).map_err(df)?;
        if names.iter().any(|n| n == name) {
            return Ok(Some(name.to_owned()));
        }
        let mut matches = names
            .iter()
            .filter(|n| n.to_lowercase() == name.to_lowercase());
        Ok(match (matches.next(), matches.next()) {
            (Some(one), None) => Some(one.clone()),
            _ => None,
        })
    }
}

#[async_trait]
impl SchemaProvider for SqlSchema {
    fn table_names(&self) -> Vec<String> {
        match self.client.tables_blocking(&self.remote) {
            Ok(names) => names.into_iter().map(|n| n.to_lowercase()).collect(),
            Err(e) => {
                tracing::warn!("cannot list tables of '{}': {e}", self.remote);
                vec![]
            }
        }
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some((remote, columns)) = self
            .client
            .resolve_table(&self.remote, name)
            .await
            .map_err(df)?
        else {
            return Ok(None);
        };
        let config = self.client.config();
        let mut mapped: Vec<TableColumn> = Vec::with_capacity(columns.len());
        for c in &columns {
            let Some(mapping) = map_column(config.dialect, c, config.unsupported_type_handling)
            else {
                continue;
            };
            let lower = c.name.to_lowercase();
            let name = if mapped.iter().any(|m| m.name == lower) {
                c.name.clone()
            } else {
                lower
            };
            mapped.push(TableColumn {
                name,
                remote: c.name.clone(),
                mapping,
                nullable: c.nullable,
            });
        }
        let handle = TableHandle {
            schema: self.remote.clone(),
            table: remote,
            columns: mapped,
            filter: None,
            params: vec![],
            limit: None,
            split_key: None,
            query: None,
            snapshot: None,
        };
        Ok(Some(Arc::new(SqlTable {
            client: Arc::clone(&self.client),
            schema: handle.arrow_schema(),
            handle,
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        matches!(self.resolve_blocking(name), Ok(Some(_)))
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let dialect = self.client.dialect();
        let schema = table.schema();
        let mut columns = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            let ty = dialect.ddl_type(f.data_type()).ok_or_else(|| {
                df(SqlError::NotSupported(format!(
                    "column '{}' of type {} cannot be stored in {} (catalog '{}')",
                    f.name(),
                    f.data_type(),
                    dialect.connector_name(),
                    self.client.config().catalog
                )))
            })?;
            let not_null = if f.is_nullable() { "" } else { " NOT NULL" };
            columns.push(format!("{} {ty}{not_null}", dialect.quote(f.name())));
        }
        let sql = format!(
            "CREATE TABLE {} ({})",
            self.remote_table_name(&name),
            columns.join(", ")
        );
        self.client.execute_blocking(sql).map_err(df)?;
        Ok(None)
    }

    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(remote) = self.resolve_blocking(name)? else {
            return Ok(None);
        };
        let sql = format!("DROP TABLE {}", self.remote_table_name(&remote));
        self.client.execute_blocking(sql).map_err(df)?;
        Ok(None)
    }
}

/// One remote table or view.
#[derive(Debug)]
pub(crate) struct SqlTable {
    client: Arc<SqlClient>,
    handle: TableHandle,
    schema: SchemaRef,
}

impl SqlTable {
    pub(crate) fn client(&self) -> &Arc<SqlClient> {
        &self.client
    }

    pub(crate) fn handle(&self) -> &TableHandle {
        &self.handle
    }

    pub(crate) fn pushdown(&self) -> Pushdown<'_> {
        Pushdown {
            dialect: self.client.dialect(),
            columns: &self.handle.columns,
            qualifier: None,
        }
    }

    /// Splits of the table: key or block ranges when it is big enough, else one.
    async fn plan_splits(
        &self,
        target: usize,
        limit: Option<usize>,
        rows: Option<u64>,
    ) -> DfResult<(Vec<tributary_connector::SplitInfo>, Option<SplitKey>)> {
        let config = self.client.config();
        let size = rows.unwrap_or(0);
        let one = || (vec![tributary_connector::SplitInfo::new("all", size)], None);
        let wanted = config.max_splits.unwrap_or(target).max(1);
        let by_size = rows
            .map(|r| r.div_ceil(config.min_rows_per_split).max(1) as usize)
            .unwrap_or(1);
        let n = wanted.min(by_size);
        if n <= 1 || limit.is_some() {
            return Ok(one());
        }
        let (schema, table) = (&self.handle.schema, &self.handle.table);
        match config.dialect {
            Dialect::MySql | Dialect::Sqlite => {
                let key = match config.dialect {
                    Dialect::MySql => self
                        .client
                        .integer_primary_key(schema, table)
                        .await
                        .map_err(df)?,
                    _ => Some("rowid".to_owned()),
                };
                let Some(key) = key else { return Ok(one()) };
                let quoted_table = match config.dialect {
                    Dialect::Sqlite => config.dialect.quote(table),
                    d => d.table_name(schema, table),
                };
                let column = if key == "rowid" && config.dialect == Dialect::Sqlite {
                    key.clone()
                } else {
                    config.dialect.quote(&key)
                };
                match self.client.key_range(quoted_table, column).await {
                    Ok(Some((lo, hi))) => Ok((
                        range_splits("key", lo, hi, n, size),
                        Some(SplitKey::Key(key)),
                    )),
                    // Empty table, or no rowid (WITHOUT ROWID tables, views): one split.
                    Ok(None) | Err(_) => Ok(one()),
                }
            }
            Dialect::Postgres => match self.client.heap_blocks(schema, table).await.map_err(df)? {
                Some(blocks) if blocks > 1 => Ok((
                    range_splits("ctid", 0, blocks as i64 - 1, n, size),
                    Some(SplitKey::Ctid),
                )),
                _ => Ok(one()),
            },
        }
    }
}

#[async_trait]
impl TableProvider for SqlTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        if !self.client.config().filter_pushdown {
            return Ok(vec![
                TableProviderFilterPushDown::Unsupported;
                filters.len()
            ]);
        }
        let p = self.pushdown();
        Ok(filters
            .iter()
            .map(|f| match p.exactness(f) {
                Exactness::Exact => TableProviderFilterPushDown::Exact,
                Exactness::Superset => TableProviderFilterPushDown::Inexact,
                Exactness::No => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let config = self.client.config();
        let mut handle = self.handle.clone();
        let limit = if config.filter_pushdown { limit } else { None };
        if config.filter_pushdown {
            let p = self.pushdown();
            let mut params = Vec::new();
            let conditions: Vec<String> = filters
                .iter()
                .filter_map(|f| p.translate(f, &mut params).map(|(sql, _)| sql))
                .collect();
            if !conditions.is_empty() {
                handle.filter = Some(conditions.join(" AND "));
                handle.params = params;
            }
            handle.limit = limit;
        }
        let stats = self
            .client
            .stats(&handle.schema, &handle.table)
            .await
            .map_err(df)?;
        let target = state.config().target_partitions();
        let (splits, key) = self.plan_splits(target, limit, stats.rows).await?;
        // PostgreSQL splits of one query read one exported snapshot, held by the query's
        // scope until the query ends (no scope, e.g. a local EXPLAIN: no snapshot).
        if key == Some(SplitKey::Ctid)
            && splits.len() > 1
            && let Some(scope) = state.config().get_extension::<QueryScope>()
            && !scope.is_closed()
        {
            let (id, release) = self.client.export_snapshot().await.map_err(df)?;
            if scope.hold(Box::new(release)).is_ok() {
                handle.snapshot = Some(id);
            }
        }
        handle.split_key = key;
        let statistics = Statistics {
            num_rows: stats
                .rows
                .map(|r| Precision::Inexact(r as usize))
                .unwrap_or(Precision::Absent),
            total_byte_size: stats
                .bytes
                .map(|b| Precision::Inexact(b as usize))
                .unwrap_or(Precision::Absent),
            column_statistics: self
                .schema
                .fields()
                .iter()
                .map(|_| ColumnStatistics::new_unknown())
                .collect(),
        };
        let reader = Arc::new(SqlReader::new(Arc::clone(&self.client), handle));
        ScanBuilder::new(config.catalog.clone(), reader)
            .with_splits(splits)
            .with_projection(projection)
            .with_limit(limit)
            .with_statistics(statistics)
            .build()
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(df(SqlError::NotSupported(format!(
                "{insert_op} is not supported for {} tables; use INSERT INTO",
                self.client.dialect().connector_name()
            ))));
        }
        let sink = SqlSink {
            client: Arc::clone(&self.client),
            schema: Arc::clone(&self.schema),
            handle: self.handle.clone(),
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

/// Writes rows into a remote table, all in one transaction.
#[derive(Debug)]
struct SqlSink {
    client: Arc<SqlClient>,
    schema: SchemaRef,
    handle: TableHandle,
}

impl DisplayAs for SqlSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SqlSink: table={}.{}.{}",
            self.client.config().catalog,
            self.handle.schema,
            self.handle.table
        )
    }
}

#[async_trait]
impl DataSink for SqlSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, String>>(2);
        let dialect = self.client.dialect();
        let table = match dialect {
            Dialect::Sqlite => dialect.quote(&self.handle.table),
            d => d.table_name(&self.handle.schema, &self.handle.table),
        };
        let columns: Vec<String> = self
            .handle
            .columns
            .iter()
            .map(|c| dialect.quote(&c.remote))
            .collect();
        let per_statement = self
            .client
            .config()
            .insert_batch_size
            .min(dialect.max_parameters() / columns.len().max(1))
            .max(1);
        let writer = Writer {
            pool: self.client.pool(),
            dialect,
            table,
            columns,
            per_statement,
        };
        let config = Arc::clone(self.client.config());
        let qualified = format!(
            "{}.{}.{}",
            config.catalog, self.handle.schema, self.handle.table
        );
        let written = self.client.run(async move {
            writer.write(rx).await.map_err(|e| match e {
                WriteError::Sql(e) => SqlError::from_sqlx(&config, e),
                WriteError::Input(message) => SqlError::Database {
                    catalog: config.catalog.clone(),
                    message,
                },
            })
        });
        let feed = async move {
            while let Some(batch) = data.next().await {
                let item = batch.map_err(|e| e.to_string());
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        };
        let (written, ()) = futures::join!(written, feed);
        written.map_err(|e| {
            DataFusionError::Execution(format!("writing {qualified}: {e}; nothing was written"))
        })
    }
}

enum WriteError {
    Sql(sqlx::Error),
    Input(String),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        Self::Sql(e)
    }
}

struct Writer {
    pool: Pool,
    dialect: Dialect,
    table: String,
    columns: Vec<String>,
    per_statement: usize,
}

impl Writer {
    fn statement(&self, rows: usize) -> String {
        let width = self.columns.len();
        let mut n = 0;
        let tuples: Vec<String> = (0..rows)
            .map(|_| {
                let markers: Vec<String> = (0..width)
                    .map(|_| {
                        n += 1;
                        self.dialect.placeholder(n)
                    })
                    .collect();
                format!("({})", markers.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            self.table,
            self.columns.join(", "),
            tuples.join(", ")
        )
    }

    fn values(batch: &RecordBatch, from: usize, rows: usize) -> Result<Vec<Value>, WriteError> {
        let mut values = Vec::with_capacity(rows * batch.num_columns());
        for row in from..from + rows {
            for column in batch.columns() {
                values.push(Value::from_array(column, row).map_err(WriteError::Input)?);
            }
        }
        Ok(values)
    }

    async fn write(
        &self,
        mut rx: tokio::sync::mpsc::Receiver<Result<RecordBatch, String>>,
    ) -> Result<u64, WriteError> {
        macro_rules! write_with {
            ($pool:expr, $text:tt) => {{
                let mut tx = $pool.begin().await?;
                let mut written = 0u64;
                while let Some(batch) = rx.recv().await {
                    // An error upstream: returning drops the transaction, which rolls back.
                    let batch = batch.map_err(WriteError::Input)?;
                    let mut from = 0;
                    while from < batch.num_rows() {
                        let rows = self.per_statement.min(batch.num_rows() - from);
                        let sql = self.statement(rows);
                        let values = Self::values(&batch, from, rows)?;
                        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                        for v in &values {
                            query = (|| -> Result<_, String> {
                                Ok(bind_value!(query, v, decimal_as_text = $text))
                            })()
                            .map_err(WriteError::Input)?;
                        }
                        query.execute(&mut *tx).await?;
                        written += rows as u64;
                        from += rows;
                    }
                }
                tx.commit().await?;
                Ok(written)
            }};
        }
        match &self.pool {
            Pool::MySql(p) => write_with!(p, false),
            Pool::Postgres(p) => write_with!(p, false),
            Pool::Sqlite(p) => write_with!(p, true),
        }
    }
}
