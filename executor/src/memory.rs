//! Memory and spill limits of an executor, Trino's settings (`etc/config.properties`):
//! every query's tasks on this node share one DataFusion [`FairSpillPool`] of
//! `query.max-memory-per-node` (lowered by the session's `query_max_memory_per_node`), and all
//! queries together may reserve `query.max-total-memory-per-node` (default: the node's memory
//! less `memory.heap-headroom-per-node`). Operators that can spill (sorts, aggregations) spill
//! to `spiller-spill-path` when their share is used up, at most `max-spill-per-node` for the
//! whole node; anything else that does not fit fails its query with a
//! `ResourcesExhausted` error naming the limit, never the process.
//!
//! Ballista's own pool policy (a pool per task, of the executor's memory divided by its task
//! slots) is turned off (`memory_pool_size = 0`): a query's tasks share their query's limit
//! here instead.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use datafusion::config::ConfigNonZeroUsize;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::disk_manager::{DiskManager, DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::prelude::SessionConfig;
use tributary_telemetry::{QueryTelemetry, data_size};

mod query_pool;

use query_pool::{QueryMemory, QueryPool};

/// Memory settings of an executor (`etc/config.properties`).
#[derive(Debug, Clone, Default)]
pub struct MemoryConfig {
    /// `query.max-memory-per-node`: what one query may reserve on this node.
    pub max_memory_per_node: Option<u64>,
    /// `query.max-total-memory-per-node`: what all queries together may reserve.
    pub max_total_memory_per_node: Option<u64>,
    /// `memory.heap-headroom-per-node`: memory left to everything else (default: 30% of the
    /// node's memory) when the total is not set.
    pub heap_headroom_per_node: Option<u64>,
    /// `spill-enabled` (default true).
    pub spill_enabled: Option<bool>,
    /// `spiller-spill-path`: directories for spill files (default: `<work dir>/spill`).
    pub spill_paths: Vec<PathBuf>,
    /// `max-spill-per-node`: spill files of all queries on this node.
    pub max_spill_per_node: Option<u64>,
}

/// Memory of the machine or container (cgroup limit, else physical memory).
pub fn node_memory_bytes() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let physical = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    match (cgroup, physical) {
        (Some(c), Some(p)) => Some(c.min(p)),
        (c, p) => c.or(p),
    }
}

/// The executor's memory: its limits, the pools of the queries running on it, its spill disk.
#[derive(Debug)]
pub struct NodeMemory {
    /// What all queries together may reserve.
    total: usize,
    /// What one query may reserve, unless its session asks for less.
    per_query: usize,
    reserved: AtomicUsize,
    peak: AtomicUsize,
    queries: Mutex<HashMap<String, Weak<QueryMemory>>>,
    disk: Arc<DiskManager>,
}

impl NodeMemory {
    /// Sizes the node's memory from `config` and makes its spill disk (`work_dir/spill` by
    /// default).
    pub fn new(config: &MemoryConfig, work_dir: &std::path::Path) -> Result<Arc<Self>> {
        let node = node_memory_bytes().unwrap_or(8 << 30);
        let headroom = config
            .heap_headroom_per_node
            .unwrap_or(node / 10 * 3)
            .min(node);
        let total = config
            .max_total_memory_per_node
            .unwrap_or(node - headroom)
            .max(1) as usize;
        let per_query = config
            .max_memory_per_node
            .map_or(total, |b| (b as usize).clamp(1, total));
        let mut disk = DiskManagerBuilder::default();
        if config.spill_enabled == Some(false) {
            disk = disk.with_mode(DiskManagerMode::Disabled);
        } else {
            let paths = if config.spill_paths.is_empty() {
                vec![work_dir.join("spill")]
            } else {
                config.spill_paths.clone()
            };
            for path in &paths {
                std::fs::create_dir_all(path).map_err(|e| {
                    DataFusionError::Configuration(format!(
                        "spiller-spill-path: cannot create {}: {e}",
                        path.display()
                    ))
                })?;
            }
            disk = disk.with_mode(DiskManagerMode::Directories(paths));
            if let Some(max) = config.max_spill_per_node {
                disk = disk.with_max_temp_directory_size(max);
            }
        }
        tracing::info!(
            total = %data_size(total),
            per_query = %data_size(per_query),
            spill = config.spill_enabled != Some(false),
            "executor memory"
        );
        Ok(Arc::new(Self {
            total,
            per_query,
            reserved: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            queries: Mutex::default(),
            disk: Arc::new(disk.build()?),
        }))
    }

    /// The spill disk shared by every task of the node.
    pub fn disk(&self) -> Arc<DiskManager> {
        Arc::clone(&self.disk)
    }

    /// Bytes reserved by all queries now.
    pub fn reserved(&self) -> usize {
        self.reserved.load(Ordering::Relaxed)
    }

    /// The most ever reserved at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Bytes spilled to disk now.
    pub fn spilled(&self) -> u64 {
        self.disk.used_disk_space()
    }

    /// What all queries together may reserve.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Queries with memory on this node: (query id, reserved bytes, peak bytes).
    pub fn queries(&self) -> Vec<(String, usize, usize)> {
        let queries = self.queries.lock().unwrap_or_else(|e| e.into_inner());
        queries
            .iter()
            .filter_map(|(id, q)| q.upgrade().map(|q| (id.clone(), q.reserved(), q.peak())))
            .collect()
    }

    /// The memory pool of a task: its query's, shared with the query's other tasks here.
    pub fn pool_for(self: &Arc<Self>, config: &SessionConfig) -> Arc<dyn MemoryPool> {
        let settings = config
            .options()
            .extensions
            .get::<QueryTelemetry>()
            .cloned()
            .unwrap_or_default();
        // A session may ask for less than the node allows, never more (as Trino).
        let (limit, property) = match settings.max_memory_per_node.parse::<usize>() {
            Ok(session) if session > 0 && session < self.per_query => {
                (session, "session property query_max_memory_per_node")
            }
            _ => (self.per_query, "query.max-memory-per-node"),
        };
        let key = if settings.query_id.is_empty() {
            // Not a query's task (never expected): a pool of its own.
            format!("task-{}", uuid::Uuid::new_v4())
        } else {
            settings.query_id.clone()
        };
        let mut queries = self.queries.lock().unwrap_or_else(|e| e.into_inner());
        queries.retain(|_, q| q.strong_count() > 0);
        if let Some(query) = queries.get(&key).and_then(Weak::upgrade) {
            return Arc::new(QueryPool(query));
        }
        let query = Arc::new(QueryMemory::new(
            key.clone(),
            limit,
            property,
            Arc::clone(self),
        ));
        queries.insert(key, Arc::downgrade(&query));
        Arc::new(QueryPool(query))
    }

    fn charge(&self, additional: usize) -> bool {
        let mut current = self.reserved.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_add(additional);
            if next > self.total {
                return false;
            }
            match self.reserved.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.peak.fetch_max(next, Ordering::Relaxed);
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }

    fn force(&self, additional: usize) {
        let next = self.reserved.fetch_add(additional, Ordering::AcqRel) + additional;
        self.peak.fetch_max(next, Ordering::Relaxed);
    }

    fn release(&self, bytes: usize) {
        self.reserved.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// A task's failure for lack of memory, said in terms of its limit: DataFusion's own
/// refusals (an operator that could not spill because spilling is off, or whose spill
/// reservation failed) are reworded as the pool's, which name `query.max-memory-per-node`.
pub fn explain_exhaustion(pool: &Arc<dyn MemoryPool>, error: DataFusionError) -> DataFusionError {
    let text = error.to_string();
    let Some(at) = text.find("Resources exhausted") else {
        return error;
    };
    let Some(query) = pool.downcast_ref::<QueryPool>().map(|p| &p.0) else {
        return error;
    };
    if text.contains("Query exceeded") {
        return error;
    }
    let cause = text[at..]
        .trim_start_matches("Resources exhausted")
        .trim_start_matches(':')
        .trim()
        .replace(['[', ']'], "");
    DataFusionError::ResourcesExhausted(format!(
        "Query exceeded per-node memory limit of {} ({}) [Allocated: {}, {cause}]",
        data_size(query.limit),
        query.property,
        data_size(query.reserved()),
    ))
}

/// The most the task's query has reserved at once on this executor (its pool's peak).
pub fn query_peak(pool: &Arc<dyn MemoryPool>) -> Option<usize> {
    pool.downcast_ref::<QueryPool>().map(|p| p.0.peak())
}

/// Fits a task's `config` to its query's limit (`context`'s pool) where a small limit asks
/// for less than the session gives:
/// - DataFusion's sort merge reservation (`sort_spill_reservation_bytes`, 10 MB by default):
///   each task slot's sorts reserve it up front, and reservations that add up to most of a
///   small limit leave the sorts nothing to sort with;
/// - rows per batch (`batch_size`): a merge of sorted runs (a spilled sort's, an ordered
///   shuffle's) holds a batch of each run, so its memory grows with the batch; a slot's share
///   of the limit holds at least [`LIMIT_BYTES_PER_BATCH_ROW`] per row of a batch.
///
/// Returns whether `config` changed.
pub fn fit_to_query_limit(context: &TaskContext, config: &mut SessionConfig, slots: usize) -> bool {
    let Some(query) = context
        .memory_pool()
        .downcast_ref::<QueryPool>()
        .map(|p| &p.0)
    else {
        return false;
    };
    let slots = slots.max(1);
    let mut changed = false;
    let reservation = (query.limit / (4 * slots)).max(256 << 10);
    if config.options().execution.sort_spill_reservation_bytes > reservation {
        config.options_mut().execution.sort_spill_reservation_bytes = reservation;
        changed = true;
    }
    let batch_rows = (query.limit / (slots * LIMIT_BYTES_PER_BATCH_ROW)).max(MIN_BATCH_ROWS);
    if config.batch_size() > batch_rows
        && let Ok(rows) = ConfigNonZeroUsize::try_new(batch_rows)
    {
        config.options_mut().execution.batch_size = rows;
        changed = true;
    }
    changed
}

/// Bytes of a task slot's share of its query's limit per row of a batch: a 32 MB limit on a
/// node of 2 slots gives DataFusion's default of 8192 rows, a limit of 128 MB or more the
/// session's 32768.
const LIMIT_BYTES_PER_BATCH_ROW: usize = 2048;

/// Fewest rows per batch a limit brings a task to.
const MIN_BATCH_ROWS: usize = 1024;

#[cfg(test)]
mod tests {
    use datafusion::execution::memory_pool::MemoryConsumer;

    use super::*;

    fn config(query: &str, session_limit: Option<usize>) -> SessionConfig {
        let mut telemetry = QueryTelemetry {
            query_id: query.into(),
            ..QueryTelemetry::default()
        };
        if let Some(limit) = session_limit {
            telemetry.max_memory_per_node = limit.to_string();
        }
        SessionConfig::new().with_option_extension(telemetry)
    }

    #[test]
    fn queries_share_their_limit_and_the_node_total() {
        let dir = std::env::temp_dir().join(format!("tributary-mem-{}", std::process::id()));
        let node = NodeMemory::new(
            &MemoryConfig {
                max_memory_per_node: Some(1000),
                max_total_memory_per_node: Some(1500),
                ..MemoryConfig::default()
            },
            &dir,
        )
        .expect("node");
        let a1 = node.pool_for(&config("a", None));
        let a2 = node.pool_for(&config("a", None));
        let b = node.pool_for(&config("b", None));
        let r1 = MemoryConsumer::new("HashJoinInput[0]").register(&a1);
        let r2 = MemoryConsumer::new("HashJoinInput[1]").register(&a2);
        r1.try_grow(600).expect("fits");
        // Two tasks of query a share its 1000 bytes.
        let err = r2.try_grow(600).expect_err("over the query limit");
        let text = err.to_string();
        assert!(
            text.contains(
                "Query exceeded per-node memory limit of 1000B (query.max-memory-per-node)"
            ) && text.contains("HashJoinInput[1]"),
            "{text}"
        );
        let rb = MemoryConsumer::new("Sort").register(&b);
        rb.try_grow(800).expect("query b has its own 1000");
        assert_eq!(node.reserved(), 1400);
        // The node has 100 bytes left.
        let err = rb.try_grow(150).expect_err("node total");
        assert!(
            err.to_string().contains("query.max-total-memory-per-node"),
            "{err}"
        );
        assert_eq!(node.reserved(), 1400);
        drop(r1);
        assert_eq!(node.reserved(), 800);
        // A session may lower its query's limit.
        let c = node.pool_for(&config("c", Some(100)));
        let rc = MemoryConsumer::new("Agg").register(&c);
        let err = rc.try_grow(200).expect_err("session limit");
        assert!(
            err.to_string()
                .contains("session property query_max_memory_per_node"),
            "{err}"
        );
        drop((r2, rb, rc));
        assert_eq!(node.reserved(), 0);
        assert_eq!(node.peak(), 1400);
    }

    #[test]
    fn a_spilling_operator_is_told_to_spill_only_past_its_fair_part() {
        let dir = std::env::temp_dir().join(format!("tributary-spill-{}", std::process::id()));
        let node = NodeMemory::new(
            &MemoryConfig {
                max_memory_per_node: Some(1000),
                ..MemoryConfig::default()
            },
            &dir,
        )
        .expect("node");
        let pool = node.pool_for(&config("q", None));
        let spiller = |name: &str| {
            MemoryConsumer::new(name)
                .with_can_spill(true)
                .register(&pool)
        };
        // The first aggregation of the query is alone: three quarters of the limit are its.
        let first = spiller("FinalHashAggregateStream[0]");
        first.try_grow(700).expect("alone, under 750");
        // A second one starts while the first holds nearly all of it: its part is 375, and
        // it may grow to it (a refusal with a handful of groups would fail its task).
        let second = spiller("FinalHashAggregateStream[1]");
        second.try_grow(10).expect("a first reservation");
        second
            .try_grow(100)
            .expect("within its part though the query is over 750");
        // The first, past its part, is the one told to spill.
        let err = first.try_grow(10).expect_err("past its part");
        assert!(
            err.to_string()
                .contains("FinalHashAggregateStream[0] must spill"),
            "{err}"
        );
        // Within its part, the second takes at most half of the quarter kept for operators
        // that cannot spill (the query at 875 of 1000).
        second.try_grow(60).expect("the query at 870");
        let err = second.try_grow(10).expect_err("the query past 875");
        assert!(
            err.to_string()
                .contains("FinalHashAggregateStream[1] must spill"),
            "{err}"
        );
        // Past its own part the second is told too.
        let err = second.try_grow(250).expect_err("past its part");
        assert!(
            err.to_string()
                .contains("FinalHashAggregateStream[1] must spill"),
            "{err}"
        );
        // Operators that cannot spill still have the rest of the limit.
        let hash = MemoryConsumer::new("HashJoinInput").register(&pool);
        hash.try_grow(100).expect("what is left to non-spillers");
        drop(first);
        // With the first gone, the second's part is the whole spill room.
        second.try_grow(500).expect("alone again");
    }

    #[test]
    fn a_small_limit_fits_the_sort_reservation_and_the_batch_size() {
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;

        let dir = std::env::temp_dir().join(format!("tributary-fit-{}", std::process::id()));
        let fitted = |limit: usize| {
            let node = NodeMemory::new(
                &MemoryConfig {
                    max_memory_per_node: Some(limit as u64),
                    ..MemoryConfig::default()
                },
                &dir,
            )
            .expect("node");
            let session = config("q", None).with_batch_size(32768);
            let runtime = RuntimeEnvBuilder::new()
                .with_memory_pool(node.pool_for(&session))
                .build_arc()
                .expect("runtime");
            let context = TaskContext::default()
                .with_session_config(session.clone())
                .with_runtime(runtime);
            let mut task = session;
            let changed = fit_to_query_limit(&context, &mut task, 2);
            let reservation = task.options().execution.sort_spill_reservation_bytes;
            (changed, task.batch_size(), reservation)
        };
        // 32 MB on two slots: DataFusion's 8192 rows, a 4 MB merge reservation.
        assert_eq!(fitted(32 << 20), (true, 8192, 4 << 20));
        // 64 MB: half the session's batch, a reservation under the 10 MB default.
        assert_eq!(fitted(64 << 20), (true, 16384, 8 << 20));
        // 1 GB: nothing to change.
        assert_eq!(fitted(1 << 30), (false, 32768, 10 << 20));
        // A tiny limit still gives batches of some rows.
        assert_eq!(fitted(1 << 20).1, MIN_BATCH_ROWS);
    }
}
