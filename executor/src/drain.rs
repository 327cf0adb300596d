//! Graceful drain: an executor told to drain (SIGTERM, `PUT /v1/info/state "SHUTTING_DOWN"`,
//! `tributary executor drain`) stops taking tasks, finishes the ones it runs, keeps serving its
//! shuffle and result files until the scheduler says no job needs them, then exits 0. A drain
//! can be cancelled (`"ACTIVE"`) until it has finished.
//!
//! Where Ballista falls short: its executor treats SIGTERM as "stop soon" — it tells the
//! scheduler it stopped (so the scheduler treats it as lost and recomputes its outputs), waits
//! for its running tasks only, then deletes every shuffle file and exits, while other
//! executors may still read them and clients may still fetch results. So the `tributary
//! executor` process takes SIGTERM away from Ballista ([`intercept_sigterm`]: blocked in
//! every thread, received by one thread with `sigwait`), reports `Terminating` through
//! Ballista's own heartbeat status (the scheduler then gives it no tasks), and once drained
//! stops Ballista's executor through its own `StopExecutor` RPC.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arrow_flight::Action;
use arrow_flight::flight_service_client::FlightServiceClient;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ballista_core::serde::protobuf::executor_grpc_client::ExecutorGrpcClient;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::{
    ExecutorRegistration, ExecutorStatus, ExecutorStoppedParams, HeartBeatParams,
    StopExecutorParams, executor_status,
};
use ballista_executor::executor_server::TERMINATING;
use ballista_executor::health::ExecutorHealth;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tributary_proto::JOBS_IN_USE_ACTION;
use tributary_telemetry::Health;

use crate::observe::ExecutorMetrics;

/// How often a draining executor looks at its tasks and files.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Time for tasks the scheduler pushed just before it learnt of the drain to arrive.
const SETTLE: Duration = Duration::from_secs(1);

/// A scheduler that cannot be connected to for this long is gone, and with it its jobs (it
/// keeps them in memory): no query will read this executor's files again.
const SCHEDULER_GONE: Duration = Duration::from_secs(30);

/// A node's state, in Trino's names (`GET /v1/info/state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Takes tasks.
    Active,
    /// Takes no new tasks; finishing its work.
    ShuttingDown,
    /// Done: exiting.
    Drained,
}

impl NodeState {
    fn name(self) -> &'static str {
        match self {
            NodeState::Active => "ACTIVE",
            NodeState::ShuttingDown => "SHUTTING_DOWN",
            NodeState::Drained => "DRAINED",
        }
    }
}

/// Asks for and reports an executor's drain: one state, changed atomically, so a cancel and
/// the end of a drain cannot both win. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DrainControl {
    state: Arc<watch::Sender<NodeState>>,
}

impl Default for DrainControl {
    fn default() -> Self {
        Self {
            state: Arc::new(watch::channel(NodeState::Active).0),
        }
    }
}

impl DrainControl {
    /// Starts draining (again, if cancelled before); a drain under way goes on.
    pub fn drain(&self) {
        self.state.send_if_modified(|state| {
            let start = *state == NodeState::Active;
            if start {
                *state = NodeState::ShuttingDown;
            }
            start
        });
    }

    /// Returns a draining executor to service; fails once the drain has finished.
    pub fn cancel(&self) -> Result<(), &'static str> {
        let mut drained = false;
        self.state.send_if_modified(|state| match *state {
            NodeState::ShuttingDown => {
                *state = NodeState::Active;
                true
            }
            NodeState::Active => false,
            NodeState::Drained => {
                drained = true;
                false
            }
        });
        if drained {
            Err("the executor has drained and is exiting")
        } else {
            Ok(())
        }
    }

    /// Ends a drain that was not cancelled meanwhile; `false` if it was.
    fn finish(&self) -> bool {
        self.state.send_if_modified(|state| {
            let finish = *state == NodeState::ShuttingDown;
            if finish {
                *state = NodeState::Drained;
            }
            finish
        })
    }

    /// The node's state now.
    pub fn state(&self) -> NodeState {
        *self.state.borrow()
    }
}

/// Blocks SIGTERM in this thread, and so in every thread it starts later, and hands each
/// SIGTERM to `control` from a thread of its own. Call it first thing in `main`, before the
/// runtime starts any thread: a thread that does not block SIGTERM would let the signal reach
/// Ballista's handler, which stops the executor at once.
pub fn intercept_sigterm(control: DrainControl) -> std::io::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.thread_block().map_err(std::io::Error::from)?;
    std::thread::Builder::new()
        .name("sigterm".into())
        .spawn(move || {
            loop {
                match set.wait() {
                    Ok(_) => {
                        tracing::info!("SIGTERM: draining");
                        control.drain();
                    }
                    Err(e) => {
                        tracing::error!("cannot wait for SIGTERM: {e}");
                        return;
                    }
                }
            }
        })?;
    Ok(())
}

/// What the drain needs to know about its executor.
pub(crate) struct DrainContext {
    pub(crate) control: DrainControl,
    /// The scheduler's gRPC service (Ballista's and the jobs-in-use action).
    pub(crate) scheduler: Endpoint,
    /// The executor's own task service (to stop Ballista's executor once drained).
    pub(crate) own_grpc_url: String,
    pub(crate) registration: ExecutorRegistration,
    pub(crate) work_dir: PathBuf,
    pub(crate) metrics: Arc<ExecutorMetrics>,
    /// `/readyz`.
    pub(crate) health: Health,
    /// Whether Ballista's last heartbeat reached the scheduler.
    pub(crate) ballista_health: ExecutorHealth,
    /// A drain that takes longer exits anyway.
    pub(crate) timeout: Duration,
}

impl DrainContext {
    fn executor_id(&self) -> &str {
        &self.registration.id
    }

    /// Keeps `/readyz` true to "takes work": the scheduler hears us and we are not draining.
    fn refresh_readiness(&self) {
        let active = self.control.state() == NodeState::Active;
        self.health
            .set_ready(active && self.ballista_health.is_ready());
    }

    async fn scheduler(&self) -> Result<Channel, tonic::transport::Error> {
        self.scheduler.connect().await
    }

    /// Tells the scheduler at once what Ballista's heartbeat will keep telling it.
    async fn heartbeat(&self, terminating: bool) {
        let status = if terminating {
            executor_status::Status::Terminating(String::new())
        } else {
            executor_status::Status::Active(String::new())
        };
        let params = HeartBeatParams {
            executor_id: self.executor_id().to_owned(),
            metrics: vec![],
            status: Some(ExecutorStatus {
                status: Some(status),
            }),
            metadata: Some(self.registration.clone()),
        };
        let sent = match self.scheduler().await {
            Ok(channel) => SchedulerGrpcClient::new(channel)
                .heart_beat_from_executor(params)
                .await
                .map(|_| ())
                .map_err(|e| status_text(&e)),
            Err(e) => Err(tributary_telemetry::error_chain(&e)),
        };
        if let Err(e) = sent {
            tracing::warn!("cannot tell the scheduler this executor's state: {e}");
        }
    }

    /// The jobs whose files this executor holds (directories of its work dir).
    fn jobs_with_files(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.work_dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            // DataFusion's spill directories live here too.
            .filter(|name| !name.starts_with("datafusion-"))
            .collect()
    }

    /// Asks the scheduler which of `jobs` still need their files and how many tasks are
    /// bound to this executor. `Err(true)`: the scheduler could not be reached at all.
    async fn ask_scheduler(&self, jobs: &[String]) -> Result<(Vec<String>, usize), (bool, String)> {
        let channel = self
            .scheduler()
            .await
            .map_err(|e| (true, tributary_telemetry::error_chain(&e)))?;
        let mut body = format!("executor {}", self.executor_id());
        for job in jobs {
            body.push_str("\njob ");
            body.push_str(job);
        }
        let mut answers = FlightServiceClient::new(channel)
            .do_action(Action {
                r#type: JOBS_IN_USE_ACTION.to_owned(),
                body: body.into(),
            })
            .await
            .map_err(|e| (false, status_text(&e)))?
            .into_inner();
        let (mut used, mut tasks) = (Vec::new(), 0);
        while let Some(answer) = answers
            .message()
            .await
            .map_err(|e| (false, status_text(&e)))?
        {
            for line in String::from_utf8_lossy(&answer.body).lines() {
                match line.split_once(' ') {
                    Some(("job", id)) => used.push(id.to_owned()),
                    Some(("tasks", n)) => tasks = n.parse().unwrap_or(usize::MAX),
                    _ => {}
                }
            }
        }
        Ok((used, tasks))
    }

    /// Whether nothing runs here, no task is on its way here, and nothing will read this
    /// executor's files again; `unreachable_since` tracks how long the scheduler has not
    /// been reachable.
    async fn drained(&self, unreachable_since: &mut Option<Instant>) -> bool {
        let running = self.metrics.running_tasks();
        if running > 0 {
            tracing::debug!(running, "drain: tasks still running");
            return false;
        }
        let jobs = self.jobs_with_files();
        match self.ask_scheduler(&jobs).await {
            Ok((used, tasks)) => {
                *unreachable_since = None;
                if !used.is_empty() || tasks > 0 {
                    tracing::debug!(?used, tasks, "drain: queries still need this executor");
                }
                used.is_empty() && tasks == 0
            }
            Err((unreachable, e)) => {
                tracing::warn!(
                    "drain: cannot ask the scheduler which jobs need this executor: {e}"
                );
                if !unreachable {
                    *unreachable_since = None;
                    return false;
                }
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                since.elapsed() >= SCHEDULER_GONE
            }
        }
    }

    /// Ends Ballista's executor: the scheduler forgets it, then its services stop and its
    /// files are deleted.
    async fn exit(&self, reason: &str) {
        if let Ok(channel) = self.scheduler().await {
            let stopped = SchedulerGrpcClient::new(channel)
                .executor_stopped(ExecutorStoppedParams {
                    executor_id: self.executor_id().to_owned(),
                    reason: reason.to_owned(),
                })
                .await;
            if let Err(e) = stopped {
                tracing::warn!("cannot tell the scheduler this executor stopped: {e}");
            }
        }
        let stop = StopExecutorParams {
            executor_id: self.executor_id().to_owned(),
            reason: reason.to_owned(),
            force: false,
        };
        let stopped = match ExecutorGrpcClient::connect(self.own_grpc_url.clone()).await {
            Ok(mut client) => client
                .stop_executor(stop)
                .await
                .map(|_| ())
                .map_err(|e| status_text(&e)),
            Err(e) => Err(tributary_telemetry::error_chain(&e)),
        };
        if let Err(e) = stopped {
            // Nothing else can stop Ballista's executor in order: leave the process.
            tracing::error!("cannot stop the executor's services ({e}); exiting");
            std::process::exit(0);
        }
    }
}

/// A gRPC status as the drain logs it: code and message.
fn status_text(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// Runs the drain protocol for the executor's lifetime: waits for a drain, drains (or goes
/// back to service when cancelled), and once drained stops the executor.
pub(crate) async fn run(ctx: DrainContext) {
    let mut state = ctx.control.state.subscribe();
    let mut readiness = tokio::time::interval(CHECK_INTERVAL);
    readiness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Active: wait for a drain, keeping /readyz current.
        while *state.borrow_and_update() == NodeState::Active {
            ctx.refresh_readiness();
            tokio::select! {
                _ = readiness.tick() => {}
                changed = state.changed() => if changed.is_err() { return },
            }
        }
        let started = Instant::now();
        ctx.refresh_readiness();
        TERMINATING.store(true, Ordering::Release);
        ctx.metrics.draining.set(1);
        tracing::info!(executor_id = ctx.executor_id(), "draining: no new tasks");
        ctx.heartbeat(true).await;
        // A cancel is seen at once, not after the next check.
        let _ = tokio::time::timeout(SETTLE, state.changed()).await;
        let mut unreachable_since = None;
        let finished = loop {
            if *state.borrow_and_update() != NodeState::ShuttingDown {
                break None;
            }
            if ctx.drained(&mut unreachable_since).await {
                break Some(format!(
                    "drained in {:.1} s",
                    started.elapsed().as_secs_f64()
                ));
            }
            if started.elapsed() >= ctx.timeout {
                let left = ctx.jobs_with_files();
                tracing::warn!(
                    running = ctx.metrics.running_tasks(),
                    ?left,
                    "drain timed out after {:?}; exiting anyway",
                    ctx.timeout
                );
                break Some(format!("drain timed out after {:?}", ctx.timeout));
            }
            let _ = tokio::time::timeout(CHECK_INTERVAL, state.changed()).await;
        };
        // Only a drain still under way ends: a cancel that came while we looked wins.
        if let Some(reason) = finished
            && ctx.control.finish()
        {
            tracing::info!(executor_id = ctx.executor_id(), "{reason}; exiting");
            ctx.exit(&reason).await;
            return;
        }
        TERMINATING.store(false, Ordering::Release);
        ctx.metrics.draining.set(0);
        ctx.heartbeat(false).await;
        tracing::info!(
            executor_id = ctx.executor_id(),
            "drain cancelled: taking tasks again"
        );
    }
}

/// `GET /v1/info/state` (the node's state as a JSON string) and `PUT /v1/info/state` with
/// `"SHUTTING_DOWN"` (or Trino's `"DRAINING"`) to drain or `"ACTIVE"` to cancel. Changes are
/// accepted from the executor's own host only (loopback or one of `own_ips`: the pod's
/// `preStop`, `tributary executor drain`), as the HTTP port is also open to Prometheus.
/// Behind a proxy that makes every peer local (a service-mesh sidecar), restrict the port
/// with a NetworkPolicy instead.
pub(crate) fn routes(control: DrainControl, own_ips: Vec<std::net::IpAddr>) -> Router {
    Router::new()
        .route("/v1/info/state", get(get_state).put(put_state))
        .with_state(StateRoutes {
            control,
            own_ips: Arc::new(own_ips),
        })
}

#[derive(Clone)]
struct StateRoutes {
    control: DrainControl,
    own_ips: Arc<Vec<std::net::IpAddr>>,
}

async fn get_state(State(routes): State<StateRoutes>) -> Response {
    axum::Json(routes.control.state().name()).into_response()
}

async fn put_state(
    State(routes): State<StateRoutes>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: String,
) -> Response {
    let control = routes.control;
    if !peer.ip().is_loopback() && !routes.own_ips.contains(&peer.ip()) {
        return (
            StatusCode::FORBIDDEN,
            format!(
                "the executor's state can only be changed from its own host (request from {})\n",
                peer.ip()
            ),
        )
            .into_response();
    }
    let wanted: Result<String, _> = serde_json::from_str(body.trim());
    match wanted.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Ok("SHUTTING_DOWN" | "DRAINING") => {
            control.drain();
            axum::Json(NodeState::ShuttingDown.name()).into_response()
        }
        Ok("ACTIVE") => match control.cancel() {
            Ok(()) => axum::Json(NodeState::Active.name()).into_response(),
            Err(why) => (StatusCode::CONFLICT, format!("{why}\n")).into_response(),
        },
        _ => (
            StatusCode::BAD_REQUEST,
            format!(
                "expected a JSON string \"SHUTTING_DOWN\", \"DRAINING\" or \"ACTIVE\", got '{}'\n",
                body.trim()
            ),
        )
            .into_response(),
    }
}
