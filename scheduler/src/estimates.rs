//! Rows of a part of a logical plan by its sources' statistics, as the physical planner would
//! see them: what the join order and dynamic filters decide by before a query runs.

use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::prelude::SessionContext;

/// A plan part's rows by statistics: what it outputs and what its sources hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Estimate {
    pub(crate) output: usize,
    pub(crate) sources: usize,
}

/// `part`'s [`Estimate`] (it is planned here), `None` when its statistics cannot tell.
pub(crate) async fn estimate(ctx: &SessionContext, part: &LogicalPlan) -> Option<Estimate> {
    let physical = ctx.state().create_physical_plan(part).await.ok()?;
    let rows = |node: &dyn ExecutionPlan| match StatisticsContext::new()
        .compute(node, &StatisticsArgs::new())
        .map(|s| s.num_rows)
    {
        Ok(Precision::Exact(rows) | Precision::Inexact(rows)) => Some(rows),
        _ => None,
    };
    let output = rows(physical.as_ref())?;
    let mut sources = Some(0usize);
    let _ = physical.apply(|node| {
        if node.children().is_empty() {
            sources = sources
                .zip(rows(node.as_ref()))
                .map(|(total, rows)| total.saturating_add(rows));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    Some(Estimate {
        output,
        sources: sources?,
    })
}
