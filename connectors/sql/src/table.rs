//! One remote table as DataFusion sees it: filter, projection and limit pushdown, split
//! planning, statistics, and its INSERT plan (the writer is in `sink.rs`).

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use serde::{Deserialize, Serialize};
use tributary_connector::{QueryScope, ScanBuilder};

use crate::client::SqlClient;
use crate::dialect::{Dialect, Exactness};
use crate::error::SqlError;
use crate::pushdown::Pushdown;
use crate::reader::{SplitKey, SqlReader, TableHandle, range_splits};
use crate::sink::SqlSink;
use crate::types::ColumnMapping;

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

pub(crate) fn df(e: SqlError) -> DataFusionError {
    e.into()
}

/// One remote table or view.
#[derive(Debug)]
pub(crate) struct SqlTable {
    client: Arc<SqlClient>,
    handle: TableHandle,
    schema: SchemaRef,
}

impl SqlTable {
    pub(crate) fn new(client: Arc<SqlClient>, handle: TableHandle) -> Self {
        Self {
            client,
            schema: handle.arrow_schema(),
            handle,
        }
    }

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
            ..Statistics::new_unknown(&self.schema)
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
