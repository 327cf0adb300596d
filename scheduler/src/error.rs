//! Errors of the scheduler, and their one mapping to gRPC status codes.

use datafusion::error::DataFusionError;
use tonic::Status;

/// Result type of the scheduler.
pub type Result<T, E = SchedulerError> = std::result::Result<T, E>;

/// Everything a client request can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SchedulerError {
    /// The SQL text does not parse.
    #[error("line {line}, column {column}: {message}")]
    SqlSyntax {
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
        /// What the parser expected.
        message: String,
    },
    /// The statement parses but cannot be planned (type errors, bad arguments …).
    #[error("{0}")]
    InvalidQuery(String),
    /// A feature the engine does not have.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// A catalog, schema, table or column does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A session property is unknown or its value is invalid.
    #[error("{0}")]
    SessionProperty(String),
    /// A prepared statement or result handle is unknown (closed or expired).
    #[error("{0} does not exist (closed or expired)")]
    UnknownHandle(String),
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Access-control rules do not allow the statement (Trino's "Access Denied: …").
    #[error("Access Denied: {0}")]
    AccessDenied(String),
    /// The query ran longer than `query_max_run_time` or `query_max_execution_time`.
    #[error("query exceeded the maximum {} of {limit:?} (session property {property})", if *property == "query_max_run_time" { "run time" } else { "execution time" })]
    Timeout {
        /// The limit.
        limit: std::time::Duration,
        /// The session property that set it.
        property: &'static str,
    },
    /// The query was cancelled.
    #[error("query {0} was cancelled")]
    Cancelled(String),
    /// The client closed a result stream before its end while the query ran (how the JDBC
    /// driver and ADBC cancel, and a gRPC deadline running out): the query is cancelled.
    #[error("Query was canceled: the client closed the stream of {0} before its end")]
    ResultStreamClosed(String),
    /// The query's result streamed and its client read none of it for `query.client.timeout`
    /// (no stream open): the client has left, as Trino's `ABANDONED_QUERY`.
    #[error(
        "Query was abandoned by the client, as it may have exited or stopped reading its \
         results: none were read for {0:?} (query.client.timeout)"
    )]
    Abandoned(std::time::Duration),
    /// `CALL system.runtime.kill_query` (or `DELETE /v1/query/{id}`) stopped the query.
    #[error("Query killed. Message: {0}")]
    Killed(String),
    /// A distributed job failed on the cluster.
    #[error("query {job_id} failed: {message}")]
    JobFailed {
        /// Ballista job id.
        job_id: String,
        /// The failure reported by the cluster.
        message: String,
    },
    /// The query needed more memory on an executor than its limit allows (and could not
    /// spill): `query.max-memory-per-node` or the node's total.
    #[error("{0}")]
    ExceededMemoryLimit(String),
    /// An executor or source could not be reached.
    #[error("{0}")]
    Unavailable(String),
    /// The query's resource group already holds `maxQueued` waiting queries.
    #[error("{0}")]
    QueryQueueFull(String),
    /// No resource-group selector matched the query.
    #[error("{0}")]
    QueryRejected(String),
    /// Invalid server configuration (password file, addresses).
    #[error("{0}")]
    Config(String),
    /// Any other engine error.
    #[error("{0}")]
    Engine(String),
}

impl SchedulerError {
    /// Trino's error type and code name for this error (`system.runtime.queries`).
    pub fn trino_error(&self) -> (&'static str, &'static str) {
        match self {
            Self::SqlSyntax { .. } => ("USER_ERROR", "SYNTAX_ERROR"),
            Self::InvalidQuery(_) => ("USER_ERROR", "GENERIC_USER_ERROR"),
            Self::NotSupported(_) => ("USER_ERROR", "NOT_SUPPORTED"),
            Self::NotFound(m) if m.starts_with("catalog") => ("USER_ERROR", "CATALOG_NOT_FOUND"),
            Self::NotFound(m) if m.starts_with("schema") => ("USER_ERROR", "SCHEMA_NOT_FOUND"),
            Self::NotFound(m) if m.contains("column") => ("USER_ERROR", "COLUMN_NOT_FOUND"),
            Self::NotFound(_) => ("USER_ERROR", "TABLE_NOT_FOUND"),
            Self::SessionProperty(_) => ("USER_ERROR", "INVALID_SESSION_PROPERTY"),
            Self::UnknownHandle(_) => ("USER_ERROR", "GENERIC_USER_ERROR"),
            Self::Unauthenticated(_) => ("USER_ERROR", "PERMISSION_DENIED"),
            Self::AccessDenied(_) => ("USER_ERROR", "PERMISSION_DENIED"),
            Self::Timeout { .. } => ("INSUFFICIENT_RESOURCES", "EXCEEDED_TIME_LIMIT"),
            Self::Cancelled(_) | Self::ResultStreamClosed(_) => ("USER_ERROR", "USER_CANCELED"),
            Self::Abandoned(_) => ("USER_ERROR", "ABANDONED_QUERY"),
            Self::Killed(_) => ("USER_ERROR", "ADMINISTRATIVELY_KILLED"),
            Self::JobFailed { .. } => ("INTERNAL_ERROR", "GENERIC_INTERNAL_ERROR"),
            Self::ExceededMemoryLimit(_) => {
                ("INSUFFICIENT_RESOURCES", "EXCEEDED_LOCAL_MEMORY_LIMIT")
            }
            Self::Unavailable(_) => ("EXTERNAL", "REMOTE_HOST_GONE"),
            Self::QueryQueueFull(_) => ("INSUFFICIENT_RESOURCES", "QUERY_QUEUE_FULL"),
            Self::QueryRejected(_) => ("USER_ERROR", "QUERY_REJECTED"),
            Self::Config(_) => ("INTERNAL_ERROR", "CONFIGURATION_INVALID"),
            Self::Engine(_) => ("INTERNAL_ERROR", "GENERIC_INTERNAL_ERROR"),
        }
    }
}

impl From<sqlx::Error> for SchedulerError {
    fn from(e: sqlx::Error) -> Self {
        SchedulerError::Engine(format!("query history store: {e}"))
    }
}

impl From<DataFusionError> for SchedulerError {
    fn from(e: DataFusionError) -> Self {
        classify(e)
    }
}

impl From<ballista_core::error::BallistaError> for SchedulerError {
    fn from(e: ballista_core::error::BallistaError) -> Self {
        use ballista_core::error::BallistaError as B;
        match e {
            B::DataFusionError(e) => classify(*e),
            B::GrpcConnectionError(m) => SchedulerError::Unavailable(m),
            B::TonicError(e) => SchedulerError::Unavailable(e.to_string()),
            other => SchedulerError::Engine(other.to_string()),
        }
    }
}

impl From<arrow::error::ArrowError> for SchedulerError {
    fn from(e: arrow::error::ArrowError) -> Self {
        SchedulerError::Engine(e.to_string())
    }
}

impl From<arrow_flight::error::FlightError> for SchedulerError {
    fn from(e: arrow_flight::error::FlightError) -> Self {
        SchedulerError::Engine(e.to_string())
    }
}

impl From<tributary_connector::ConnectorError> for SchedulerError {
    fn from(e: tributary_connector::ConnectorError) -> Self {
        match e {
            tributary_connector::ConnectorError::DataFusion(e) => classify(e),
            tributary_connector::ConnectorError::NotSupported(m) => SchedulerError::NotSupported(m),
            other => SchedulerError::Config(other.to_string()),
        }
    }
}

/// Sorts DataFusion's errors into what a user did wrong and what went wrong.
fn classify(e: DataFusionError) -> SchedulerError {
    match e {
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            classify(*inner)
        }
        DataFusionError::SQL(parser, _) => syntax(&parser.to_string()),
        DataFusionError::SchemaError(schema, _) => {
            let message = schema.to_string();
            if message.contains("No field named") || message.contains("not found") {
                SchedulerError::NotFound(message)
            } else {
                SchedulerError::InvalidQuery(message)
            }
        }
        DataFusionError::Plan(message) => {
            if message.contains("not found") || message.contains("does not exist") {
                SchedulerError::NotFound(message)
            } else {
                SchedulerError::InvalidQuery(message)
            }
        }
        DataFusionError::NotImplemented(message) => SchedulerError::NotSupported(message),
        // Connectors report sources they cannot reach as I/O errors.
        DataFusionError::IoError(e) => SchedulerError::Unavailable(e.to_string()),
        DataFusionError::Configuration(message) => SchedulerError::SessionProperty(message),
        other => SchedulerError::Engine(other.to_string()),
    }
}

/// Builds a syntax error from sqlparser's "… at Line: L, Column: C" message.
pub(crate) fn syntax(message: &str) -> SchedulerError {
    let (text, line, column) = match message.rsplit_once(" at Line: ") {
        Some((text, rest)) => {
            let mut parts = rest.split(", Column: ");
            let line = parts
                .next()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(1);
            let column = parts
                .next()
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(1);
            (text, line, column)
        }
        None => (message, 1, 1),
    };
    let text = text
        .trim_start_matches("sql parser error: ")
        .trim_start_matches("SQL error: ");
    SchedulerError::SqlSyntax {
        line,
        column,
        message: text.to_owned(),
    }
}

impl SchedulerError {
    /// A failed job: a task that ran out of its memory limit (the executors' message,
    /// `Query exceeded … memory …[…]`, out of Ballista's wrapping) is `ExceededMemoryLimit`.
    pub fn job_failed(job_id: String, message: String) -> Self {
        if let Some(start) = message.find("Query exceeded") {
            // Up to the end of the quoted message (Ballista prints the error's Debug form),
            // through its last bracket.
            let rest = &message[start..];
            let body = &rest[..rest.find('"').unwrap_or(rest.len())];
            if let Some(close) = body.rfind(']')
                && body.contains("memory")
            {
                return SchedulerError::ExceededMemoryLimit(body[..=close].to_owned());
            }
        }
        SchedulerError::JobFailed { job_id, message }
    }
}

impl From<SchedulerError> for Status {
    fn from(e: SchedulerError) -> Self {
        Status::from(&e)
    }
}

impl From<&SchedulerError> for Status {
    fn from(e: &SchedulerError) -> Self {
        let message = e.to_string();
        match e {
            SchedulerError::SqlSyntax { .. }
            | SchedulerError::InvalidQuery(_)
            | SchedulerError::SessionProperty(_) => Status::invalid_argument(message),
            SchedulerError::NotSupported(_) => Status::unimplemented(message),
            SchedulerError::NotFound(_) | SchedulerError::UnknownHandle(_) => {
                Status::not_found(message)
            }
            SchedulerError::Unauthenticated(_) => Status::unauthenticated(message),
            SchedulerError::AccessDenied(_) => Status::permission_denied(message),
            SchedulerError::Timeout { .. } => Status::deadline_exceeded(message),
            SchedulerError::Cancelled(_)
            | SchedulerError::ResultStreamClosed(_)
            | SchedulerError::Abandoned(_)
            | SchedulerError::Killed(_) => Status::cancelled(message),
            SchedulerError::JobFailed { .. } | SchedulerError::Engine(_) => {
                Status::internal(message)
            }
            SchedulerError::Unavailable(_) => Status::unavailable(message),
            SchedulerError::QueryQueueFull(_) | SchedulerError::ExceededMemoryLimit(_) => {
                Status::resource_exhausted(message)
            }
            SchedulerError::QueryRejected(_) => Status::permission_denied(message),
            SchedulerError::Config(_) => Status::failed_precondition(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let e = syntax(
            "sql parser error: Expected: an SQL statement, found: SELEC at Line: 2, Column: 5",
        );
        assert_eq!(
            e.to_string(),
            "line 2, column 5: Expected: an SQL statement, found: SELEC"
        );
        assert_eq!(Status::from(e).code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn memory_failures_are_resource_exhausted() {
        let e = SchedulerError::job_failed(
            "j1".into(),
            "Task failed due to runtime execution error: DataFusionError(ResourcesExhausted(\
             \"Query exceeded per-node memory limit of 64.00MB (query.max-memory-per-node) \
             [Allocated: 63.00MB, Delta: 2.00MB, Operator: HashJoinInput[0]]\"))"
                .into(),
        );
        assert_eq!(
            e.to_string(),
            "Query exceeded per-node memory limit of 64.00MB (query.max-memory-per-node) \
             [Allocated: 63.00MB, Delta: 2.00MB, Operator: HashJoinInput[0]]"
        );
        assert_eq!(e.trino_error().1, "EXCEEDED_LOCAL_MEMORY_LIMIT");
        assert_eq!(Status::from(e).code(), tonic::Code::ResourceExhausted);
        let other = SchedulerError::job_failed("j2".into(), "division by zero".into());
        assert!(matches!(other, SchedulerError::JobFailed { .. }));
    }

    #[test]
    fn missing_objects_are_not_found() {
        let e: SchedulerError = DataFusionError::Plan("table 'a.b.c' not found".into()).into();
        assert_eq!(Status::from(e).code(), tonic::Code::NotFound);
    }
}
