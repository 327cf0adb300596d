//! [`EstimateExec`]: a plan node that runs its input unchanged but reports a size of the
//! planner's choosing.
//!
//! Ballista's adaptive planner decides each join's distribution (broadcast the build side, or
//! shuffle both sides) from the size statistics of the join's inputs and session-wide
//! thresholds; it has no way to be told "this join, this way". Putting an `EstimateExec`
//! that reports a tiny size over one input makes that input the broadcast build side; huge
//! sizes over both inputs make the join partitioned. The scheduler places them for join
//! hints (`/*+ BROADCAST(t) */`). On executors the node only passes its input's batches on.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::Schema;

use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result as DfResult, Statistics};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

/// The size an [`EstimateExec`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SizeEstimate {
    /// One row, one byte: below every broadcast threshold.
    Tiny,
    /// Far above every broadcast threshold, so the input is shuffled (and not staged to be
    /// measured first).
    Huge,
}

impl SizeEstimate {
    /// The bytes a [`SizeEstimate::Huge`] input reports.
    pub const HUGE_BYTES: usize = 1 << 60;

    fn statistics(self, schema: &Schema) -> Statistics {
        let (rows, bytes) = match self {
            SizeEstimate::Tiny => (1, 1),
            SizeEstimate::Huge => (Self::HUGE_BYTES / 64, Self::HUGE_BYTES),
        };
        Statistics::new_unknown(schema)
            .with_num_rows(Precision::Inexact(rows))
            .with_total_byte_size(Precision::Inexact(bytes))
    }
}

/// Runs `input` unchanged; reports [`SizeEstimate`] as its statistics.
#[derive(Debug)]
pub struct EstimateExec {
    input: Arc<dyn ExecutionPlan>,
    estimate: SizeEstimate,
    /// Why, for plans as displayed (`BROADCAST(b)`).
    reason: String,
}

impl EstimateExec {
    /// `input` reporting `estimate`, for `reason`.
    pub fn new(input: Arc<dyn ExecutionPlan>, estimate: SizeEstimate, reason: String) -> Self {
        Self {
            input,
            estimate,
            reason,
        }
    }

    /// The size reported.
    pub fn estimate(&self) -> SizeEstimate {
        self.estimate
    }

    /// Why (the hint), as displayed.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The input.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

impl DisplayAs for EstimateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.estimate {
            SizeEstimate::Tiny => "broadcast build side",
            SizeEstimate::Huge => "partitioned side",
        };
        write!(f, "JoinHint: {} ({side})", self.reason)
    }
}

impl ExecutionPlan for EstimateExec {
    fn name(&self) -> &str {
        "EstimateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
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
            datafusion::error::DataFusionError::Internal("EstimateExec needs one child".into())
        })?;
        Ok(Arc::new(Self::new(
            input,
            self.estimate,
            self.reason.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        Ok(Arc::new(self.estimate.statistics(&self.schema())))
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn metrics(&self) -> Option<MetricsSet> {
        // Ballista matches a task's metrics to plan nodes by position, counting only nodes
        // that report some: an empty set keeps the nodes below in their places.
        Some(MetricsSet::new())
    }
}
