//! The logical node of a distributed write: a query whose rows the executors' tasks write
//! through a connector's [`DistributedWrite`]; planned as a [`WriterExec`] over the query
//! (by [`WritePlanner`], one of `crate::planner`'s extensions), one output row per task.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::{DFSchema, DFSchemaRef, Result as DfResult};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use tributary_connector::{DistributedWrite, WriterExec, written_schema};

/// `input`'s rows written into `catalog` through `write`.
#[derive(Debug, Clone)]
pub(crate) struct WriteNode {
    input: LogicalPlan,
    catalog: String,
    write: Arc<dyn DistributedWrite>,
    schema: DFSchemaRef,
}

impl WriteNode {
    /// The plan writing `input` through `write`.
    pub(crate) fn plan(
        input: LogicalPlan,
        catalog: &str,
        write: Arc<dyn DistributedWrite>,
    ) -> DfResult<LogicalPlan> {
        let schema = Arc::new(DFSchema::try_from(written_schema().as_ref().clone())?);
        Ok(LogicalPlan::Extension(Extension {
            node: Arc::new(Self {
                input,
                catalog: catalog.to_owned(),
                write,
                schema,
            }),
        }))
    }

    /// The catalog written to.
    pub(crate) fn catalog(&self) -> &str {
        &self.catalog
    }

    /// The write.
    pub(crate) fn write(&self) -> &Arc<dyn DistributedWrite> {
        &self.write
    }
}

// A node is its target and its input: the write object itself has no identity to compare.
impl PartialEq for WriteNode {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.write, &other.write) && self.input == other.input
    }
}

impl Eq for WriteNode {}

impl Hash for WriteNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.catalog.hash(state);
        self.write.describe().hash(state);
        self.input.hash(state);
    }
}

impl PartialOrd for WriteNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match self.write.describe().partial_cmp(&other.write.describe()) {
            Some(std::cmp::Ordering::Equal) => self.input.partial_cmp(&other.input),
            ordering => ordering,
        }
    }
}

impl UserDefinedLogicalNodeCore for WriteNode {
    fn name(&self) -> &str {
        "Write"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Write: {}", self.write.describe())
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let input = inputs
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("Write needs one input".into()))?;
        Ok(Self {
            input,
            catalog: self.catalog.clone(),
            write: Arc::clone(&self.write),
            schema: Arc::clone(&self.schema),
        })
    }
}

/// Plans [`WriteNode`]s as [`WriterExec`]s (one of `crate::planner`'s extensions).
pub(crate) struct WritePlanner;

#[async_trait]
impl ExtensionPlanner for WritePlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(write) = node.as_any().downcast_ref::<WriteNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Ok(None);
        };
        Ok(Some(Arc::new(WriterExec::new(
            Arc::clone(input),
            write.catalog(),
            Arc::clone(write.write()),
        ))))
    }
}
