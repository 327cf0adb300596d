//! A task's hash join sharing its build side: the joins of one stage's tasks on an executor
//! share DataFusion's build future and, with it, the join's metrics set, so each task's join
//! reports only the metrics it registered itself.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::metrics::{Metric, MetricsSet};
use datafusion::physical_plan::{ExecutionPlan, ReplaceChildrenOptions};

use crate::delegate::delegate_plan_to;

/// A task's hash join sharing its build side with the stage's other tasks on this executor;
/// otherwise the join itself (name, display, children, properties and downcasts), with the
/// metrics this task registered.
pub(crate) struct SharedBuildJoin {
    join: Arc<dyn ExecutionPlan>,
    /// Serialises the joins' `execute` calls (the entry's, shared by its tasks).
    registration: Arc<Mutex<()>>,
    own: Mutex<Vec<Arc<Metric>>>,
}

impl SharedBuildJoin {
    pub(super) fn new(join: Arc<dyn ExecutionPlan>, registration: Arc<Mutex<()>>) -> Self {
        Self {
            join,
            registration,
            own: Mutex::default(),
        }
    }
}

impl fmt::Debug for SharedBuildJoin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBuildJoin")
            .field("join", &self.join)
            .finish()
    }
}

delegate_plan_to!(SharedBuildJoin, join);

impl ExecutionPlan for SharedBuildJoin {
    delegate_plan_to!(join);

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // HashJoinExec keeps its build future (and metrics set) with new children.
        let join = Arc::clone(&self.join).replace_children(children, options)?;
        Ok(Arc::new(Self::new(join, Arc::clone(&self.registration))))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        // The join registers the partition's metrics (and the build's, for the first task)
        // while `execute` runs; the shared set gains nothing else meanwhile.
        let _registering = self
            .registration
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let before: HashSet<*const Metric> = metric_pointers(self.join.metrics());
        let stream = self.join.execute(partition, context)?;
        if let Some(after) = self.join.metrics() {
            let mut own = self.own.lock().unwrap_or_else(PoisonError::into_inner);
            own.extend(
                after
                    .iter()
                    .filter(|m| !before.contains(&Arc::as_ptr(m)))
                    .cloned(),
            );
        }
        Ok(stream)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        let own = self.own.lock().unwrap_or_else(PoisonError::into_inner);
        let mut set = MetricsSet::new();
        for metric in own.iter() {
            set.push(Arc::clone(metric));
        }
        Some(set)
    }
}

fn metric_pointers(set: Option<MetricsSet>) -> HashSet<*const Metric> {
    set.map(|s| s.iter().map(Arc::as_ptr).collect())
        .unwrap_or_default()
}
