//! Writes: `CREATE TABLE [AS SELECT]` and `INSERT INTO … SELECT`. Where the target's connector
//! writes from the executors (`Connector::begin_write`: Hive and Delta tables), the query runs
//! as a Ballista job whose every task writes its own rows (a `WriterExec` on top) and the
//! scheduler commits what the tasks report, once. Otherwise the query runs as a job and its
//! result partitions are streamed, in order, into the target table's own insert plan on the
//! scheduler, so a connector (a database) writes a statement in one transaction.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::SchemaProvider;
use datafusion::common::ResolvedTableReference;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{CreateMemoryTable, LogicalPlan};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use tributary_connector::{DistributedWrite, TableProperties, written_parts, written_schema};
use tributary_proto::JobPartition;

use super::write_node::WriteNode;
use super::{Engine, JobResult, Outcome};
use crate::error::{Result, SchedulerError};
use crate::fetch::PartitionFetcher;
use crate::session::Session;

impl Engine {
    /// `CREATE TABLE t (…)` and `CREATE TABLE t AS SELECT …` in any catalog whose schemas
    /// accept tables. CTAS runs the query first (a failing query creates nothing), then
    /// creates the table and writes the rows; if writing fails the table is dropped again.
    pub(super) async fn create_table(
        &self,
        session: &Session,
        ctx: &Arc<SessionContext>,
        create: &CreateMemoryTable,
        sql: &str,
        properties: &TableProperties,
    ) -> Result<Outcome> {
        if create.temporary {
            return Err(SchedulerError::NotSupported(
                "temporary tables are not supported".into(),
            ));
        }
        let state = ctx.state();
        let options = &state.config().options().catalog;
        let name = create
            .name
            .clone()
            .resolve(&options.default_catalog, &options.default_schema);
        let catalog = ctx.catalog(&name.catalog).ok_or_else(|| {
            SchedulerError::NotFound(format!("catalog '{}' does not exist", name.catalog))
        })?;
        let schema = catalog.schema(&name.schema).ok_or_else(|| {
            SchedulerError::NotFound(format!(
                "schema '{}.{}' does not exist",
                name.catalog, name.schema
            ))
        })?;
        let table = name.table.to_string();
        // CREATE OR REPLACE drops the old table only once the new rows are ready.
        let mut replace = false;
        if schema.table(&table).await?.is_some() {
            match (create.if_not_exists, create.or_replace) {
                (true, _) => return Ok(Outcome::Update(0)),
                (false, true) => replace = true,
                (false, false) => {
                    return Err(SchedulerError::InvalidQuery(format!(
                        "table '{name}' already exists"
                    )));
                }
            }
        }
        let columns = Arc::new(create.input.schema().as_arrow().clone());
        // A connector's catalog creates the table itself (with its properties); the shared
        // `memory` catalog takes an empty in-memory table.
        let connector = self.catalogs.find(&name.catalog);
        let create_empty = || -> Result<()> {
            match connector {
                Some(connector) => connector.create_table(
                    &name.schema,
                    &table,
                    Arc::clone(&columns),
                    properties,
                )?,
                None if properties.is_empty() => {
                    let empty = MemTable::try_new(Arc::clone(&columns), vec![vec![]])?;
                    schema.register_table(table.clone(), Arc::new(empty))?;
                }
                None => {
                    return Err(SchedulerError::NotSupported(format!(
                        "catalog '{}' takes no table properties",
                        name.catalog
                    )));
                }
            }
            Ok(())
        };
        let is_query =
            !matches!(create.input.as_ref(), LogicalPlan::EmptyRelation(e) if !e.produce_one_row);
        if !is_query {
            if replace {
                schema.deregister_table(&table)?;
            }
            create_empty()?;
            return Ok(Outcome::Update(0));
        }
        // Tasks write into the table themselves: it exists before the query runs, and goes
        // again if the write fails. (CREATE OR REPLACE keeps the old table until the new
        // rows are ready, so it is written by the scheduler.)
        if !replace && connector.is_some_and(|c| c.writes_distributed()) {
            create_empty()?;
            let written = self
                .write_distributed(session, ctx, &name, &create.input, InsertOp::Append, sql)
                .await;
            let written = match written {
                Ok(Some(rows)) => Ok(rows),
                Ok(None) => {
                    Box::pin(async {
                        let job = self
                            .run_job(session, Arc::clone(ctx), &create.input, sql)
                            .await?;
                        self.write_created(ctx, job, columns, &schema, &name).await
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            return written
                .map(Outcome::Update)
                .inspect_err(|_| drop_failed_table(&schema, &name));
        }
        let job = self
            .run_job(session, Arc::clone(ctx), &create.input, sql)
            .await?;
        if replace {
            schema.deregister_table(&table)?;
        }
        create_empty()?;
        self.write_created(ctx, job, columns, &schema, &name)
            .await
            .map(Outcome::Update)
            .inspect_err(|_| drop_failed_table(&schema, &name))
    }

    /// Writes a finished job's rows into the table a CTAS just created.
    async fn write_created(
        &self,
        ctx: &Arc<SessionContext>,
        job: JobResult,
        columns: SchemaRef,
        schema: &Arc<dyn SchemaProvider>,
        name: &ResolvedTableReference,
    ) -> Result<i64> {
        let target = schema.table(&name.table).await?.ok_or_else(|| {
            SchedulerError::Engine(format!("table '{name}' vanished after it was created"))
        })?;
        self.write_job(ctx, job, columns, target, InsertOp::Append)
            .await
    }

    /// Runs `input` as a job whose tasks write their rows into `table` themselves and
    /// commits what they wrote, when the table's connector writes that way
    /// (`Connector::begin_write`); `None` when it does not (nothing was done then). A write
    /// that fails, or whose statement is killed or dropped before the commit, is aborted.
    pub(super) async fn write_distributed(
        &self,
        session: &Session,
        ctx: &Arc<SessionContext>,
        table: &ResolvedTableReference,
        input: &LogicalPlan,
        op: InsertOp,
        sql: &str,
    ) -> Result<Option<i64>> {
        let Some(connector) = self.catalogs.find(&table.catalog) else {
            return Ok(None);
        };
        let Some(write) = connector
            .begin_write(&table.schema, &table.table, op != InsertOp::Append)
            .await?
        else {
            return Ok(None);
        };
        let mut guard = AbortOnDrop(Some(Arc::clone(&write)));
        let plan = WriteNode::plan(input.clone(), &table.catalog, Arc::clone(&write))?;
        let written: Result<_> = Box::pin(async {
            let job = self.run_job(session, Arc::clone(ctx), &plan, sql).await?;
            let batches: Vec<RecordBatch> =
                self.job_stream(job, written_schema()).try_collect().await?;
            Ok(written_parts(&batches)?)
        })
        .await;
        // From here the commit decides: it undoes nothing past its point of no return, and
        // it runs to its end even if this statement goes away, so no drop may abort it.
        guard.0 = None;
        let committed = match written {
            Ok(parts) => write.commit(parts).await.map_err(SchedulerError::from),
            Err(e) => Err(e),
        };
        match committed {
            Ok(rows) => Ok(Some(i64::try_from(rows).unwrap_or(i64::MAX))),
            Err(e) => {
                write.abort().await;
                Err(e)
            }
        }
    }

    /// Writes a finished job's rows into a table through the table's own insert plan
    /// (`TableProvider::insert_into`), on the scheduler: one writer per statement, so a
    /// connector can write it all in one transaction.
    pub(super) async fn write_job(
        &self,
        ctx: &Arc<SessionContext>,
        job: JobResult,
        schema: SchemaRef,
        target: Arc<dyn datafusion::catalog::TableProvider>,
        op: InsertOp,
    ) -> Result<i64> {
        // The executors' result files stay needed until the write has read them.
        let _lease = job.lease;
        let source = JobResultStream {
            schema: Arc::clone(&schema),
            partitions: job.partitions,
            fetcher: self.fetcher.clone(),
            lease: None,
        };
        let input =
            StreamingTableExec::try_new(schema, vec![Arc::new(source)], None, vec![], false, None)?;
        let sink = target
            .insert_into(&ctx.state(), Arc::new(input), op)
            .await?;
        let batches = datafusion::physical_plan::collect(sink, ctx.task_ctx()).await?;
        let rows = batches
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::UInt64Array>()
            })
            .map(|c| c.value(0))
            .unwrap_or(0);
        Ok(i64::try_from(rows).unwrap_or(i64::MAX))
    }
}

/// Drops the table of a CTAS whose write failed (a warning if that fails too).
fn drop_failed_table(schema: &Arc<dyn SchemaProvider>, name: &ResolvedTableReference) {
    if let Err(drop_error) = schema.deregister_table(&name.table) {
        tracing::warn!("cannot drop '{name}' after a failed CREATE TABLE AS: {drop_error}");
    }
}

/// Aborts a write whose statement went away (a dropped future) before it ended.
struct AbortOnDrop(Option<Arc<dyn DistributedWrite>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(write) = self.0.take() {
            tokio::spawn(async move { write.abort().await });
        }
    }
}

/// The result partitions of a finished job, read one after the other as one stream (so an
/// ORDER BY keeps its order).
#[derive(Debug)]
struct JobResultStream {
    schema: SchemaRef,
    partitions: Vec<JobPartition>,
    fetcher: PartitionFetcher,
    /// Keeps the job's files needed while the stream lives.
    lease: Option<Arc<crate::leases::Lease>>,
}

impl Engine {
    /// A finished job's rows as one stream (its files stay needed until the stream ends).
    pub(super) fn job_stream(
        &self,
        job: JobResult,
        schema: SchemaRef,
    ) -> SendableRecordBatchStream {
        let source = JobResultStream {
            schema,
            partitions: job.partitions,
            fetcher: self.fetcher.clone(),
            lease: job.lease,
        };
        source.execute(Arc::new(TaskContext::default()))
    }
}

impl PartitionStream for JobResultStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let fetcher = self.fetcher.clone();
        let lease = self.lease.clone();
        let schema = Arc::clone(&self.schema);
        let external = |e: Box<dyn std::error::Error + Send + Sync>| DataFusionError::External(e);
        let batches = futures::stream::iter(self.partitions.clone())
            .then(move |p| {
                let fetcher = fetcher.clone();
                let schema = Arc::clone(&schema);
                async move {
                    fetcher
                        .fetch_as(&p, &schema)
                        .await
                        .map(|s| s.map_err(move |e| external(Box::new(e))))
                        .map_err(|e| external(Box::new(e)))
                }
            })
            .try_flatten()
            // The executors keep the files as long as this stream holds the lease.
            .inspect(move |_| {
                let _held = &lease;
            });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        ))
    }
}
