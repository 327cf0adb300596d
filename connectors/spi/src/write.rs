//! Distributed writes: a statement's rows written by the executors' tasks, each its own part
//! (files), and made visible once, by the scheduler, after every task succeeded.
//!
//! A connector that can write this way answers [`crate::Connector::begin_write`] with a
//! [`DistributedWrite`]: begun on the scheduler (a write id, the table marked as being
//! written), encoded into the job's plan as a [`WriterExec`] over the query (the connector
//! codec carries it to the executors, [`crate::Connector::decode_write`] rebuilds it), run by
//! each task over its partition of the rows ([`DistributedWrite::write`] returns what it
//! wrote), and committed by the scheduler with every task's [`WrittenPart`] — or aborted.
//! A task that failed and was retried leaves parts nobody reports: the commit must make only
//! the reported parts visible.

use std::fmt;
use std::sync::Arc;

use arrow::array::{BinaryArray, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};

use crate::error::Result;

/// What one task wrote: its rows and what the commit needs of them (the connector's own
/// encoding, e.g. the files' names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WrittenPart {
    /// Rows written.
    pub rows: u64,
    /// The connector's description of the part.
    pub data: Vec<u8>,
}

/// One statement's write into one table, done by many tasks and committed once.
#[async_trait]
pub trait DistributedWrite: fmt::Debug + Send + Sync + 'static {
    /// The target as EXPLAIN shows it (`table=hive.default.orders`).
    fn describe(&self) -> String;

    /// Encodes what [`crate::Connector::decode_write`] needs to rebuild this write on an
    /// executor.
    fn encode(&self) -> Result<Vec<u8>>;

    /// Writes one task's rows (partition `partition` of the query), invisible to readers
    /// until the commit. Runs on an executor.
    async fn write(
        &self,
        partition: usize,
        data: SendableRecordBatchStream,
    ) -> DfResult<WrittenPart>;

    /// Makes exactly `parts` visible, at once, on the scheduler: passes the statement's
    /// point of no return (`crate::point_of_no_return`) just before the step that makes
    /// them visible, and once started runs to its end even if the caller stops waiting (on
    /// a task of its own). An error means nothing became visible ([`Self::abort`] follows).
    /// Returns the rows written.
    async fn commit(&self, parts: Vec<WrittenPart>) -> Result<u64>;

    /// Undoes a write that will not be committed: removes what its tasks wrote. Never fails
    /// (what cannot be removed stays invisible, and is logged).
    async fn abort(&self);
}

/// The columns of a [`WriterExec`]'s output: one row per task.
pub fn written_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("rows", DataType::UInt64, false),
        Field::new("part", DataType::Binary, false),
    ]))
}

/// Reads the [`WrittenPart`]s out of a [`WriterExec`]'s output batches.
pub fn written_parts(batches: &[RecordBatch]) -> DfResult<Vec<WrittenPart>> {
    let mut parts = Vec::new();
    for batch in batches {
        let rows = batch
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| DataFusionError::Internal("a write's row counts are not u64".into()))?;
        let data = batch
            .column(1)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or_else(|| DataFusionError::Internal("a write's parts are not binary".into()))?;
        for i in 0..batch.num_rows() {
            parts.push(WrittenPart {
                rows: rows.value(i),
                data: data.value(i).to_vec(),
            });
        }
    }
    Ok(parts)
}

/// Writes each partition of its input through a [`DistributedWrite`]; outputs one row per
/// partition: the rows written and the part's description.
#[derive(Debug)]
pub struct WriterExec {
    input: Arc<dyn ExecutionPlan>,
    catalog: String,
    write: Arc<dyn DistributedWrite>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl WriterExec {
    /// Writes `input`'s rows into `catalog` through `write`.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        catalog: impl Into<String>,
        write: Arc<dyn DistributedWrite>,
    ) -> Self {
        let partitions = input.output_partitioning().partition_count();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(written_schema()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Self {
            input,
            catalog: catalog.into(),
            write,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The catalog written to.
    pub fn catalog(&self) -> &str {
        &self.catalog
    }

    /// The write.
    pub fn write(&self) -> &Arc<dyn DistributedWrite> {
        &self.write
    }
}

impl DisplayAs for WriterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WriterExec: {}", self.write.describe())
    }
}

impl ExecutionPlan for WriterExec {
    fn name(&self) -> &str {
        "WriterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
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
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("WriterExec needs one child".into()))?;
        Ok(Arc::new(Self::new(
            input,
            self.catalog.clone(),
            Arc::clone(&self.write),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let data = self.input.execute(partition, context)?;
        let write = Arc::clone(&self.write);
        let rows_metric = MetricBuilder::new(&self.metrics).output_rows(partition);
        let written = async move {
            let part = write.write(partition, data).await?;
            rows_metric.add(usize::try_from(part.rows).unwrap_or(usize::MAX));
            Ok::<_, DataFusionError>(RecordBatch::try_new(
                written_schema(),
                vec![
                    Arc::new(UInt64Array::from(vec![part.rows])),
                    Arc::new(BinaryArray::from_vec(vec![part.data.as_slice()])),
                ],
            )?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            written_schema(),
            futures::stream::once(written),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
