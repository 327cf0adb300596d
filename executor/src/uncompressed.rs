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

use ballista_core::config::{BALLISTA_SHUFFLE_COMPRESSION_CODEC, BallistaConfig};
use ballista_core::execution_plans::ShuffleWriterExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;

/// Whether `plan` (a stage plan, rooted in its writer) writes partitions read whole.
pub(crate) fn writes_whole_partitions(plan: &dyn ExecutionPlan) -> bool {
    plan.is::<ShuffleWriterExec>()
}

/// Sets a task's shuffle codec to none. Returns whether `config` changed.
pub(crate) fn without_compression(config: &mut SessionConfig) -> bool {
    if config
        .options()
        .extensions
        .get::<BallistaConfig>()
        .is_none()
    {
        *config = std::mem::take(config).with_option_extension(BallistaConfig::default());
    }
    config
        .options_mut()
        .set(BALLISTA_SHUFFLE_COMPRESSION_CODEC, "none")
        .is_ok()
}
