//! The web UI: server-rendered HTML pages (no JavaScript, no external assets, so it works
//! without internet access). The query list refreshes itself every few seconds.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::monitor::{NodeInfo, QueryInfo, StageInfo, TaskRecord, now_ms};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}\
header{background:#1d3557;color:#fff;padding:10px 20px;display:flex;gap:24px;align-items:center}\
header a{color:#fff;text-decoration:none;font-weight:600}main{padding:16px 20px}\
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:18px}\
th,td{border-bottom:1px solid #e3e6ea;padding:6px 8px;text-align:left;font-size:13px;vertical-align:top}\
th{background:#eef1f5}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.time{white-space:nowrap}\
.state{font-weight:700}.RUNNING,.STARTING{color:#1a7f37}.FAILED{color:#c62828}.FINISHED{color:#555}\
.QUEUED,.PLANNING,.FINISHING{color:#9a6700}.skew{background:#ffe3e3;font-weight:700}\
pre{background:#fff;border:1px solid #e3e6ea;padding:10px;overflow:auto;font-size:12px}\
.sql{white-space:pre-wrap}.error{background:#ffe3e3;border-color:#c62828}\
form{margin-bottom:12px;display:flex;gap:8px}input,select{padding:4px 6px}\
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:14px}\
.card{background:#fff;border:1px solid #e3e6ea;padding:8px 12px;min-width:120px}\
.card b{display:block;font-size:18px}";

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, refresh: Option<u32>, body: &str) -> String {
    let refresh = refresh
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">{refresh}<title>{} · Tributary</title>\
         <style>{STYLE}</style></head><body><header><a href=\"/ui/\">Tributary</a>\
         <a href=\"/ui/\">Queries</a><a href=\"/ui/executors\">Executors</a>\
         <a href=\"/metrics\">Metrics</a></header><main>{body}</main></body></html>",
        escape(title)
    )
}

fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.2} s", ms as f64 / 1000.0)
    } else {
        format!("{:.1} min", ms as f64 / 60_000.0)
    }
}

fn bytes(n: i64) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / 1024.0 / 1024.0)
    } else {
        format!("{:.2} GiB", n / 1024.0 / 1024.0 / 1024.0)
    }
}

fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

/// The query list with filters, and the cluster at a glance.
pub(super) fn queries_page(
    queries: &[QueryInfo],
    nodes: &[NodeInfo],
    state: &str,
    user: &str,
    text: &str,
) -> String {
    let running = queries.iter().filter(|q| !q.state.is_done()).count();
    let executors = nodes.iter().filter(|n| !n.coordinator).count();
    let slots: i64 = nodes.iter().map(|n| n.task_slots).sum();
    let mut body = format!(
        "<div class=\"cards\"><div class=\"card\">Running queries<b id=\"running-count\">{running}</b></div>\
         <div class=\"card\">Executors<b>{executors}</b></div><div class=\"card\">Task slots<b>{slots}</b></div></div>"
    );
    let options: String = ["", "RUNNING", "QUEUED", "PLANNING", "FINISHED", "FAILED"]
        .iter()
        .map(|s| {
            format!(
                "<option value=\"{s}\"{}>{}</option>",
                if *s == state { " selected" } else { "" },
                if s.is_empty() { "any state" } else { s }
            )
        })
        .collect();
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/ui/\"><select name=\"state\">{options}</select>\
         <input name=\"user\" placeholder=\"user\" value=\"{}\"><input name=\"query\" placeholder=\"text or query id\" size=\"40\" value=\"{}\">\
         <button type=\"submit\">Filter</button></form>",
        escape(user),
        escape(text)
    );
    body.push_str(
        "<table id=\"queries\"><tr><th>Query</th><th>State</th><th>User</th><th>Created</th>\
         <th>Elapsed</th><th>CPU</th><th>Input</th><th>Output rows</th><th>SQL</th></tr>",
    );
    for q in queries {
        let sql: String = q.query.chars().take(160).collect();
        let _ = write!(
            body,
            "<tr class=\"query-row\"><td><a href=\"/ui/query/{id}\">{id}</a></td><td class=\"state {state}\">{state}</td>\
             <td>{user}</td><td class=\"time\">{created}</td><td class=\"num\">{elapsed}</td><td class=\"num\">{cpu}</td>\
             <td class=\"num\">{rows} rows / {input}</td><td class=\"num\">{out}</td><td><code>{sql}</code>{error}</td></tr>",
            id = escape(&q.query_id),
            state = q.state.as_str(),
            user = escape(&q.user),
            created = time(Some(q.created_ms)),
            elapsed = duration(q.elapsed_ms()),
            cpu = duration(q.cpu_time_ms),
            rows = q.input_rows,
            input = bytes(q.input_bytes),
            out = q.output_rows,
            sql = escape(&sql),
            error = q
                .error_code
                .as_deref()
                .map(|c| format!("<br><span class=\"FAILED\">{}</span>", escape(c)))
                .unwrap_or_default(),
        );
    }
    body.push_str("</table>");
    page("Queries", Some(3), &body)
}

/// One query: SQL, timings, the stage graph, per-stage and per-task numbers with skew
/// highlighted, plans and error.
pub(super) fn query_page(q: &QueryInfo, tasks: &[TaskRecord]) -> String {
    let mut body = format!(
        "<h2>Query <span id=\"query-id\">{}</span> <span class=\"state {state}\">{state}</span></h2>",
        escape(&q.query_id),
        state = q.state.as_str()
    );
    let _ = write!(
        body,
        "<div class=\"cards\"><div class=\"card\">User<b>{}</b></div><div class=\"card\">Elapsed<b>{}</b></div>\
         <div class=\"card\">CPU<b>{}</b></div><div class=\"card\">Queued / analysis / planning<b>{} / {} / {}</b></div>\
         <div class=\"card\">Input<b>{} rows, {}</b></div><div class=\"card\">Output<b>{} rows, {}</b></div>\
         <div class=\"card\">Peak task memory<b>{}</b></div><div class=\"card\">Job<b>{}</b></div></div>",
        escape(&q.user),
        duration(q.elapsed_ms()),
        duration(q.cpu_time_ms),
        duration(q.queued_time_ms),
        duration(q.analysis_time_ms),
        duration(q.planning_time_ms),
        q.input_rows,
        bytes(q.input_bytes),
        q.output_rows,
        bytes(q.output_bytes),
        bytes(q.peak_memory_bytes),
        escape(q.job_id.as_deref().unwrap_or("-")),
    );
    let _ = write!(
        body,
        "<h3>SQL</h3><pre class=\"sql\">{}</pre>",
        escape(&q.query)
    );
    if let Some(message) = &q.error_message {
        let _ = write!(
            body,
            "<h3>Error</h3><pre class=\"error\">{}: {}</pre>",
            escape(q.error_code.as_deref().unwrap_or("")),
            escape(message)
        );
    }
    if !q.stages.is_empty() {
        body.push_str("<h3>Stages</h3>");
        body.push_str(&stage_graph(&q.stages));
        body.push_str(
            "<table id=\"stages\"><tr><th>Stage</th><th>State</th><th>Tasks</th><th>Reads</th>\
             <th>Rows per task min / median / max</th><th>Time per task min / median / max</th><th>Wall</th></tr>",
        );
        for s in &q.stages {
            let wall = match (s.start_ms, s.end_ms) {
                (Some(a), Some(b)) => duration(b - a),
                (Some(a), None) => duration(now_ms() - a),
                _ => String::new(),
            };
            let _ = write!(
                body,
                "<tr class=\"stage-row{skew}\"><td>{id}</td><td class=\"state {state}\">{state}</td>\
                 <td class=\"num\">{done}/{tasks}</td><td>{inputs}</td><td class=\"num\">{r0} / {r1} / {r2}</td>\
                 <td class=\"num\">{t0} / {t1} / {t2}</td><td class=\"num\">{wall}{flag}</td></tr>",
                skew = if s.skewed { " skew" } else { "" },
                id = s.stage_id,
                state = s.state,
                done = s.tasks_finished,
                tasks = s.tasks,
                inputs = s
                    .inputs
                    .iter()
                    .map(|i| format!("stage {i}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                r0 = s.rows.min,
                r1 = s.rows.median,
                r2 = s.rows.max,
                t0 = duration(s.time_ms.min),
                t1 = duration(s.time_ms.median),
                t2 = duration(s.time_ms.max),
                flag = match s.skew_split {
                    0 if s.skewed => " ⚠ skewed".to_owned(),
                    0 => String::new(),
                    split => format!(" ⚠ skewed · {split} join partition(s) split"),
                },
            );
        }
        body.push_str("</table>");
    }
    if !tasks.is_empty() {
        body.push_str(&task_table(tasks));
    }
    for s in &q.stages {
        let _ = write!(
            body,
            "<h4>Stage {} plan</h4><pre class=\"plan\">{}</pre>",
            s.stage_id,
            escape(&s.plan)
        );
        if let Some(error) = &s.error {
            let _ = write!(body, "<pre class=\"error\">{}</pre>", escape(error));
        }
    }
    let refresh = (!q.state.is_done()).then_some(2);
    page(&format!("Query {}", q.query_id), refresh, &body)
}

fn task_table(tasks: &[TaskRecord]) -> String {
    // Median input rows per stage, to flag tasks far above it.
    let mut medians: HashMap<usize, i64> = HashMap::new();
    let mut by_stage: HashMap<usize, Vec<i64>> = HashMap::new();
    for t in tasks {
        by_stage
            .entry(t.stage_id)
            .or_default()
            .push(t.processed_input_rows);
    }
    for (stage, mut rows) in by_stage {
        rows.sort_unstable();
        medians.insert(stage, rows[(rows.len() - 1) / 2]);
    }
    let mut sorted: Vec<&TaskRecord> = tasks.iter().collect();
    sorted.sort_by_key(|t| (t.stage_id, t.task_id, t.attempt));
    let mut out = String::from(
        "<h3>Tasks</h3><table id=\"tasks\"><tr><th>Task</th><th>Executor</th><th>State</th><th>Splits</th>\
         <th>Input rows</th><th>Input bytes</th><th>Output rows</th><th>Time</th><th>CPU</th><th>Peak memory</th><th>Spilled</th></tr>",
    );
    for t in sorted {
        let median = medians.get(&t.stage_id).copied().unwrap_or(0);
        let skewed = t.processed_input_rows >= crate::monitor::SKEW_MIN_ROWS
            && t.processed_input_rows as f64 > crate::monitor::SKEW_RATIO * median.max(1) as f64;
        let _ = write!(
            out,
            "<tr class=\"task-row{}\"><td>{}.{}.{}</td><td>{}</td><td class=\"state {}\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            if skewed { " skew" } else { "" },
            t.stage_id,
            t.task_id,
            t.attempt,
            escape(&t.node_id),
            t.state,
            t.state,
            t.splits,
            t.processed_input_rows,
            bytes(t.processed_input_bytes),
            t.output_rows,
            duration(t.scheduled_time_ms),
            duration(t.cpu_time_ms),
            bytes(t.peak_memory_bytes),
            bytes(t.spilled_bytes),
        );
    }
    out.push_str("</table>");
    out
}

/// The stages as boxes (sources on the left, the final stage on the right) with arrows
/// from each stage to the stages reading it.
fn stage_graph(stages: &[StageInfo]) -> String {
    const W: i64 = 240;
    const H: i64 = 64;
    const GAP_X: i64 = 70;
    const GAP_Y: i64 = 24;
    // Depth: distance from the final stage.
    let by_id: HashMap<usize, &StageInfo> = stages.iter().map(|s| (s.stage_id, s)).collect();
    let mut depth: HashMap<usize, i64> = HashMap::new();
    fn depth_of(
        id: usize,
        by_id: &HashMap<usize, &StageInfo>,
        memo: &mut HashMap<usize, i64>,
        guard: usize,
    ) -> i64 {
        if let Some(d) = memo.get(&id) {
            return *d;
        }
        let d = match by_id.get(&id) {
            Some(s) if !s.output_links.is_empty() && guard < 64 => {
                1 + s
                    .output_links
                    .iter()
                    .map(|o| depth_of(*o, by_id, memo, guard + 1))
                    .max()
                    .unwrap_or(0)
            }
            _ => 0,
        };
        memo.insert(id, d);
        d
    }
    for s in stages {
        depth_of(s.stage_id, &by_id, &mut depth, 0);
    }
    let max_depth = depth.values().copied().max().unwrap_or(0);
    let mut rows_at: HashMap<i64, i64> = HashMap::new();
    let mut pos: HashMap<usize, (i64, i64)> = HashMap::new();
    for s in stages {
        let d = depth[&s.stage_id];
        let row = rows_at.entry(d).or_insert(0);
        pos.insert(
            s.stage_id,
            (10 + (max_depth - d) * (W + GAP_X), 10 + *row * (H + GAP_Y)),
        );
        *row += 1;
    }
    let width = 20 + (max_depth + 1) * (W + GAP_X);
    let height = 20 + rows_at.values().copied().max().unwrap_or(1) * (H + GAP_Y);
    let mut svg = format!(
        "<svg id=\"stage-graph\" width=\"{width}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <defs><marker id=\"arrow\" markerWidth=\"10\" markerHeight=\"8\" refX=\"9\" refY=\"4\" orient=\"auto\">\
         <path d=\"M0,0 L10,4 L0,8 z\" fill=\"#555\"/></marker></defs>"
    );
    for s in stages {
        let (x, y) = pos[&s.stage_id];
        for out in &s.output_links {
            if let Some((ox, oy)) = pos.get(out) {
                let _ = write!(
                    svg,
                    "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#555\" marker-end=\"url(#arrow)\"/>",
                    x + W,
                    y + H / 2,
                    ox - 2,
                    oy + H / 2
                );
            }
        }
    }
    for s in stages {
        let (x, y) = pos[&s.stage_id];
        let fill = match s.state.as_str() {
            "RUNNING" => "#dff5e3",
            "FINISHED" => "#eef1f5",
            "FAILED" => "#ffe3e3",
            _ => "#fff8e1",
        };
        let stroke = if s.skewed { "#c62828" } else { "#8892a0" };
        let _ = write!(
            svg,
            "<g class=\"stage-node\"><rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{H}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"13\" font-weight=\"700\">Stage {} · {}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"12\">{}/{} tasks · max {} rows{}</text></g>",
            if s.skewed { 3 } else { 1 },
            x + 8,
            y + 22,
            s.stage_id,
            s.state,
            x + 8,
            y + 44,
            s.tasks_finished,
            s.tasks,
            s.rows.max,
            if s.skewed { " · skew" } else { "" },
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The scheduler and executors.
pub(super) fn executors_page(nodes: &[NodeInfo]) -> String {
    let mut body = String::from(
        "<h2>Nodes</h2><table id=\"nodes\"><tr><th>Node</th><th>Role</th><th>State</th><th>Address</th>\
         <th>Task slots</th><th>Last heartbeat</th><th>Version</th></tr>",
    );
    for n in nodes {
        let _ = write!(
            body,
            "<tr class=\"node-row\"><td>{}</td><td>{}</td><td class=\"state\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&n.node_id),
            if n.coordinator {
                "scheduler"
            } else {
                "executor"
            },
            escape(&n.state),
            escape(n.http_uri.as_deref().unwrap_or("")),
            n.task_slots,
            time(n.last_heartbeat_ms),
            escape(&n.node_version),
        );
    }
    body.push_str("</table>");
    page("Executors", Some(5), &body)
}

/// A query id nobody knows.
pub(super) fn not_found(id: &str) -> String {
    page(
        "Not found",
        None,
        &format!("<h2>Query {} not found</h2>", escape(id)),
    )
}
