//! The query path: a statement of a session becomes local rows, a state change, or a
//! distributed Ballista job whose final partitions stay on the executors.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use ballista_scheduler::cluster::JobState;
use datafusion::common::ParamValues;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::prelude::SessionContext;
use tributary_connector::Catalogs;
use tributary_proto::JobPartition;

mod hidden;
mod plan;
mod procedures;
mod properties;
mod range_partitions;
mod refresh;
mod result_order;
mod run;
mod trino_types;
mod views;
mod write;
mod write_node;

pub(crate) use hidden::exclude_hidden;
pub(crate) use range_partitions::regroup;
pub(crate) use result_order::PartitionSortPlanner;
pub use result_order::ResultOrder;
pub(crate) use write_node::WritePlanner;

use crate::access::{AccessControl, AccessScope};
use crate::admission::ResourceGroups;
use crate::cluster::{BallistaScheduler, RetryPolicy, base_config};
use crate::error::{Result, SchedulerError};
use crate::fetch::PartitionFetcher;
use crate::leases::{Lease, ResultLeases};
use crate::monitor::Monitor;
use crate::session::{Session, SessionRef};
use crate::statement::Statement;

/// What a statement produced.
#[derive(Debug)]
pub enum Outcome {
    /// Rows computed by the scheduler itself (SHOW, DESCRIBE, EXPLAIN).
    Rows(SchemaRef, Vec<RecordBatch>),
    /// A finished distributed job whose result partitions live on executors.
    Job(JobResult),
    /// A statement that changed state (`SET SESSION`, `USE`, DDL); rows affected.
    Update(i64),
}

/// The result of a finished distributed job.
#[derive(Debug, Clone)]
pub struct JobResult {
    /// Ballista job id.
    pub job_id: String,
    /// Schema of every result partition, as sent to clients.
    pub schema: SchemaRef,
    /// The final partitions, in order.
    pub partitions: Vec<JobPartition>,
    /// Total rows, when every partition reported it.
    pub total_records: i64,
    /// How the partitions are merged into the result when it is ordered (each partition is
    /// sorted); `None`: the result is the partitions one after the other.
    pub order: Option<ResultOrder>,
    /// Keeps the job's files on the executors needed (a draining executor waits) until
    /// whoever reads the result takes over.
    pub lease: Option<Arc<Lease>>,
}

/// Contexts by session id, with the session state they were built from.
type ContextCache =
    Arc<std::sync::Mutex<std::collections::HashMap<String, (String, Arc<SessionContext>)>>>;

/// Runs statements on the embedded cluster.
#[derive(Clone)]
pub struct Engine {
    scheduler: BallistaScheduler,
    jobs: Arc<dyn JobState>,
    catalogs: Catalogs,
    contexts: ContextCache,
    fetcher: PartitionFetcher,
    monitor: Monitor,
    leases: ResultLeases,
    retry: RetryPolicy,
    admission: Option<ResourceGroups>,
    access: Option<AccessControl>,
    view_cache: views::ViewCache,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("scheduler", &self.scheduler.scheduler_id)
            .finish()
    }
}

impl Engine {
    /// An engine over an embedded scheduler.
    pub fn new(
        scheduler: BallistaScheduler,
        jobs: Arc<dyn JobState>,
        catalogs: Catalogs,
        monitor: Monitor,
        leases: ResultLeases,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            scheduler,
            jobs,
            catalogs,
            contexts: ContextCache::default(),
            fetcher: PartitionFetcher::default(),
            monitor,
            leases,
            retry,
            admission: None,
            access: None,
            view_cache: views::ViewCache::default(),
        }
    }

    /// Result partitions are fetched so (internal TLS and secret), and also while their jobs
    /// run (`crate::live`) when `streaming` (not when clients read results from the
    /// executors, which hold only finished ones).
    pub fn with_fetcher(mut self, fetcher: PartitionFetcher, streaming: bool) -> Self {
        self.fetcher = if streaming {
            fetcher.with_running_results(self.scheduler.clone())
        } else {
            fetcher
        };
        self
    }

    /// Statements and listings are checked against access-control rules.
    pub fn with_access_control(mut self, access: Option<AccessControl>) -> Self {
        self.access = access;
        self
    }

    /// What `session`'s user may do, when access control is on.
    fn scope(&self, session: &Session) -> Option<AccessScope> {
        self.access.as_ref().map(|a| a.scope(&session.user))
    }

    /// Checks a statement's plan against the session user's rules.
    fn check(&self, session: &Session, ctx: &SessionContext, plan: &LogicalPlan) -> Result<()> {
        match self.scope(session) {
            Some(scope) => scope.check_plan(ctx, plan),
            None => Ok(()),
        }
    }

    /// Queries wait in resource groups (Trino's admission control).
    pub fn with_admission(mut self, admission: Option<ResourceGroups>) -> Self {
        self.admission = admission;
        self
    }

    /// The resource groups, when configured.
    pub fn admission(&self) -> Option<&ResourceGroups> {
        self.admission.as_ref()
    }

    /// Which finished jobs' files are still needed (results not yet read).
    pub fn leases(&self) -> &ResultLeases {
        &self.leases
    }

    /// Queries, tasks and metrics of this scheduler.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// The catalogs loaded from `etc/catalog`.
    pub fn catalogs(&self) -> &Catalogs {
        &self.catalogs
    }

    /// Reads result partitions from executors.
    pub fn fetcher(&self) -> &PartitionFetcher {
        &self.fetcher
    }

    /// The embedded Ballista scheduler.
    pub fn scheduler(&self) -> &BallistaScheduler {
        &self.scheduler
    }

    /// A DataFusion context for one query of `session` (its catalogs, properties and `USE`).
    ///
    /// Building a DataFusion session state (functions, rules, catalogs) costs more than planning
    /// a small query, so a session's context is reused until its properties or `USE` change.
    pub async fn context(&self, session: &Session) -> Result<Arc<SessionContext>> {
        let slots = self.cluster_slots().await;
        let fingerprint = format!(
            "{:?}/{:?}/{:?}/{slots}",
            session.catalog, session.schema, session.properties
        );
        if let Some((built_from, ctx)) = self
            .contexts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session.id)
            && *built_from == fingerprint
        {
            return Ok(Arc::clone(ctx));
        }
        let mut config = session.configure(base_config())?;
        if let Some(scope) = self.scope(session) {
            // The session builder filters the context's catalogs for this user.
            config = config.with_extension(Arc::new(scope));
        }
        // hash_partition_count = 0: one shuffle partition per task slot of the cluster (Ballista's
        // fixed default of 16 leaves small clusters scheduling many tiny tasks).
        if session.property("hash_partition_count").as_deref() == Some("0") && slots > 0 {
            config = config.with_target_partitions(slots);
        }
        let ctx = self
            .scheduler
            .state
            .session_manager
            .create_or_update_session(&session.id, &config)
            .await?;
        let mut contexts = self.contexts.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: sessions come and go; rebuilding a context is only a cost, never wrong.
        if contexts.len() > 1024 {
            contexts.clear();
        }
        contexts.insert(session.id.clone(), (fingerprint, Arc::clone(&ctx)));
        Ok(ctx)
    }

    /// Task slots of the registered executors (0 before any executor registered).
    async fn cluster_slots(&self) -> usize {
        match self
            .scheduler
            .state
            .executor_manager
            .get_executors_state()
            .await
        {
            Ok(executors) => executors
                .iter()
                .map(|(m, _, _)| m.specification.vcores as usize)
                .sum(),
            Err(_) => 0,
        }
    }

    /// Plans DataFusion SQL (for prepared statements: schema and parameter types).
    pub async fn plan_sql(&self, session: &Session, sql: &str) -> Result<LogicalPlan> {
        let ctx = self.context(session).await?;
        let plan = hidden::plan(&ctx, sql)
            .await
            .map_err(|e| explain_missing(&ctx, e.into()))?;
        let plan = self.prepare(session, &ctx, plan).await?;
        self.check(session, &ctx, &plan)?;
        Ok(plan)
    }

    /// Runs one statement.
    pub async fn execute(
        &self,
        session: &SessionRef,
        statement: &Statement,
        params: Option<ParamValues>,
    ) -> Result<Outcome> {
        let snapshot = lock(session).clone();
        match statement {
            Statement::SetSession { name, value } => {
                if let Some(scope) = self.scope(&snapshot) {
                    scope.check_session_property(name)?;
                }
                lock(session).set_property(name, value)?;
                Ok(Outcome::Update(0))
            }
            Statement::ResetSession { name } => {
                lock(session).reset_property(name)?;
                Ok(Outcome::Update(0))
            }
            Statement::Use { schema } => {
                let ctx = self.context(&snapshot).await?;
                let (catalog, schema) = crate::local::resolve_schema(&ctx, &snapshot, schema)?;
                if let Some(scope) = self.scope(&snapshot) {
                    scope.check_catalog(&catalog)?;
                }
                let mut s = lock(session);
                s.catalog = Some(catalog);
                s.schema = Some(schema);
                Ok(Outcome::Update(0))
            }
            Statement::ExplainDistributed { query } => {
                let ctx = self.context(&snapshot).await?;
                let plan = hidden::plan(&ctx, query).await?;
                let plan = self.prepare(&snapshot, &ctx, plan).await?;
                let plan = crate::joins::with_hints(plan, query)?;
                self.check(&snapshot, &ctx, &plan)?;
                let distribution = snapshot
                    .property("join_distribution_type")
                    .unwrap_or_default();
                let strategy = crate::join_order::Strategy::of(&snapshot);
                let (plan, order) = plan::with_result_order(plan);
                let merge = order
                    .as_ref()
                    .map(|o| plan::merge_line(o, plan.schema().as_arrow()));
                let (plan, join_order) =
                    match Box::pin(crate::join_order::reorder(&ctx, &plan, strategy)).await {
                        Some((reordered, lines)) => (reordered, lines),
                        None => (plan, Vec::new()),
                    };
                let (schema, batches) = crate::explain::distributed(
                    &ctx,
                    &plan,
                    &distribution,
                    &join_order,
                    merge.as_deref(),
                )
                .await?;
                Ok(Outcome::Rows(schema, batches))
            }
            Statement::Sql(sql) => {
                let ctx = self.context(&snapshot).await?;
                if let Some(ddl) = properties::split(sql)? {
                    return self.run_with_properties(&snapshot, ctx, ddl, sql).await;
                }
                let plan = hidden::plan(&ctx, sql)
                    .await
                    .map_err(|e| explain_missing(&ctx, e.into()))?;
                let plan = self.prepare(&snapshot, &ctx, plan).await?;
                let mut plan = crate::joins::with_hints(plan, sql)?;
                self.check(&snapshot, &ctx, &plan)?;
                if let Some(params) = params {
                    plan = plan.with_param_values(params)?;
                }
                self.run_plan(&snapshot, ctx, plan, sql).await
            }
            Statement::Call { procedure, args } => self.call(&snapshot, procedure, args),
            Statement::CreateView {
                name,
                or_replace,
                comment,
                invoker,
                query,
            } => {
                let ctx = self.context(&snapshot).await?;
                self.create_view(
                    &snapshot,
                    &ctx,
                    (name, *or_replace),
                    comment.as_deref(),
                    *invoker,
                    query,
                )
                .await
            }
            Statement::CreateMaterializedView {
                name,
                or_replace,
                if_not_exists,
                comment,
                properties,
                query,
            } => {
                let ctx = self.context(&snapshot).await?;
                self.create_materialized_view(
                    &snapshot,
                    &ctx,
                    (name, *or_replace, *if_not_exists),
                    comment.as_deref(),
                    properties.as_deref(),
                    query,
                )
                .await
            }
            Statement::RefreshMaterializedView { name } => {
                let ctx = self.context(&snapshot).await?;
                let sql = format!("REFRESH MATERIALIZED VIEW {}", name.join("."));
                self.refresh_materialized_view(&snapshot, ctx, name, &sql)
                    .await
            }
            Statement::DropView {
                name,
                if_exists,
                materialized,
            } => {
                let ctx = self.context(&snapshot).await?;
                self.drop_view(&snapshot, &ctx, name, *if_exists, *materialized)
                    .await
            }
            Statement::ShowCreateView { name, materialized } => {
                let ctx = self.context(&snapshot).await?;
                self.show_create_view(&snapshot, &ctx, name, *materialized)
                    .await
            }
            local => {
                let ctx = self.context(&snapshot).await?;
                let (schema, batches) =
                    crate::local::run(&ctx, &self.catalogs, &snapshot, local).await?;
                Ok(Outcome::Rows(schema, batches))
            }
        }
    }

    /// `CREATE TABLE … WITH (…)` and `CREATE SCHEMA … WITH (…)`: the properties go to the
    /// target catalog's connector.
    async fn run_with_properties(
        &self,
        session: &Session,
        ctx: Arc<SessionContext>,
        ddl: properties::WithProperties,
        sql: &str,
    ) -> Result<Outcome> {
        match ddl {
            properties::WithProperties::Table {
                statement,
                properties,
            } => {
                let mut statement = *statement;
                let state = ctx.state();
                hidden::exclude_hidden(&ctx, &state, &mut statement).await?;
                let plan = state
                    .statement_to_plan(statement)
                    .await
                    .map_err(|e| explain_missing(&ctx, e.into()))?;
                let plan = self.prepare(session, &ctx, plan).await?;
                self.check(session, &ctx, &plan)?;
                let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) = &plan else {
                    return Err(SchedulerError::NotSupported(
                        "table properties (WITH …) are only accepted by CREATE TABLE".into(),
                    ));
                };
                self.create_table(session, &ctx, create, sql, &properties)
                    .await
            }
            properties::WithProperties::Schema {
                name,
                if_not_exists,
                properties,
            } => {
                let (catalog, schema) = match name.as_slice() {
                    [catalog, schema] => (catalog.clone(), schema.clone()),
                    [schema] => (
                        session.catalog.clone().ok_or_else(|| {
                            SchedulerError::InvalidQuery(
                                "catalog must be specified when session catalog is not set".into(),
                            )
                        })?,
                        schema.clone(),
                    ),
                    _ => {
                        return Err(SchedulerError::InvalidQuery(format!(
                            "CREATE SCHEMA takes [catalog.]schema, got '{}'",
                            name.join(".")
                        )));
                    }
                };
                if let Some(scope) = self.scope(session) {
                    scope.check_schema_owner(&catalog, &schema, "create")?;
                }
                let connector = self.catalogs.find(&catalog).ok_or_else(|| {
                    SchedulerError::NotFound(format!(
                        "catalog '{catalog}' does not exist or takes no schema properties"
                    ))
                })?;
                if connector.catalog_provider().schema(&schema).is_some() {
                    return if if_not_exists {
                        Ok(Outcome::Update(0))
                    } else {
                        Err(SchedulerError::InvalidQuery(format!(
                            "schema '{catalog}.{schema}' already exists"
                        )))
                    };
                }
                connector.create_schema(&schema, &properties)?;
                Ok(Outcome::Update(0))
            }
        }
    }

    /// Cancels a running job.
    pub async fn cancel(&self, job_id: &str) -> Result<()> {
        self.scheduler.cancel_job(job_id.to_owned().into()).await?;
        Ok(())
    }
}

/// Turns DataFusion's "table 'a.b.c' not found" into what is missing: the catalog, the
/// schema or the table (Trino's messages).
fn explain_missing(ctx: &SessionContext, error: SchedulerError) -> SchedulerError {
    let SchedulerError::NotFound(message) = &error else {
        return error;
    };
    let Some(name) = message
        .strip_prefix("table '")
        .and_then(|m| m.split_once("' not found"))
        .map(|(n, _)| n)
    else {
        return error;
    };
    let parts: Vec<&str> = name.split('.').collect();
    let [catalog, schema, table] = parts[..] else {
        return error;
    };
    let Some(provider) = ctx.catalog(catalog) else {
        let mut known = ctx.catalog_names();
        known.sort();
        return SchedulerError::NotFound(format!(
            "catalog '{catalog}' does not exist (catalogs: {})",
            known.join(", ")
        ));
    };
    if provider.schema(schema).is_none() {
        return SchedulerError::NotFound(format!("schema '{catalog}.{schema}' does not exist"));
    }
    SchedulerError::NotFound(format!("table '{catalog}.{schema}.{table}' does not exist"))
}

/// The schema sent to Flight SQL clients: no view or dictionary types (JDBC cannot read
/// them before version 19).
pub fn client_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            f.as_ref()
                .clone()
                .with_data_type(client_type(f.data_type()))
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn client_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, value) => client_type(value),
        other => other.clone(),
    }
}

fn lock(session: &SessionRef) -> std::sync::MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|e| e.into_inner())
}
