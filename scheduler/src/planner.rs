//! DataFusion's physical planner with Tributary's logical extension nodes: join hints (as
//! `EstimateExec`s), distributed writes (as `WriterExec`s) and ordered results sorted per
//! partition (as `SortExec`s keeping their partitions, which the scheduler merges, or sends
//! one after the other when their scan was dealt by ranges of the key). Every session,
//! including the ones Ballista plans jobs with, uses it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::Result as DfResult;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};

/// The query planner of every session.
#[derive(Debug, Default)]
pub(crate) struct TributaryQueryPlanner;

#[async_trait]
impl QueryPlanner for TributaryQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn datafusion::catalog::Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let plan = DefaultPhysicalPlanner::with_extension_planners(vec![
            Arc::new(crate::joins::HintPlanner),
            Arc::new(crate::engine::WritePlanner),
            Arc::new(crate::engine::PartitionSortPlanner),
        ])
        .create_physical_plan(logical_plan, session_state)
        .await?;
        // An ordered result's scan dealt by ranges of its key, when its files allow it.
        Ok(crate::engine::regroup(plan))
    }
}
