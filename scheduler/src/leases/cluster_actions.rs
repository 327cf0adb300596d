//! The scheduler's Flight actions for executors, on its cluster port beside Ballista's gRPC
//! (executors know only that address; the cluster's shared secret is checked there).

use std::pin::Pin;

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use ballista_core::serde::protobuf::job_status;
use futures::Stream;
use prost::Message;
use tonic::{Request, Response, Status, Streaming};
use tributary_proto::{DirectPartition, JOBS_IN_USE_ACTION, RESULT_READ_ACTION};
use tributary_security::InternalSecurity;

use super::{ResultLeases, partition_key};
use crate::cluster::BallistaScheduler;

/// Answers executors on the scheduler's cluster port: "which of these jobs still need my
/// files?" ([`JOBS_IN_USE_ACTION`]) and "a client read this result partition from me"
/// ([`RESULT_READ_ACTION`]).
#[derive(Clone)]
pub(crate) struct ClusterActions {
    scheduler: BallistaScheduler,
    leases: ResultLeases,
    /// Checks the signature of a partition said to be read.
    internal: InternalSecurity,
}

impl ClusterActions {
    pub(crate) fn new(
        scheduler: BallistaScheduler,
        leases: ResultLeases,
        internal: InternalSecurity,
    ) -> Self {
        Self {
            scheduler,
            leases,
            internal,
        }
    }

    /// Tasks of running jobs bound to `executor_id` (launched or about to be).
    async fn tasks_on(&self, executor_id: &str) -> usize {
        let jobs = self.scheduler.state.task_manager.get_running_job_cache();
        let mut n = 0;
        for job in jobs.values() {
            n += job
                .execution_graph
                .read()
                .await
                .running_tasks()
                .iter()
                .filter(|t| t.executor_id == executor_id)
                .count();
        }
        n
    }

    /// The jobs of `job_ids` that are queued, running, or leased.
    async fn in_use(&self, job_ids: &[&str]) -> Result<Vec<String>, Status> {
        let mut used = Vec::new();
        for &job_id in job_ids {
            if self.leases.leased(job_id) {
                used.push(job_id.to_owned());
                continue;
            }
            let status = self
                .scheduler
                .state
                .task_manager
                .get_job_status(&job_id.to_owned().into())
                .await
                .map_err(|e| Status::unavailable(format!("job status of {job_id}: {e}")))?;
            let active = matches!(
                status.and_then(|s| s.status),
                Some(job_status::Status::Queued(_) | job_status::Status::Running(_))
            );
            if active {
                used.push(job_id.to_owned());
            }
        }
        Ok(used)
    }

    /// [`JOBS_IN_USE_ACTION`]: the jobs of the request's `job <id>` lines still needed, and
    /// the tasks bound to its `executor <id>`.
    async fn jobs_in_use(&self, body: &[u8]) -> Result<arrow_flight::Result, Status> {
        let body = std::str::from_utf8(body)
            .map_err(|_| Status::invalid_argument("the request must be UTF-8 lines"))?;
        let mut executor = None;
        let mut ids = Vec::new();
        for line in body.lines().filter(|l| !l.is_empty()) {
            match line.split_once(' ') {
                Some(("executor", id)) => executor = Some(id),
                Some(("job", id)) => ids.push(id),
                _ => {
                    return Err(Status::invalid_argument(format!(
                        "expected 'executor <id>' or 'job <id>', got '{line}'"
                    )));
                }
            }
        }
        let mut lines: Vec<String> = self
            .in_use(&ids)
            .await?
            .into_iter()
            .map(|id| format!("job {id}"))
            .collect();
        if let Some(executor) = executor {
            lines.push(format!("tasks {}", self.tasks_on(executor).await));
        }
        Ok(arrow_flight::Result {
            body: lines.join("\n").into(),
        })
    }

    /// [`RESULT_READ_ACTION`]: a client read a partition of a result from its executor to its
    /// end; once every partition is read the job's files are deleted, as when the scheduler
    /// forwards them.
    fn result_read(&self, body: &[u8]) -> Result<(), Status> {
        let direct = DirectPartition::decode(body)
            .map_err(|e| Status::invalid_argument(format!("not a result partition: {e}")))?;
        if !self.internal.verify(&direct.signed(), &direct.signature) {
            return Err(Status::unauthenticated(
                "result partition not signed by this cluster's scheduler",
            ));
        }
        let Some(p) = &direct.partition else {
            return Err(Status::invalid_argument(
                "result ticket without a partition",
            ));
        };
        tracing::debug!(job = %p.job_id, partition = p.partition_id, executor = %p.executor_id, "result partition read from its executor");
        self.leases
            .read(&p.job_id, &partition_key(p), self.leases.client_timeout());
        Ok(())
    }
}

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn unsupported<T>() -> Result<T, Status> {
    Err(Status::unimplemented(format!(
        "the scheduler's cluster port only answers the '{JOBS_IN_USE_ACTION}' and \
         '{RESULT_READ_ACTION}' actions; Flight SQL clients connect to the Flight SQL port"
    )))
}

#[tonic::async_trait]
impl FlightService for ClusterActions {
    type HandshakeStream = Stream_<HandshakeResponse>;
    type ListFlightsStream = Stream_<FlightInfo>;
    type DoGetStream = Stream_<FlightData>;
    type DoPutStream = Stream_<PutResult>;
    type DoActionStream = Stream_<arrow_flight::Result>;
    type ListActionsStream = Stream_<ActionType>;
    type DoExchangeStream = Stream_<FlightData>;

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let action = request.into_inner();
        let answers = match action.r#type.as_str() {
            JOBS_IN_USE_ACTION => vec![Ok(self.jobs_in_use(&action.body).await?)],
            RESULT_READ_ACTION => {
                self.result_read(&action.body)?;
                Vec::new()
            }
            _ => return unsupported(),
        };
        Ok(Response::new(Box::pin(futures::stream::iter(answers))))
    }

    async fn list_actions(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let actions = [
            ActionType {
                r#type: JOBS_IN_USE_ACTION.to_owned(),
                description: "Which of these jobs ('job <id>' lines) still need executors' \
                              shuffle or result files, and how many tasks are bound to \
                              'executor <id>'"
                    .to_owned(),
            },
            ActionType {
                r#type: RESULT_READ_ACTION.to_owned(),
                description: "A client read this result partition (a signed DirectPartition) \
                              from its executor to its end"
                    .to_owned(),
            },
        ];
        Ok(Response::new(Box::pin(futures::stream::iter(
            actions.map(Ok),
        ))))
    }

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        unsupported()
    }

    async fn list_flights(
        &self,
        _request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        unsupported()
    }

    async fn get_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        unsupported()
    }

    async fn poll_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        unsupported()
    }

    async fn get_schema(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        unsupported()
    }

    async fn do_get(
        &self,
        _request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        unsupported()
    }

    async fn do_put(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        unsupported()
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        unsupported()
    }
}
