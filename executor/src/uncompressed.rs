//! Partitions read whole are written without compression.
//!
//! Ballista's passthrough writer (`ShuffleWriterExec`) writes each partition of its stage to a
//! file of its own, read whole by one reader: the query's result partitions (streamed to the
//! client by the scheduler), a broadcast join's build side (read by every task of the probe
//! stage) and the inputs of a final merge or coalesce. Ballista compresses them with the
//! session's shuffle codec (`ballista.shuffle.compression.codec`, LZ4 by default), which costs
//! a compression on the writer and a decompression on every read, and makes the scheduler
//! decode a result to hand it to clients that take no compression (the JDBC driver).
//! Written uncompressed, a result partition is forwarded to the client as the bytes that were
//! read (`scheduler/src/flight_sql/forward.rs`) and a broadcast side is read without
//! decompressing it once per task. Hash-partitioned shuffles (`SortShuffleWriterExec`), read
//! in ranges by many tasks, keep the session's codec: there LZ4 measured faster than none.

use std::sync::Arc;

use ballista_core::config::{BALLISTA_SHUFFLE_COMPRESSION_CODEC, BallistaConfig};
use ballista_core::execution_plans::ShuffleWriterExec;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;

/// Whether `plan` (a stage plan, rooted in its writer) writes partitions read whole.
pub(crate) fn writes_whole_partitions(plan: &dyn ExecutionPlan) -> bool {
    plan.is::<ShuffleWriterExec>()
}

/// `context` with the shuffle codec set to none.
pub(crate) fn without_compression(context: Arc<TaskContext>) -> Arc<TaskContext> {
    let mut config = context.session_config().clone();
    if config
        .options()
        .extensions
        .get::<BallistaConfig>()
        .is_none()
    {
        config = config.with_option_extension(BallistaConfig::default());
    }
    if config
        .options_mut()
        .set(BALLISTA_SHUFFLE_COMPRESSION_CODEC, "none")
        .is_err()
    {
        return context;
    }
    Arc::new(TaskContext::new(
        context.task_id(),
        context.session_id(),
        config,
        context.scalar_functions().clone(),
        context.higher_order_functions().clone(),
        context.aggregate_functions().clone(),
        context.window_functions().clone(),
        context.runtime_env(),
    ))
}
