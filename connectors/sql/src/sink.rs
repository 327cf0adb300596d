//! INSERT into a remote table: the `DataSink` behind `TableProvider::insert_into`, writing
//! multi-row INSERTs with bound values, all in one transaction.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::datasource::sink::DataSink;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;

use crate::client::SqlClient;
use crate::dialect::Dialect;
use crate::error::SqlError;
use crate::pool::Pool;
use crate::reader::TableHandle;
use crate::value::{Value, bind_value};

/// Writes rows into a remote table, all in one transaction.
#[derive(Debug)]
pub(crate) struct SqlSink {
    pub(crate) client: Arc<SqlClient>,
    pub(crate) schema: SchemaRef,
    pub(crate) handle: TableHandle,
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
        // The writer commits on the connector's runtime, outside the statement's task.
        let gate = tributary_connector::current_gate();
        let written = self.client.run(async move {
            writer.write(rx, gate).await.map_err(|e| match e {
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
        gate: Option<Arc<dyn tributary_connector::CommitGate>>,
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
                // The point of no return: a statement killed before it rolls back (the
                // transaction is dropped); once passed, it can no longer be killed.
                if let Some(gate) = &gate {
                    gate.pass().map_err(WriteError::Input)?;
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
