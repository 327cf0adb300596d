//! `system.runtime`: queries (running, and the most recent ones, read back from the history
//! store at start-up), their tasks, and the nodes of the cluster.

use super::{Columns, SystemTable, table};
use crate::monitor::{Monitor, NodeInfo, QueryInfo, TaskRecord};

pub(super) fn tables(monitor: &Monitor) -> Vec<(&'static str, SystemTable)> {
    let m = monitor.clone();
    let queries = table(queries(&[]), move || {
        let m = m.clone();
        Box::pin(async move { Ok(queries(&m.queries().await)) })
    });
    let m = monitor.clone();
    let tasks = table(tasks(&[]), move || {
        let m = m.clone();
        Box::pin(async move { Ok(tasks(&m.task_rows().await)) })
    });
    let m = monitor.clone();
    let nodes = table(nodes(&[]), move || {
        let m = m.clone();
        Box::pin(async move { Ok(nodes(&m.nodes().await)) })
    });
    vec![("queries", queries), ("tasks", tasks), ("nodes", nodes)]
}

fn col<T, V>(rows: &[T], f: impl Fn(&T) -> V) -> Vec<V> {
    rows.iter().map(f).collect()
}

/// Trino's columns, then `elapsed`, `cpu_time`, `memory_pool` (the seed's query), then the
/// query's statistics.
fn queries(rows: &[QueryInfo]) -> Columns {
    Columns::default()
        .text("query_id", col(rows, |q| Some(q.query_id.clone())))
        .text("state", col(rows, |q| Some(q.state.as_str().to_owned())))
        .text("user", col(rows, |q| Some(q.user.clone())))
        .text("source", col(rows, |q| Some(q.source.clone())))
        .text("query", col(rows, |q| Some(q.query.clone())))
        .text(
            "resource_group_id",
            col(rows, |q| Some(q.resource_group_id.clone())),
        )
        .int("queued_time_ms", col(rows, |q| Some(q.queued_time_ms)))
        .int("analysis_time_ms", col(rows, |q| Some(q.analysis_time_ms)))
        .int("planning_time_ms", col(rows, |q| Some(q.planning_time_ms)))
        .time("created", col(rows, |q| Some(q.created_ms)))
        .time("started", col(rows, |q| q.started_ms))
        .time("last_heartbeat", col(rows, |q| Some(q.last_heartbeat_ms)))
        .time("end", col(rows, |q| q.end_ms))
        .text("error_type", col(rows, |q| q.error_type.clone()))
        .text("error_code", col(rows, |q| q.error_code.clone()))
        .duration("elapsed", col(rows, |q| Some(q.elapsed_ms())))
        .duration("cpu_time", col(rows, |q| Some(q.cpu_time_ms)))
        .text("memory_pool", col(rows, |_| Some("general".to_owned())))
        .int(
            "peak_memory_bytes",
            col(rows, |q| Some(q.peak_memory_bytes)),
        )
        .int("input_rows", col(rows, |q| Some(q.input_rows)))
        .int("input_bytes", col(rows, |q| Some(q.input_bytes)))
        .int("output_rows", col(rows, |q| Some(q.output_rows)))
        .int("output_bytes", col(rows, |q| Some(q.output_bytes)))
        .text("error_message", col(rows, |q| q.error_message.clone()))
        .text("job_id", col(rows, |q| q.job_id.clone()))
        .text("trace_id", col(rows, |q| q.trace_id.clone()))
        .text(
            "warnings",
            col(rows, |q| {
                (!q.warnings.is_empty()).then(|| q.warnings.join("\n"))
            }),
        )
}

/// Trino's task columns (ids as Trino writes them: `<query>.<stage>.<task>.<attempt>`),
/// then memory, spill and the Ballista job.
fn tasks(rows: &[(String, TaskRecord)]) -> Columns {
    let done = |t: &TaskRecord| t.state == "FINISHED" || t.state == "FAILED";
    Columns::default()
        .text("node_id", col(rows, |(_, t)| Some(t.node_id.clone())))
        .text(
            "task_id",
            col(rows, |(q, t)| {
                Some(format!("{q}.{}.{}.{}", t.stage_id, t.task_id, t.attempt))
            }),
        )
        .text(
            "stage_id",
            col(rows, |(q, t)| Some(format!("{q}.{}", t.stage_id))),
        )
        .text("query_id", col(rows, |(q, _)| Some(q.clone())))
        .text("state", col(rows, |(_, t)| Some(t.state.clone())))
        .int("splits", col(rows, |(_, t)| Some(t.splits as i64)))
        .int("queued_splits", col(rows, |_| Some(0)))
        .int(
            "running_splits",
            col(rows, |(_, t)| {
                Some(if done(t) { 0 } else { t.splits as i64 })
            }),
        )
        .int(
            "completed_splits",
            col(rows, |(_, t)| {
                Some(if done(t) { t.splits as i64 } else { 0 })
            }),
        )
        .int(
            "split_scheduled_time_ms",
            col(rows, |(_, t)| Some(t.scheduled_time_ms)),
        )
        .int("split_cpu_time_ms", col(rows, |(_, t)| Some(t.cpu_time_ms)))
        .int(
            "split_blocked_time_ms",
            col(rows, |(_, t)| Some(t.blocked_time_ms)),
        )
        .int(
            "raw_input_bytes",
            col(rows, |(_, t)| Some(t.raw_input_bytes)),
        )
        .int("raw_input_rows", col(rows, |(_, t)| Some(t.raw_input_rows)))
        .int(
            "processed_input_bytes",
            col(rows, |(_, t)| Some(t.processed_input_bytes)),
        )
        .int(
            "processed_input_rows",
            col(rows, |(_, t)| Some(t.processed_input_rows)),
        )
        .int("output_bytes", col(rows, |(_, t)| Some(t.output_bytes)))
        .int("output_rows", col(rows, |(_, t)| Some(t.output_rows)))
        .int(
            "physical_input_bytes",
            col(rows, |(_, t)| Some(t.raw_input_bytes)),
        )
        .int(
            "physical_written_bytes",
            col(rows, |(_, t)| Some(t.output_bytes)),
        )
        .time("created", col(rows, |(_, t)| Some(t.created_ms)))
        .time("start", col(rows, |(_, t)| t.start_ms))
        .time(
            "last_heartbeat",
            col(rows, |(_, t)| {
                Some(t.end_ms.unwrap_or_else(crate::monitor::now_ms))
            }),
        )
        .time("end", col(rows, |(_, t)| t.end_ms))
        .int(
            "peak_memory_bytes",
            col(rows, |(_, t)| Some(t.peak_memory_bytes)),
        )
        .int("spilled_bytes", col(rows, |(_, t)| Some(t.spilled_bytes)))
        .text("job_id", col(rows, |(_, t)| Some(t.job_id.clone())))
        .text("error", col(rows, |(_, t)| t.error.clone()))
}

fn nodes(rows: &[NodeInfo]) -> Columns {
    Columns::default()
        .text("node_id", col(rows, |n| Some(n.node_id.clone())))
        .text("http_uri", col(rows, |n| n.http_uri.clone()))
        .text("node_version", col(rows, |n| Some(n.node_version.clone())))
        .boolean("coordinator", col(rows, |n| Some(n.coordinator)))
        .text("state", col(rows, |n| Some(n.state.clone())))
        .int("task_slots", col(rows, |n| Some(n.task_slots)))
}
