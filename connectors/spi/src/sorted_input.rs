//! [`SortedInputExec`]: a plan node that passes its input on unchanged and requires it
//! sorted, partition by partition.
//!
//! An ordered result over a broadcast join is cheaper sorted before the join than after it:
//! the probe side's rows are narrower than the join's (no build-side columns gathered yet)
//! and a broadcast join keeps its probe side's order. A `SortExec` placed there alone would
//! not survive: DataFusion's sort enforcement (`EnsureRequirements`) removes any sort no operator above requires
//! (Ballista's adaptive planner runs it again as stages finish). This node is that
//! requirement. Once the join is chosen, the result's own sort is satisfied by the join's
//! order and sort enforcement removes it instead. The scheduler places it
//! (`scheduler/src/engine/presort.rs`); on executors it only passes its input's batches on.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result as DfResult, Statistics};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{LexOrdering, OrderingRequirements, PhysicalExpr};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

/// Runs `input` unchanged; requires each of its partitions sorted by `ordering`.
#[derive(Debug)]
pub struct SortedInputExec {
    input: Arc<dyn ExecutionPlan>,
    ordering: LexOrdering,
}

impl SortedInputExec {
    /// `input`, required sorted by `ordering` (expressions of `input`'s columns).
    pub fn new(input: Arc<dyn ExecutionPlan>, ordering: LexOrdering) -> Self {
        Self { input, ordering }
    }

    /// The order required of the input.
    pub fn ordering(&self) -> &LexOrdering {
        &self.ordering
    }

    /// The input.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

impl DisplayAs for SortedInputExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SortedInput: {} (sorted before the join, whose order the result keeps)",
            self.ordering
        )
    }
}

impl ExecutionPlan for SortedInputExec {
    fn name(&self) -> &str {
        "SortedInputExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        vec![Some(OrderingRequirements::from(self.ordering.clone()))]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal("SortedInputExec needs one child".into())
        })?;
        Ok(Arc::new(Self::new(input, self.ordering.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        Ok(input_stats
            .first()
            .map(Arc::clone)
            .unwrap_or_else(|| Arc::new(Statistics::new_unknown(&self.schema()))))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        // Ballista matches a task's metrics to plan nodes by position, counting only nodes
        // that report some: an empty set keeps the nodes below in their places.
        Some(MetricsSet::new())
    }
}
