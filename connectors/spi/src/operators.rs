//! A stage plan's operators in the order Ballista's executors report their metrics
//! (pre-order over the operators that have metrics), classified for summing those metrics:
//! the scheduler's task records and the executors' Prometheus counters both read them so.

use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::{MetricValue, MetricsSet};

use crate::source::scan_catalog;

/// What one operator with metrics is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanOperator {
    /// A leaf scan: of a catalog (a connector or file scan), or of in-memory rows (`None`).
    Source(Option<String>),
    /// A read of an earlier stage's output (Ballista's shuffle readers).
    Exchange,
    /// Anything else.
    Inner,
}

/// The operators of `plan` that have metrics, in pre-order (Ballista's
/// `collect_plan_metrics` order).
pub fn plan_operators(plan: &dyn ExecutionPlan) -> Vec<PlanOperator> {
    fn walk(plan: &dyn ExecutionPlan, out: &mut Vec<PlanOperator>) {
        if plan.metrics().is_some() {
            out.push(if plan.children().is_empty() {
                let name = plan.name();
                if name.contains("ShuffleReader") || name.contains("UnresolvedShuffle") {
                    PlanOperator::Exchange
                } else {
                    PlanOperator::Source(scan_catalog(plan))
                }
            } else {
                PlanOperator::Inner
            });
        }
        for child in plan.children() {
            walk(child.as_ref(), out);
        }
    }
    let mut out = Vec::new();
    walk(plan, &mut out);
    out
}

/// Bytes an input operator read: what a file scan scanned or a shuffle read decoded
/// (`bytes_scanned`, `decoded_bytes`), else the bytes it produced (`output_bytes`).
pub fn bytes_read(metrics: &MetricsSet) -> i64 {
    let mut read = None;
    let mut output = 0i64;
    for metric in metrics.iter() {
        match metric.value() {
            MetricValue::Count { name, count }
                if name == "bytes_scanned" || name == "decoded_bytes" =>
            {
                *read.get_or_insert(0) += count.value() as i64;
            }
            MetricValue::OutputBytes(c) => output += c.value() as i64,
            _ => {}
        }
    }
    read.unwrap_or(output)
}
