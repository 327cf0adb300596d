//! The way from a plan down to the file scan a column comes from.

use std::sync::Arc;

use ballista_core::execution_plans::ShuffleWriterExec;
use datafusion::common::JoinType;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ChildrenPropertiesMode, ExecutionPlan, ReplaceChildrenOptions};

/// `plan` over `children`, its properties computed again.
pub(super) fn with_children(
    plan: &Arc<dyn ExecutionPlan>,
    children: Vec<Arc<dyn ExecutionPlan>>,
) -> Option<Arc<dyn ExecutionPlan>> {
    Arc::clone(plan)
        .replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
        .ok()
}

/// A way from a plan down to a file scan along which every row stays in its partition, and
/// a column followed along it.
pub(super) struct ScanPath {
    /// The nodes from the top down, each with the index of the child the way takes.
    pub(super) nodes: Vec<(Arc<dyn ExecutionPlan>, usize)>,
    /// The scan's files.
    pub(super) config: FileScanConfig,
    /// The column in the scan's table schema (file columns, then partition columns).
    pub(super) column: usize,
}

impl ScanPath {
    /// The plan again with `scan` in place of the file scan.
    pub(super) fn rebuild(&self, scan: Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
        let mut child = scan;
        for (node, index) in self.nodes.iter().rev() {
            let mut children: Vec<Arc<dyn ExecutionPlan>> =
                node.children().into_iter().map(Arc::clone).collect();
            *children.get_mut(*index)? = child;
            child = with_children(node, children)?;
        }
        Some(child)
    }
}

/// How sure a way down to a scan must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Every row stays in its partition: a final stage's plan as it ran.
    Strict,
    /// Where the rows of the column come from, before Ballista's adaptive planner has chosen
    /// the joins (a join whose build side turns out small becomes a broadcast that keeps its
    /// probe side's partitions): the column is followed through any operator whose output
    /// columns are its inputs' by position. A wrong guess costs only the regrouping.
    Hint,
}

/// The way from `plan` down to the file scan its output column `column` comes from, through
/// operators that keep each row in its input partition (in `Mode::Hint`, through any that
/// pass the column on); `None` at any other operator, or where the column is computed.
pub(super) fn trace(plan: &Arc<dyn ExecutionPlan>, column: usize, mode: Mode) -> Option<ScanPath> {
    let mut nodes = Vec::new();
    let mut node = Arc::clone(plan);
    let mut column = column;
    loop {
        let (child, index) = if let Some(scan) = node.downcast_ref::<DataSourceExec>() {
            let config = scan.data_source().downcast_ref::<FileScanConfig>()?;
            let column = match config.file_source().projection() {
                Some(projection) => projection
                    .as_ref()
                    .get(column)?
                    .expr
                    .downcast_ref::<Column>()?
                    .index(),
                None => column,
            };
            return Some(ScanPath {
                nodes,
                config: config.clone(),
                column,
            });
        } else if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
            column = projection
                .expr()
                .get(column)?
                .expr
                .downcast_ref::<Column>()?
                .index();
            (Arc::clone(projection.input()), 0)
        } else if let Some(filter) = node.downcast_ref::<FilterExec>() {
            if let Some(projection) = filter.projection() {
                column = *projection.get(column)?;
            }
            (Arc::clone(filter.input()), 0)
        } else if let Some(join) = node.downcast_ref::<HashJoinExec>() {
            if let Some(projection) = &join.projection {
                column = *projection.get(column)?;
            }
            let left = join.left().schema().fields().len();
            match (mode, join.join_type()) {
                // A build side collected whole: each output partition is the probe side's.
                (Mode::Strict, _) if *join.partition_mode() != PartitionMode::CollectLeft => {
                    return None;
                }
                (_, JoinType::Inner) if column >= left => {
                    column -= left;
                    (Arc::clone(join.right()), 1)
                }
                (_, JoinType::RightSemi | JoinType::RightAnti) => (Arc::clone(join.right()), 1),
                (Mode::Hint, JoinType::Inner) => (Arc::clone(join.left()), 0),
                (Mode::Hint, JoinType::LeftSemi | JoinType::LeftAnti) => {
                    (Arc::clone(join.left()), 0)
                }
                _ => return None,
            }
        } else if let Some(sort) = node.downcast_ref::<SortExec>() {
            if mode == Mode::Strict && !sort.preserve_partitioning() {
                return None;
            }
            (Arc::clone(sort.input()), 0)
        } else if node.is::<ShuffleWriterExec>() || node.is::<CooperativeExec>() {
            // Ballista's writer of a final stage keeps its input's partitions.
            (Arc::clone(node.children().first()?), 0)
        } else if mode == Mode::Hint {
            let (index, at) = by_position(&node, column)?;
            column = at;
            (Arc::clone(node.children()[index]), index)
        } else {
            return None;
        };
        nodes.push((node, index));
        node = child;
    }
}

/// The child and its column that output column `column` of `node` is, when `node`'s
/// columns are its children's, one after the other (a join, a shuffle) or one child's.
pub(super) fn by_position(node: &Arc<dyn ExecutionPlan>, column: usize) -> Option<(usize, usize)> {
    let output = node.schema();
    let names = |fields: Vec<&arrow::datatypes::FieldRef>| -> bool {
        fields.len() == output.fields().len()
            && fields
                .iter()
                .zip(output.fields())
                .all(|(a, b)| a.name() == b.name())
    };
    let inputs: Vec<arrow::datatypes::SchemaRef> =
        node.children().iter().map(|c| c.schema()).collect();
    if names(inputs.iter().flat_map(|s| s.fields().iter()).collect()) {
        let mut start = 0;
        for (index, input) in inputs.iter().enumerate() {
            let len = input.fields().len();
            if column < start + len {
                return Some((index, column - start));
            }
            start += len;
        }
        return None;
    }
    inputs
        .iter()
        .position(|input| names(input.fields().iter().collect()))
        .map(|index| (index, column))
}
