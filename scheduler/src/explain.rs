//! `EXPLAIN (TYPE DISTRIBUTED)`: the stages Ballista cuts a plan into.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use ballista_scheduler::planner::{DefaultDistributedPlanner, DistributedPlanner};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use datafusion::prelude::SessionContext;

use crate::error::Result;

/// One row per stage: (`Stage N`, the stage's plan with its exchanges and partitions).
pub(crate) async fn distributed(
    ctx: &SessionContext,
    plan: &LogicalPlan,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let state = ctx.state();
    let physical = state.create_physical_plan(plan).await?;
    let job_id = format!("explain-{}", uuid::Uuid::new_v4());
    let stages = DefaultDistributedPlanner::new().plan_query_stages(
        &job_id.into(),
        physical,
        state.config().options(),
    )?;
    let mut names = Vec::new();
    let mut plans = Vec::new();
    for stage in &stages {
        let stage: Arc<dyn ExecutionPlan> = Arc::clone(stage) as Arc<dyn ExecutionPlan>;
        let partitions = stage.properties().output_partitioning().partition_count();
        names.push(format!(
            "Stage {} ({partitions} output partitions)",
            names.len() + 1
        ));
        plans.push(displayable(stage.as_ref()).indent(true).to_string());
    }
    crate::local::table(&["plan_type", "plan"], vec![names, plans])
}
