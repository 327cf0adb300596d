//! The operators that join a skewed partition in pieces: [`SkewJoin`] in place of a
//! partitioned hash join, [`Above`] in place of the partition-wise operators above it (see the
//! parent module for when a partition is skewed).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use datafusion::common::JoinType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions,
};

use super::{SideSize, SkewContext, concrete, side_size};
use crate::delegate::delegate_plan_to;

/// Which side of a skewed partition is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Split {
    Probe,
    Build,
}

/// A partitioned hash join that joins a skewed partition in pieces; otherwise the join itself
/// (name, display, children, properties and downcasts), with the pieces' metrics added.
pub(crate) struct SkewJoin {
    pub(super) join: Arc<dyn ExecutionPlan>,
    pub(super) context: SkewContext,
    metrics: ExecutionPlanMetricsSet,
    /// The plans skewed partitions ran as (their joins' metrics are reported with the join's).
    pieces: Mutex<Vec<Arc<dyn ExecutionPlan>>>,
}

impl SkewJoin {
    pub(super) fn new(join: Arc<dyn ExecutionPlan>, context: SkewContext) -> Self {
        Self {
            join,
            context,
            metrics: ExecutionPlanMetricsSet::new(),
            pieces: Mutex::default(),
        }
    }

    pub(super) fn hash_join(&self) -> &HashJoinExec {
        self.join
            .downcast_ref::<HashJoinExec>()
            .expect("SkewJoin wraps a HashJoinExec")
    }

    /// Whether `partition` is skewed, and on which side. (A join with a row limit is left
    /// whole: each piece would apply the limit; so is a null-aware anti join, whose answer
    /// depends on every probe row.)
    fn split_of(&self, partition: usize) -> Option<(Split, SideSize, f64)> {
        let join = self.hash_join();
        if join.fetch().is_some() || join.null_aware {
            return None;
        }
        let skewed = |side: Option<SideSize>| {
            let side = side?;
            if side.bytes < self.context.min_bytes {
                return None;
            }
            let ratio = self.context.sizes.ratio_to_median(
                &self.context.job_id,
                side.stage_id,
                side.global,
            )?;
            (ratio >= self.context.factor as f64).then_some((side, ratio))
        };
        if let Some((side, ratio)) = skewed(side_size(join.right(), partition)) {
            return Some((Split::Probe, side, ratio));
        }
        let build_rows_alone = matches!(
            join.join_type(),
            JoinType::Inner
                | JoinType::Left
                | JoinType::LeftSemi
                | JoinType::LeftAnti
                | JoinType::LeftMark
        );
        if build_rows_alone {
            return skewed(side_size(join.left(), partition))
                .map(|(side, ratio)| (Split::Build, side, ratio));
        }
        None
    }

    /// The plan joining `partition` in `pieces` partitions.
    pub(super) fn pieces_plan(
        &self,
        split: Split,
        partition: usize,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let join = self.hash_join();
        let pieces = self.context.pieces;
        let collect_left = |left: Arc<dyn ExecutionPlan>, right: Arc<dyn ExecutionPlan>| {
            join.builder()
                .reset_state()
                .with_partition_mode(PartitionMode::CollectLeft)
                .with_new_children(vec![left, right])?
                .build_exec()
        };
        let left = PartitionOf::plan(Arc::clone(join.left()), partition);
        let right = PartitionOf::plan(Arc::clone(join.right()), partition);
        // The skewed side's rows dealt round-robin to the pieces.
        let dealt = |side: &Arc<dyn ExecutionPlan>| -> Result<Arc<dyn ExecutionPlan>> {
            Ok(Arc::new(RepartitionExec::try_new(
                PartitionOf::plan(Arc::clone(side), partition),
                Partitioning::RoundRobinBatch(pieces),
            )?))
        };
        match split {
            Split::Probe => collect_left(left, dealt(join.right())?),
            Split::Build => {
                let dealt = dealt(join.left())?;
                let joins = (0..pieces)
                    .map(|piece| {
                        collect_left(
                            PartitionOf::plan(Arc::clone(&dealt), piece),
                            Arc::clone(&right),
                        )
                    })
                    .collect::<Result<Vec<_>>>()?;
                UnionExec::try_new(joins)
            }
        }
    }
}

impl fmt::Debug for SkewJoin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkewJoin")
            .field("join", &self.join)
            .finish_non_exhaustive()
    }
}

delegate_plan_to!(SkewJoin, join);

impl ExecutionPlan for SkewJoin {
    delegate_plan_to!(join);

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let join = Arc::clone(&self.join).replace_children(children, options)?;
        Ok(Arc::new(Self::new(join, self.context.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        match self.pieces(partition)? {
            Some(plan) => CoalescePartitionsExec::new(plan).execute(0, context),
            None => self.join.execute(partition, context),
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        let mut set = self.join.metrics().unwrap_or_default();
        for metric in self.metrics.clone_inner().iter() {
            set.push(Arc::clone(metric));
        }
        let pieces = self.pieces.lock().unwrap_or_else(PoisonError::into_inner);
        for plan in pieces.iter() {
            // The pieces' joins; the readers below them are the join's own (reported there).
            let _ = plan.apply(|node| {
                if node.downcast_ref::<PartitionOf>().is_some() {
                    return Ok(TreeNodeRecursion::Jump);
                }
                if node.downcast_ref::<HashJoinExec>().is_some()
                    && let Some(metrics) = node.metrics()
                {
                    for metric in metrics.iter() {
                        set.push(Arc::clone(metric));
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        Some(set)
    }
}

impl SkewJoin {
    /// When `partition` is skewed: the plan joining it in pieces, of as many partitions as
    /// pieces (counted, logged, and kept for the join's metrics).
    fn pieces(&self, partition: usize) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some((split, side, ratio)) = self.split_of(partition) else {
            return Ok(None);
        };
        let plan = self.pieces_plan(split, partition)?;
        tracing::info!(
            job_id = %self.context.job_id,
            partition = side.global,
            bytes = side.bytes,
            ratio = format!("{ratio:.1}"),
            side = ?split,
            pieces = self.context.pieces,
            "skewed join partition split"
        );
        MetricBuilder::new(&self.metrics)
            .counter("skewed_partitions_split", partition)
            .add(1);
        MetricBuilder::new(&self.metrics)
            .counter("skew_split_pieces", partition)
            .add(self.context.pieces);
        self.context.splits.inc();
        self.pieces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&plan));
        Ok(Some(plan))
    }
}

/// An operator between a [`SkewJoin`] and the stage's shuffle writer that works partition by
/// partition (a projection, a filter, a partial aggregation), so that a skewed partition's
/// pieces run through it in parallel too: the topmost ([`Above::top`]) runs a skewed
/// partition as a copy of the operators down to the join over the join's pieces, each copy
/// kept by the operator it copies for its metrics. Otherwise the operator itself.
pub(crate) struct Above {
    inner: Arc<dyn ExecutionPlan>,
    pub(super) top: bool,
    /// Copies that ran a skewed partition's pieces.
    copies: Mutex<Vec<Arc<dyn ExecutionPlan>>>,
}

impl Above {
    pub(super) fn new(inner: Arc<dyn ExecutionPlan>, top: bool) -> Self {
        Self {
            inner,
            top,
            copies: Mutex::default(),
        }
    }

    /// The operators from this one down to the join, and the join.
    pub(super) fn chain(&self) -> Option<(Vec<&Above>, &SkewJoin)> {
        let mut levels = vec![self];
        loop {
            let below = levels.last()?.inner.children().into_iter().next()?;
            if let Some(join) = concrete::<SkewJoin>(below) {
                return Some((levels, join));
            }
            levels.push(concrete::<Above>(below)?);
        }
    }

    /// A copy of this operator over `input`, kept for the metrics.
    fn copy_over(&self, input: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let copy = Arc::clone(&self.inner).replace_children(
            vec![input],
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )?;
        self.copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&copy));
        Ok(copy)
    }
}

impl fmt::Debug for Above {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Above")
            .field("inner", &self.inner)
            .field("top", &self.top)
            .finish_non_exhaustive()
    }
}

delegate_plan_to!(Above, inner);

impl ExecutionPlan for Above {
    delegate_plan_to!(inner);

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let inner = Arc::clone(&self.inner).replace_children(children, options)?;
        Ok(Arc::new(Self::new(inner, self.top)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let chain = if self.top { self.chain() } else { None };
        let Some((levels, join)) = chain else {
            return self.inner.execute(partition, context);
        };
        let Some(mut plan) = join.pieces(partition)? else {
            return self.inner.execute(partition, context);
        };
        for level in levels.iter().rev() {
            plan = level.copy_over(plan)?;
        }
        CoalescePartitionsExec::new(plan).execute(0, context)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        let mut set = self.inner.metrics()?;
        for copy in self
            .copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            for metric in copy.metrics().iter().flat_map(|m| m.iter()) {
                set.push(Arc::clone(metric));
            }
        }
        Some(set)
    }
}

/// One partition of `input`, as a plan of one partition.
#[derive(Debug)]
struct PartitionOf {
    input: Arc<dyn ExecutionPlan>,
    partition: usize,
    properties: Arc<PlanProperties>,
}

impl PartitionOf {
    fn plan(input: Arc<dyn ExecutionPlan>, partition: usize) -> Arc<dyn ExecutionPlan> {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(input.schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Arc::new(Self {
            input,
            partition,
            properties,
        })
    }
}

impl DisplayAs for PartitionOf {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PartitionOf: partition={}", self.partition)
    }
}

impl ExecutionPlan for PartitionOf {
    fn name(&self) -> &str {
        "PartitionOf"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(input) if children.is_empty() => Ok(Self::plan(input, self.partition)),
            _ => datafusion::common::internal_err!("PartitionOf has one input"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return datafusion::common::internal_err!(
                "PartitionOf has one partition, asked for {partition}"
            );
        }
        self.input.execute(self.partition, context)
    }
}
