//! Following a job for its query: its status until it ends or (results that stream) its
//! final stage runs, then its end, and why it stopped (a kill, a broken result stream).

use ballista_core::serde::protobuf::{SuccessfulJob, job_status};
use tributary_proto::JobPartition;

use super::{Announce, CancelOnDrop, Deadline, FINAL_STAGE_POLL, STATUS_POLL, ended, job_result};
use crate::engine::Engine;
use crate::error::{Result, SchedulerError};

/// What a job's watch saw.
pub(super) enum Watched {
    /// The job finished.
    Finished(SuccessfulJob),
    /// The job's final stage runs, with this many partitions.
    FinalStageRunning { stage_id: usize, partitions: usize },
}

/// Follows one job's status for its query.
pub(super) struct JobWatcher {
    pub(super) engine: Engine,
    pub(super) job_id: String,
    pub(super) query: Option<crate::monitor::QueryHandle>,
    pub(super) rx: tokio::sync::mpsc::Receiver<ballista_core::serde::protobuf::JobStatus>,
    pub(super) running_seen: bool,
}

impl JobWatcher {
    /// Waits until the job ends, or (under [`Announce::Running`]) its final stage runs.
    pub(super) async fn watch(&mut self, until: Announce) -> Result<Watched> {
        let job_id: ballista_core::JobId = self.job_id.clone().into();
        // The final stage is looked for often: its rows are waited for.
        let every = match until {
            Announce::Running => FINAL_STAGE_POLL,
            Announce::Finished => STATUS_POLL,
        };
        let mut poll = tokio::time::interval(every);
        let task_manager = &self.engine.scheduler.state.task_manager;
        loop {
            let status = tokio::select! {
                Some(status) = self.rx.recv() => Some(status),
                _ = poll.tick() => task_manager.get_job_status(&job_id).await?,
            };
            match status.and_then(|s| s.status) {
                Some(job_status::Status::Running(_)) => {
                    if let Some(query) = &self.query {
                        query.heartbeat();
                        if !self.running_seen
                            && self.engine.monitor.job_has_running_task(&self.job_id).await
                        {
                            self.running_seen = true;
                            query.running();
                        }
                    }
                    if until == Announce::Running
                        && let Some((stage_id, partitions)) = self.final_stage_running().await
                    {
                        return Ok(Watched::FinalStageRunning {
                            stage_id,
                            partitions,
                        });
                    }
                }
                Some(job_status::Status::Successful(done)) => return Ok(Watched::Finished(done)),
                Some(job_status::Status::Failed(failed)) => {
                    return Err(SchedulerError::job_failed(
                        self.job_id.clone(),
                        failed.error,
                    ));
                }
                _ => {}
            }
        }
    }

    /// Waits for the end of a job whose `partitions` result partitions were announced while
    /// it ran: their locations, or why it failed (as killed, when its query was).
    pub(super) async fn until_end(
        &mut self,
        guard: &mut CancelOnDrop,
        deadline: Deadline,
        partitions: usize,
    ) -> std::result::Result<Vec<JobPartition>, SchedulerError> {
        let waited = tokio::time::timeout_at(deadline.at, self.watch(Announce::Finished)).await;
        let end = match ended(waited, deadline, guard) {
            Ok(Watched::Finished(done)) => {
                self.finishing();
                let result = job_result(self.job_id.clone(), done);
                if result.partitions.len() == partitions {
                    Ok(result.partitions)
                } else {
                    Err(SchedulerError::Engine(format!(
                        "query {} announced {partitions} result partitions and ended with {} \
                         (its final stage ran again)",
                        self.job_id,
                        result.partitions.len()
                    )))
                }
            }
            Ok(Watched::FinalStageRunning { .. }) => Err(SchedulerError::Engine(
                "a job's end was awaited and its final stage reported".into(),
            )),
            Err(e) => Err(self.stopped(e)),
        };
        if let Err(e) = &end {
            tracing::warn!(
                job_id = self.job_id,
                "query failed while its result streamed: {e}"
            );
        }
        end
    }

    /// Why the job stopped with `e`: its query's kill or cancel when there was one.
    pub(super) fn stopped(&self, e: SchedulerError) -> SchedulerError {
        match self.query.as_ref().and_then(|q| q.killed()) {
            Some(kill) if kill.administrative => SchedulerError::Killed(kill.message),
            Some(_) => {
                SchedulerError::Cancelled(self.query.as_ref().map(|q| q.id()).unwrap_or_default())
            }
            None => e,
        }
    }

    /// The job's final stage and its partition count, once it runs.
    async fn final_stage_running(&self) -> Option<(usize, usize)> {
        use ballista_scheduler::state::execution_stage::ExecutionStage;
        let cache = self
            .engine
            .scheduler
            .state
            .task_manager
            .get_running_job_cache();
        let key: ballista_core::JobId = self.job_id.clone().into();
        let job = cache.get(&key)?;
        let graph = job.execution_graph.read().await;
        let root = graph.physical_plan();
        if root.name() == "AdaptiveDatafusionExec" {
            // Ballista's adaptive planner makes stages as their inputs finish, none with
            // output links: the final stage is the one given the plan's root, once no exchange
            // under it is left to run. Its display is the only public way to that id
            // ("AdaptiveDatafusionExec: is_final=true, plan_id=…, stage_id=3, …").
            let line = datafusion::physical_plan::displayable(root.as_ref())
                .one_line()
                .to_string();
            let stage_id = final_stage_of(&line)?;
            return match graph.stages().get(&stage_id) {
                Some(ExecutionStage::Running(stage)) => Some((stage.stage_id, stage.partitions)),
                _ => None,
            };
        }
        graph.stages().values().find_map(|stage| match stage {
            ExecutionStage::Running(stage) if stage.output_links.is_empty() => {
                Some((stage.stage_id, stage.partitions))
            }
            _ => None,
        })
    }

    /// The job succeeded: its query is finishing.
    pub(super) fn finishing(&self) {
        if let Some(query) = &self.query {
            query.finishing();
            let tasks = self.engine.monitor.tasks.of_job(&self.job_id);
            if let Some(first) = tasks.iter().map(|t| t.created_ms).min() {
                query.first_task_launched(first);
            }
        }
    }
}

/// Why a stream of a job's result broke, once one does.
pub(super) async fn broken_stream(broken: &mut crate::live::BrokenStream) -> SchedulerError {
    loop {
        if let Some(cause) = broken.borrow_and_update().clone() {
            return cause;
        }
        if broken.changed().await.is_err() {
            // (Its reads are gone: none will break.)
            return std::future::pending().await;
        }
    }
}

/// The final stage's id in the display of an adaptive plan's root, once it has one.
fn final_stage_of(root: &str) -> Option<usize> {
    let field = |name: &str| {
        root.split([',', ' ', ':'])
            .find_map(|part| part.trim().strip_prefix(name))
            .map(str::trim)
    };
    if field("is_final=")? != "true" {
        return None;
    }
    field("stage_id=")?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_final_stage_is_read_from_the_adaptive_plans_root() {
        let root = "AdaptiveDatafusionExec: is_final=true, plan_id=0, stage_id=3, \
                    stage_resolved=false";
        assert_eq!(super::final_stage_of(root), Some(3));
        let pending = "AdaptiveDatafusionExec: is_final=false, plan_id=0, stage_id=pending, \
                       stage_resolved=false";
        assert_eq!(super::final_stage_of(pending), None);
    }
}
