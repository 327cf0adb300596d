//! DataFusion's generator table functions (`range`, `generate_series`), made to survive the
//! trip to an executor.
//!
//! datafusion-proto 55 encodes a generator scan (`LazyMemoryExec`) with its projected schema,
//! not with its projection, and the executor rebuilds the generator from that schema; the
//! generator still emits its `value` column. A scan projecting no column at all
//! (`SELECT count(*) FROM range(1000)`) therefore failed on every executor with "number of
//! columns(1) must match number of fields(0) in schema". Here such a scan reads its whole
//! row, and an empty projection above it keeps only the row count; both halves travel as
//! datafusion-proto writes them. (Upstream: `try_from_lazy_memory_exec` in
//! datafusion-proto's `physical_plan/mod.rs`.)

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{
    Session, TableFunction, TableFunctionArgs, TableFunctionImpl, TableProvider,
};
use datafusion::common::{Result, Statistics};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

/// The table functions whose scans are generators (`LazyMemoryExec`).
const GENERATORS: [&str; 2] = ["range", "generate_series"];

/// Wraps the session's generator table functions (see the module docs); others stay as they
/// are.
pub(crate) fn wrap_generators(functions: &mut HashMap<String, Arc<TableFunction>>) {
    for name in GENERATORS {
        if let Some(function) = functions.get(name) {
            let wrapped = WholeRowGenerator(Arc::clone(function.function()));
            functions.insert(
                name.to_owned(),
                Arc::new(TableFunction::new(name.to_owned(), Arc::new(wrapped))),
            );
        }
    }
}

/// A generator table function whose tables never scan an empty projection.
#[derive(Debug)]
struct WholeRowGenerator(Arc<dyn TableFunctionImpl>);

impl TableFunctionImpl for WholeRowGenerator {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        Ok(Arc::new(WholeRowTable(self.0.call_with_args(args)?)))
    }
}

/// A generator's table: everything delegated, except that an empty projection reads the
/// whole row under a projection to no column.
#[derive(Debug)]
struct WholeRowTable(Arc<dyn TableProvider>);

#[async_trait]
impl TableProvider for WholeRowTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        self.0.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.0.statistics()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match projection {
            Some(columns) if columns.is_empty() => {
                let rows = self.0.scan(state, None, filters, limit).await?;
                let none = Vec::<ProjectionExpr>::new();
                Ok(Arc::new(ProjectionExec::try_new(none, rows)?))
            }
            _ => self.0.scan(state, projection, filters, limit).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::collect;
    use datafusion::prelude::SessionContext;
    use datafusion_proto::bytes::{physical_plan_from_bytes, physical_plan_to_bytes};

    use super::*;

    /// A count over a generator, sent as executors receive it (encoded by datafusion-proto and
    /// decoded), runs and counts right; without the wrapper the first one failed.
    #[tokio::test]
    async fn a_count_over_a_generator_runs_after_the_trip_to_an_executor() -> Result<()> {
        let state = SessionContext::new().state();
        let mut functions = state.table_functions().clone();
        wrap_generators(&mut functions);
        let state = SessionStateBuilder::new_from_existing(state)
            .with_table_functions(functions)
            .build();
        let context = SessionContext::new_with_state(state);
        for (sql, expected) in [
            ("SELECT count(*) FROM range(100000)", 100_000),
            ("SELECT count(*) FROM generate_series(1, 10)", 10),
            ("SELECT count(*) FROM range(0)", 0),
            ("SELECT count(value) FROM range(7)", 7),
        ] {
            let plan = context.sql(sql).await?.create_physical_plan().await?;
            let sent =
                physical_plan_from_bytes(&physical_plan_to_bytes(plan)?, &context.task_ctx())?;
            let batches = collect(sent, context.task_ctx()).await?;
            let count = batches[0].column(0).as_primitive::<Int64Type>().value(0);
            assert_eq!(count, expected, "{sql}");
        }
        Ok(())
    }
}
