//! What is known about one query (`QueryInfo`: `system.runtime.queries`, `/v1/query`, the
//! history store) and where it is in its life (`QueryState`).

use serde::{Deserialize, Serialize};

use super::now_ms;
use super::stages::StageInfo;

/// Where a query is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QueryState {
    /// Received, not yet analysed.
    #[default]
    Queued,
    /// Being parsed and planned.
    Planning,
    /// Its job was submitted: Ballista plans it, or its first tasks wait for slots.
    Starting,
    /// A task of its job runs (or has run).
    Running,
    /// The job ended; results are being written (INSERT, CTAS) or prepared.
    Finishing,
    /// Done.
    Finished,
    /// Failed, or killed, or cancelled.
    Failed,
}

impl QueryState {
    /// Trino's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Planning => "PLANNING",
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Finishing => "FINISHING",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
        }
    }

    /// Whether the query has ended.
    pub fn is_done(self) -> bool {
        matches!(self, Self::Finished | Self::Failed)
    }
}

/// What is known about one query: `system.runtime.queries`, `/v1/query`, the history store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryInfo {
    /// Trino-style id: `YYYYMMDD_HHMMSS_NNNNN_xxxxx`.
    pub query_id: String,
    /// Life-cycle state.
    pub state: QueryState,
    /// Authenticated user.
    pub user: String,
    /// The client (`x-trino-source` or `user-agent` of the request).
    pub source: String,
    /// The statement text.
    pub query: String,
    /// Resource group (one, `global`, until resource groups exist).
    pub resource_group_id: String,
    /// When it arrived (ms since the epoch).
    pub created_ms: i64,
    /// When its job was submitted.
    pub started_ms: Option<i64>,
    /// When it ended.
    pub end_ms: Option<i64>,
    /// Last sign of life.
    pub last_heartbeat_ms: i64,
    /// Waiting before analysis.
    pub queued_time_ms: i64,
    /// Parsing and logical planning.
    pub analysis_time_ms: i64,
    /// Distributed planning (Ballista: physical plan, stages) until a task could run.
    pub planning_time_ms: i64,
    /// USER_ERROR, INTERNAL_ERROR, INSUFFICIENT_RESOURCES, EXTERNAL.
    pub error_type: Option<String>,
    /// Trino's error code name (SYNTAX_ERROR, TABLE_NOT_FOUND, ADMINISTRATIVELY_KILLED, …).
    pub error_code: Option<String>,
    /// The error message.
    pub error_message: Option<String>,
    /// The Ballista job running it.
    pub job_id: Option<String>,
    /// Its trace, when traced.
    pub trace_id: Option<String>,
    /// The query span's `traceparent` (stages are its children).
    #[serde(default)]
    pub traceparent: Option<String>,
    /// Compute time of its tasks (ms).
    pub cpu_time_ms: i64,
    /// Largest memory one task held (bytes).
    pub peak_memory_bytes: i64,
    /// Rows read from sources.
    pub input_rows: i64,
    /// Bytes read from sources.
    pub input_bytes: i64,
    /// Result rows.
    pub output_rows: i64,
    /// Result bytes.
    pub output_bytes: i64,
    /// Stages of its job, recorded when it ended (live ones come from Ballista).
    #[serde(default)]
    pub stages: Vec<StageInfo>,
    /// What was ignored while planning it (hints that matched no join, …).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The dynamic filters applied to its probe sides, one line each (EXPLAIN ANALYZE).
    #[serde(default)]
    pub dynamic_filters: Vec<String>,
    /// The join regions reordered by statistics, one line each (EXPLAIN ANALYZE).
    #[serde(default)]
    pub join_order: Vec<String>,
}

impl QueryInfo {
    /// Wall time so far or in all (ms).
    pub fn elapsed_ms(&self) -> i64 {
        self.end_ms.unwrap_or_else(now_ms) - self.created_ms
    }
}
