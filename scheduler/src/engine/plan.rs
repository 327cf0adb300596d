//! A planned statement run by its kind: DDL and session statements here, `EXPLAIN` locally,
//! `EXPLAIN ANALYZE` as a job then its stages, writes through `write.rs`, reads of
//! `information_schema` alone locally, every other query as a Ballista job.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::Column;
use datafusion::logical_expr::{
    DdlStatement, Expr, LogicalPlan, LogicalPlanBuilder, WriteOp, cast,
};
use datafusion::prelude::SessionContext;
use tributary_connector::TableProperties;
use tributary_telemetry::data_size;

use super::run::Announce;
use super::{
    Engine, JobResult, Outcome, ResultOrder, client_schema, range_partitions, result_order,
};
use crate::error::{Result, SchedulerError};
use crate::session::Session;

impl Engine {
    pub(super) async fn run_plan(
        &self,
        session: &Session,
        ctx: Arc<SessionContext>,
        plan: LogicalPlan,
        sql: &str,
    ) -> Result<Outcome> {
        match &plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
                self.create_table(session, &ctx, create, sql, &TableProperties::default())
                    .await
            }
            LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)) => {
                let WriteOp::Insert(op) = dml.op else {
                    return Err(SchedulerError::Engine("not an INSERT".into()));
                };
                let options = ctx.state().config().options().catalog.clone();
                let table = dml
                    .table_name
                    .clone()
                    .resolve(&options.default_catalog, &options.default_schema);
                if let Some(rows) = self
                    .write_distributed(session, &ctx, &table, &dml.input, op, sql)
                    .await?
                {
                    return Ok(Outcome::Update(rows));
                }
                let target = source_as_provider(&dml.target)?;
                let job = self
                    .run_job(session, Arc::clone(&ctx), &dml.input, sql)
                    .await?;
                let schema = Arc::new(dml.input.schema().as_arrow().clone());
                let rows = self.write_job(&ctx, job, schema, target, op).await?;
                Ok(Outcome::Update(rows))
            }
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) => {
                ctx.execute_logical_plan(plan).await?.collect().await?;
                Ok(Outcome::Update(0))
            }
            LogicalPlan::Explain(_) | LogicalPlan::DescribeTable(_) => {
                let df = ctx.execute_logical_plan(plan).await?;
                let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                Ok(Outcome::Rows(schema, df.collect().await?))
            }
            LogicalPlan::Analyze(analyze) => {
                let distribution = session
                    .property("join_distribution_type")
                    .unwrap_or_default();
                // Run as the query itself would: an ordered result sorted per partition.
                let (input, order) = with_result_order(analyze.input.as_ref().clone());
                let merge = order
                    .as_ref()
                    .map(|o| merge_line(o, input.schema().as_arrow()));
                // Only for telling adaptive switches: a plan that cannot be predicted here
                // still runs.
                // Predicted on the plan the job will run: in the order statistics suggest.
                let strategy = crate::join_order::Strategy::of(session);
                let ordered = Box::pin(crate::join_order::reorder(&ctx, &input, strategy))
                    .await
                    .map(|(plan, _)| plan);
                let predicted = ordered.as_ref().unwrap_or(&input);
                let expected = crate::explain::expected_joins(&ctx, predicted, &distribution)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::debug!("no join expectations for EXPLAIN ANALYZE: {e}");
                        Vec::new()
                    });
                let job = self.run_job(session, ctx, &input, sql).await?;
                let merge = match &order {
                    Some(o) if self.partition_order(&job, o).await.is_some() => {
                        Some(concatenation_line(o, input.schema().as_arrow()))
                    }
                    _ => merge,
                };
                let info = crate::monitor::current_query()
                    .map(|q| q.info())
                    .unwrap_or_default();
                let (schema, batches) = crate::explain::analyze(
                    &self.jobs,
                    &self.monitor.tasks,
                    &job.job_id,
                    &distribution,
                    &expected,
                    &crate::explain::AnalyzeNotes {
                        join_order: &info.join_order,
                        dynamic_filters: &info.dynamic_filters,
                        result_merge: merge.as_deref(),
                    },
                )
                .await?;
                Ok(Outcome::Rows(schema, batches))
            }
            LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => Err(SchedulerError::NotSupported(
                "UPDATE, DELETE and COPY are not supported yet".into(),
            )),
            // The scheduler's own tables run here: DataFusion's information_schema tables are
            // computed from the session's catalogs and cannot be sent to executors, and the
            // system catalog must answer when every executor slot is busy (that is when one
            // looks at system.runtime.queries), as Trino's coordinator answers it.
            _ if reads_only_scheduler_tables(&plan, &ctx.state().config().options().catalog) => {
                let df = ctx.execute_logical_plan(plan).await?;
                let schema = client_schema(df.schema().as_arrow());
                let batches = df
                    .collect()
                    .await?
                    .iter()
                    .map(|b| tributary_connector::conform_batch(b, &schema))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(Outcome::Rows(schema, batches))
            }
            _ => {
                let schema = client_schema(plan.schema().as_arrow());
                let (plan, order) = with_result_order(plan);
                let plan = with_client_types(plan);
                let job = self
                    .run_job_announced(session, ctx, &plan, sql, Announce::Running)
                    .await?;
                let total_records = order
                    .as_ref()
                    .map_or(job.total_records, |o| o.rows(job.total_records));
                // Partitions dealt by ranges of the key are sent one after the other.
                let concatenated = match &order {
                    Some(o) => self.partition_order(&job, o).await,
                    None => None,
                };
                let (order, partitions) = match concatenated {
                    Some(ids) => (None, range_partitions::reordered(job.partitions, &ids)),
                    None => (order, job.partitions),
                };
                Ok(Outcome::Job(JobResult {
                    schema,
                    total_records,
                    order,
                    partitions,
                    ..job
                }))
            }
        }
    }
}

/// `plan` with an ordered result sorted per partition, and how the scheduler merges the
/// partitions (`result_order`); `plan` unchanged when its order cannot be merged that way.
pub(super) fn with_result_order(plan: LogicalPlan) -> (LogicalPlan, Option<ResultOrder>) {
    match result_order::split(&plan) {
        Some((sorted, order)) => (sorted, Some(order)),
        None => (plan, None),
    }
}

/// `plan` with its view and dictionary columns cast to the plain types announced to clients
/// (`client_schema`): the executors write the final partitions as clients read them, and the
/// scheduler forwards them without decoding (`flight_sql::forward`). Unchanged when it has
/// no such column (or its columns cannot be projected by name: then the scheduler converts).
fn with_client_types(plan: LogicalPlan) -> LogicalPlan {
    let schema = Arc::clone(plan.schema());
    if schema
        .fields()
        .iter()
        .all(|f| super::client_type(f.data_type()) == *f.data_type())
    {
        return plan;
    }
    let columns = schema.iter().map(|(qualifier, field)| {
        let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
        let plain = super::client_type(field.data_type());
        if plain == *field.data_type() {
            column
        } else {
            cast(column, plain).alias_qualified(qualifier.cloned(), field.name())
        }
    });
    match LogicalPlanBuilder::from(plan.clone())
        .project(columns)
        .and_then(LogicalPlanBuilder::build)
    {
        Ok(projected) => projected,
        Err(_) => plan,
    }
}

/// EXPLAIN's line for an ordered result's merge.
pub(super) fn merge_line(order: &ResultOrder, schema: &arrow::datatypes::Schema) -> String {
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    format!(
        "the scheduler merges the sorted final partitions while it streams the result \
         (one endpoint), or sends them one after the other when their scan was dealt by \
         ranges of the first key (a scan declaring Range partitioning) and they ran so \
         (EXPLAIN ANALYZE tells): {}",
        order.describe(&names)
    )
}

/// EXPLAIN ANALYZE's line for an ordered result whose partitions were sent one after the
/// other (`range_partitions`).
fn concatenation_line(order: &ResultOrder, schema: &arrow::datatypes::Schema) -> String {
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    format!(
        "the scheduler sends the sorted final partitions one after the other (one endpoint \
         each, in order): their scans' files keep their ranges of the first key apart: {}",
        order.describe(&names)
    )
}

/// Whether every table `plan` reads is one the scheduler holds (and it reads some): an
/// `information_schema` table or one of the `system` catalog. Partial names resolve against
/// the session's default catalog and schema (`USE system.runtime`).
fn reads_only_scheduler_tables(
    plan: &LogicalPlan,
    defaults: &datafusion::config::CatalogOptions,
) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let (mut ours, mut other) = (0, 0);
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let name = scan
                .table_name
                .clone()
                .resolve(&defaults.default_catalog, &defaults.default_schema);
            if &*name.schema == "information_schema"
                || &*name.catalog == crate::system::SYSTEM_CATALOG
            {
                ours += 1;
            } else {
                other += 1;
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    ours > 0 && other == 0
}

/// Fails when the in-memory rows `plan` reads (tables of the `memory` catalog, which travel to
/// executors inside the tasks' plans) exceed what one task may carry, `limit` bytes, naming
/// each table and its size; before anything is submitted, so no launch fails on the way.
pub(super) fn check_in_memory_rows(plan: &LogicalPlan, limit: usize) -> Result<()> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::datasource::MemTable;
    let mut tables: Vec<(String, usize)> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(table) = provider.downcast_ref::<MemTable>()
        {
            // A partition being written to (INSERT in progress) is not counted.
            let bytes = table
                .batches
                .iter()
                .filter_map(|partition| partition.try_read().ok())
                .map(|batches| batches.iter().map(encoded_size).sum::<usize>())
                .sum();
            tables.push((scan.table_name.to_string(), bytes));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let total: usize = tables.iter().map(|(_, bytes)| bytes).sum();
    if total <= limit {
        return Ok(());
    }
    let listed = tables
        .iter()
        .map(|(name, bytes)| format!("{name} ({})", data_size(*bytes)))
        .collect::<Vec<_>>()
        .join(", ");
    Err(SchedulerError::ExceededMemoryLimit(format!(
        "Query reads {} of in-memory rows: {listed}; tables of the memory catalog travel to \
         the executors inside the query's tasks, at most {} per query. Write large tables \
         to a connector's catalog (hive, delta_lake, a database) instead",
        data_size(total),
        data_size(limit),
    )))
}

/// The bytes of a batch's rows as an encoding sends them: the sliced part of each buffer.
/// (`get_array_memory_size` counts whole shared buffers: a table filled from decoded result
/// blocks counted each 8 MB block once per batch slicing it, 58 times its size.)
fn encoded_size(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|column| {
            column
                .to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| column.get_array_memory_size())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::table_scan;

    use super::*;

    #[test]
    fn in_memory_rows_beyond_the_task_limit_are_refused_naming_each_table() {
        use arrow::array::Int64Array;
        use datafusion::datasource::{MemTable, provider_as_source};
        use datafusion::logical_expr::LogicalPlanBuilder;

        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        // Ten batches slicing one 100,000-row array, as decoded result blocks are: each
        // counts its slice, not the whole shared buffer.
        let whole = Int64Array::from_iter_values(0..100_000);
        let batches = (0..10)
            .map(|i| {
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(whole.slice(i * 10_000, 10_000))],
                )
                .expect("batch")
            })
            .collect();
        let table = MemTable::try_new(Arc::clone(&schema), vec![batches]).expect("table");
        let source = provider_as_source(Arc::new(table));
        let scan =
            |name: &str| LogicalPlanBuilder::scan(name, Arc::clone(&source), None).expect("scan");
        let plan = scan("memory.default.big")
            .union(scan("memory.default.other").build().expect("plan"))
            .and_then(LogicalPlanBuilder::build)
            .expect("plan");

        // 2 x 100,000 Int64 rows: about 1.5 MB.
        assert!(check_in_memory_rows(&plan, 8 << 20).is_ok());
        let err = check_in_memory_rows(&plan, 1 << 20)
            .expect_err("over the limit")
            .to_string();
        assert!(
            err.contains("memory.default.big (781.25kB)")
                && err.contains("memory.default.other (781.25kB)")
                && err.contains("at most 1.00MB per query"),
            "{err}"
        );
        // A plan without in-memory tables is never refused.
        let empty = table_scan(Some("t"), &schema, None)
            .and_then(LogicalPlanBuilder::build)
            .expect("plan");
        assert!(check_in_memory_rows(&empty, 0).is_ok());
    }

    #[test]
    fn view_and_dictionary_columns_are_cast_to_the_client_types_keeping_names() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8View, true),
            Field::new(
                "tag",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
        ]);
        let plan = table_scan(Some("t"), &schema, None)
            .and_then(LogicalPlanBuilder::build)
            .expect("plan");
        let projected = with_client_types(plan);
        let fields: Vec<(String, DataType)> = projected
            .schema()
            .iter()
            .map(|(q, f)| {
                (
                    format!(
                        "{}.{}",
                        q.map(|q| q.to_string()).unwrap_or_default(),
                        f.name()
                    ),
                    f.data_type().clone(),
                )
            })
            .collect();
        assert_eq!(
            fields,
            vec![
                ("t.id".to_owned(), DataType::Int64),
                ("t.name".to_owned(), DataType::Utf8),
                ("t.tag".to_owned(), DataType::Utf8),
            ]
        );
        assert_eq!(
            client_schema(projected.schema().as_arrow()).as_ref(),
            projected.schema().as_arrow(),
            "the job writes what clients are told"
        );
    }

    #[test]
    fn only_plans_of_system_and_information_schema_tables_run_on_the_scheduler() {
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let scan = |name: &str| {
            table_scan(Some(name), &schema, None)
                .and_then(LogicalPlanBuilder::build)
                .expect("plan")
        };
        let join = |a: &str, b: &str| {
            LogicalPlanBuilder::from(scan(a))
                .cross_join(scan(b))
                .and_then(LogicalPlanBuilder::build)
                .expect("plan")
        };
        let mut defaults = datafusion::config::CatalogOptions::default();
        assert!(reads_only_scheduler_tables(
            &scan("system.runtime.queries"),
            &defaults
        ));
        assert!(reads_only_scheduler_tables(
            &scan("tpch.information_schema.tables"),
            &defaults
        ));
        assert!(reads_only_scheduler_tables(
            &join("system.runtime.queries", "system.runtime.tasks"),
            &defaults
        ));
        assert!(!reads_only_scheduler_tables(
            &join("system.runtime.queries", "tpch.tiny.nation"),
            &defaults
        ));
        assert!(!reads_only_scheduler_tables(
            &scan("runtime.queries"),
            &defaults
        ));
        defaults.default_catalog = "system".into();
        assert!(reads_only_scheduler_tables(
            &scan("runtime.queries"),
            &defaults
        ));
        let values = LogicalPlanBuilder::values(vec![vec![datafusion::prelude::lit(1)]])
            .and_then(LogicalPlanBuilder::build)
            .expect("plan");
        assert!(!reads_only_scheduler_tables(&values, &defaults));
    }

    #[test]
    fn plans_of_plain_types_are_left_as_they_are() {
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let plan = table_scan(Some("t"), &schema, None)
            .and_then(LogicalPlanBuilder::build)
            .expect("plan");
        assert_eq!(with_client_types(plan.clone()), plan);
    }
}
