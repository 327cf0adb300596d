//! Join distribution chosen by hints (`/*+ BROADCAST(b) */`, `/*+ PARTITIONED(t) */`).
//!
//! Ballista's adaptive planner decides each join from its inputs' size estimates and the
//! query's thresholds (`join_distribution_type`, `join_max_broadcast_table_size`); it cannot
//! be told how to run one particular join. So a hint is carried by the inputs of the join it
//! names: a [`JoinHintNode`] over each input, planned as an [`EstimateExec`] that reports a
//! tiny size (the broadcast build side) or a huge one (a side to shuffle). The query's
//! thresholds are then bounded so that those sizes win over the session's choice
//! ([`configure`]): a hint beats the session property, which beats the statistics.
//!
//! A hint applies to the nearest join above the named table or alias. Names that match no
//! join, and broadcasts that would be wrong for the join type (the preserved side of an
//! outer join), are returned as warnings and change nothing.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use ballista_core::config::{
    BALLISTA_BROADCAST_JOIN_THRESHOLD_BYTES, BALLISTA_STAGE_BUILD_SIDE, BallistaConfig,
};
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, Result as DfResult};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, JoinType, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use tributary_connector::{EstimateExec, SizeEstimate};

use crate::statement::hints::{Distribution, JoinHint};

/// A hinted join's input: plans as an [`EstimateExec`] reporting `estimate`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct JoinHintNode {
    input: LogicalPlan,
    schema: DFSchemaRef,
    estimate: SizeEstimate,
    /// The hint, as displayed (`BROADCAST(b)`).
    reason: String,
}

impl JoinHintNode {
    fn wrap(input: LogicalPlan, estimate: SizeEstimate, reason: &str) -> LogicalPlan {
        let schema = Arc::clone(input.schema());
        LogicalPlan::Extension(Extension {
            node: Arc::new(Self {
                input,
                schema,
                estimate,
                reason: reason.to_owned(),
            }),
        })
    }
}

impl PartialOrd for JoinHintNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match self.reason.partial_cmp(&other.reason) {
            Some(std::cmp::Ordering::Equal) => self.input.partial_cmp(&other.input),
            ordering => ordering,
        }
    }
}

impl UserDefinedLogicalNodeCore for JoinHintNode {
    fn name(&self) -> &str {
        "JoinHint"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn prevent_predicate_push_down_columns(&self) -> HashSet<String> {
        // Rows pass unchanged: every filter may go below.
        HashSet::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let side = match self.estimate {
            SizeEstimate::Tiny => "broadcast build side",
            SizeEstimate::Huge => "partitioned side",
        };
        write!(f, "JoinHint: {} ({side})", self.reason)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let input = inputs.into_iter().next().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal("JoinHint needs one input".into())
        })?;
        Ok(Self {
            schema: Arc::clone(input.schema()),
            input,
            estimate: self.estimate,
            reason: self.reason.clone(),
        })
    }

    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![output_columns.to_vec()])
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }
}

/// `plan` with `hints` placed on the joins they name, and a warning per hint (or name) that
/// changed nothing.
pub(crate) fn apply_hints(
    plan: LogicalPlan,
    hints: &[JoinHint],
) -> DfResult<(LogicalPlan, Vec<String>)> {
    if hints.is_empty() {
        return Ok((plan, Vec::new()));
    }
    let mut used: HashSet<(usize, String)> = HashSet::new();
    let mut warnings = Vec::new();
    let plan = plan
        .transform_up_with_subqueries(|node| {
            let LogicalPlan::Join(mut join) = node else {
                return Ok(Transformed::no(node));
            };
            if is_hinted(&join.left) || is_hinted(&join.right) {
                return Ok(Transformed::no(LogicalPlan::Join(join)));
            }
            let (left, right) = (relation_names(&join.left), relation_names(&join.right));
            for (index, hint) in hints.iter().enumerate() {
                for table in &hint.tables {
                    let on_left = left.contains(table);
                    let on_right = right.contains(table);
                    if !on_left && !on_right {
                        continue;
                    }
                    used.insert((index, table.clone()));
                    let reason = format!("{}({table})", hint.name);
                    match hint.distribution {
                        Distribution::Broadcast => {
                            if !broadcast_safe(join.join_type, on_right) {
                                warnings.push(format!(
                                    "hint {reason} ignored: a {} join cannot broadcast its {} side",
                                    join.join_type,
                                    if on_right { "right" } else { "left" }
                                ));
                                continue;
                            }
                            let (small, large) = if on_right {
                                (&mut join.right, &mut join.left)
                            } else {
                                (&mut join.left, &mut join.right)
                            };
                            wrap(small, SizeEstimate::Tiny, &reason);
                            wrap(large, SizeEstimate::Huge, &reason);
                        }
                        Distribution::Partitioned => {
                            wrap(&mut join.left, SizeEstimate::Huge, &reason);
                            wrap(&mut join.right, SizeEstimate::Huge, &reason);
                        }
                    }
                    // The first hint naming a join decides it.
                    return Ok(Transformed::yes(LogicalPlan::Join(join)));
                }
            }
            Ok(Transformed::no(LogicalPlan::Join(join)))
        })?
        .data;
    for (index, hint) in hints.iter().enumerate() {
        for table in &hint.tables {
            if !used.contains(&(index, table.clone())) {
                warnings.push(format!(
                    "hint {}({table}) ignored: no joined table or alias is named '{table}'",
                    hint.name
                ));
            }
        }
    }
    Ok((plan, warnings))
}

fn wrap(side: &mut Arc<LogicalPlan>, estimate: SizeEstimate, reason: &str) {
    let input = Arc::unwrap_or_clone(std::mem::replace(side, Arc::new(LogicalPlan::default())));
    *side = Arc::new(JoinHintNode::wrap(input, estimate, reason));
}

pub(crate) fn is_hinted(side: &LogicalPlan) -> bool {
    matches!(side, LogicalPlan::Extension(e) if e.node.as_any().is::<JoinHintNode>())
}

/// Whether the build side may be broadcast: only for joins that never emit rows on behalf
/// of the build side alone (Ballista's rule, after it puts the small side on the left).
pub(crate) fn broadcast_safe(join_type: JoinType, build_on_right: bool) -> bool {
    let as_left_build = if build_on_right {
        join_type.swap()
    } else {
        join_type
    };
    matches!(
        as_left_build,
        JoinType::Inner
            | JoinType::Right
            | JoinType::RightSemi
            | JoinType::RightAnti
            | JoinType::RightMark
    )
}

/// The names a join input answers to: aliases and table names down its single-input
/// nodes (a hint on `b` in `… JOIN small_table b` finds both `b` and `small_table`; it does
/// not reach into another join).
fn relation_names(plan: &LogicalPlan) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut node = plan;
    loop {
        match node {
            LogicalPlan::SubqueryAlias(alias) => {
                names.insert(alias.alias.table().to_owned());
            }
            LogicalPlan::TableScan(scan) => {
                names.insert(scan.table_name.table().to_owned());
                return names;
            }
            _ => {}
        }
        let inputs = node.inputs();
        match inputs.as_slice() {
            [only] => node = only,
            _ => return names,
        }
    }
}

/// Whether `plan` carries join hints (and of which kinds: tiny, huge).
pub(crate) fn hinted_estimates(plan: &LogicalPlan) -> (bool, bool) {
    let (mut tiny, mut huge) = (false, false);
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Extension(e) = node
            && let Some(hint) = e.node.as_any().downcast_ref::<JoinHintNode>()
        {
            match hint.estimate {
                SizeEstimate::Tiny => tiny = true,
                SizeEstimate::Huge => huge = true,
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    (tiny, huge)
}

/// Bounds a hinted query's thresholds so that hinted sizes decide their joins whatever the
/// session chose: a broadcast hint needs a byte threshold above its 1-byte estimate (under
/// `PARTITIONED` the threshold is 0), a partitioned hint one below its huge estimate (under
/// `BROADCAST` it is unbounded) and no measuring of the build side first.
pub(crate) fn configure(options: &mut ConfigOptions, plan: &LogicalPlan) -> DfResult<()> {
    let (tiny, huge) = hinted_estimates(plan);
    if !tiny && !huge {
        return Ok(());
    }
    let threshold = options
        .extensions
        .get::<BallistaConfig>()
        .map(|c| c.broadcast_join_threshold_bytes())
        .unwrap_or_default();
    let bounded = threshold.clamp(2, SizeEstimate::HUGE_BYTES - 1);
    if bounded != threshold {
        options.set(
            BALLISTA_BROADCAST_JOIN_THRESHOLD_BYTES,
            &bounded.to_string(),
        )?;
    }
    if huge {
        options.set(BALLISTA_STAGE_BUILD_SIDE, "false")?;
    }
    Ok(())
}

/// Plans [`JoinHintNode`]s as [`EstimateExec`]s (one of `crate::planner`'s extensions).
pub(crate) struct HintPlanner;

#[async_trait]
impl ExtensionPlanner for HintPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(hint) = node.as_any().downcast_ref::<JoinHintNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Ok(None);
        };
        Ok(Some(Arc::new(EstimateExec::new(
            Arc::clone(input),
            hint.estimate,
            hint.reason.clone(),
        ))))
    }
}

/// `plan` with the join hints written in `sql` placed on its joins . Hints that
/// change nothing are warnings: logged, and kept with the query (`system.runtime.queries`).
pub(crate) fn with_hints(plan: LogicalPlan, sql: &str) -> crate::error::Result<LogicalPlan> {
    let hints = crate::statement::hints::parse(sql);
    if hints.joins.is_empty() && hints.warnings.is_empty() {
        return Ok(plan);
    }
    let (plan, ignored) = crate::joins::apply_hints(plan, &hints.joins)?;
    let warnings: Vec<String> = hints.warnings.into_iter().chain(ignored).collect();
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    if let Some(query) = crate::monitor::current_query() {
        query.warn(&warnings);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::statement::hints;

    async fn plan(sql: &str) -> LogicalPlan {
        let ctx = SessionContext::new();
        for table in ["large_table", "small_table", "other"] {
            let schema = Arc::new(Schema::new(vec![
                Field::new("key", DataType::Int64, false),
                Field::new("info", DataType::Int64, false),
            ]));
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(vec![1, 2])),
                    Arc::new(Int64Array::from(vec![3, 4])),
                ],
            )
            .expect("batch");
            ctx.register_batch(table, batch).expect("register");
        }
        ctx.state()
            .create_logical_plan(sql)
            .await
            .expect("plannable")
    }

    /// The hint lines of `plan`, as EXPLAIN shows them, top down.
    fn hint_lines(plan: &LogicalPlan) -> Vec<String> {
        plan.display_indent()
            .to_string()
            .lines()
            .filter(|l| l.contains("JoinHint"))
            .map(|l| l.trim().to_owned())
            .collect()
    }

    async fn hinted(sql: &str) -> (LogicalPlan, Vec<String>) {
        let parsed = hints::parse(sql);
        apply_hints(plan(sql).await, &parsed.joins).expect("applied")
    }

    #[tokio::test]
    async fn broadcast_hint_marks_the_named_side_small() {
        let (plan, warnings) = hinted(
            "SELECT /*+ BROADCAST(small_table) */ a.key, b.info FROM large_table a \
             JOIN small_table b ON a.key = b.key",
        )
        .await;
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            hint_lines(&plan),
            [
                "JoinHint: BROADCAST(small_table) (partitioned side)",
                "JoinHint: BROADCAST(small_table) (broadcast build side)",
            ]
        );
        // The tiny estimate sits over the aliased small table.
        let text = plan.display_indent().to_string();
        let tiny = text.find("(broadcast build side)").expect("tiny");
        assert!(text[tiny..].contains("SubqueryAlias: b"), "{text}");
        assert_eq!(hinted_estimates(&plan), (true, true));
    }

    #[tokio::test]
    async fn partitioned_hint_marks_both_sides_and_only_its_join() {
        let (plan, warnings) = hinted(
            "SELECT /*+ SHUFFLE_HASH(o) */ count(*) FROM large_table a \
             JOIN small_table b ON a.key = b.key JOIN other o ON o.key = a.info",
        )
        .await;
        assert!(warnings.is_empty(), "{warnings:?}");
        let lines = hint_lines(&plan);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines
                .iter()
                .all(|l| l.contains("SHUFFLE_HASH(o) (partitioned side)"))
        );
        // The inner join (a with b) is left to the statistics.
        let text = plan.display_indent().to_string();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let inner = lines
            .iter()
            .position(|l| l.starts_with("Inner Join:  Filter: a.key = b.key"))
            .expect("the inner join");
        assert_eq!(lines[inner + 1], "SubqueryAlias: a", "{text}");
        assert_eq!(hinted_estimates(&plan), (false, true));
    }

    #[tokio::test]
    async fn unusable_hints_are_warnings() {
        let (plan, warnings) = hinted(
            "SELECT /*+ BROADCAST(missing) MAPJOIN(a) */ count(*) FROM large_table a \
             LEFT JOIN small_table b ON a.key = b.key",
        )
        .await;
        assert!(hint_lines(&plan).is_empty());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("MAPJOIN(a) ignored: a Left join cannot broadcast its left side")
        );
        assert!(warnings[1].contains("BROADCAST(missing) ignored: no joined table or alias"));
    }

    #[test]
    fn hinted_queries_get_thresholds_their_estimates_win() {
        let mut options = crate::cluster::base_config().options().as_ref().clone();
        options
            .set(BALLISTA_BROADCAST_JOIN_THRESHOLD_BYTES, "0")
            .expect("set");
        let tiny = JoinHintNode::wrap(LogicalPlan::default(), SizeEstimate::Tiny, "BROADCAST(t)");
        configure(&mut options, &tiny).expect("configure");
        let threshold = |o: &ConfigOptions| {
            o.extensions
                .get::<BallistaConfig>()
                .expect("ballista")
                .broadcast_join_threshold_bytes()
        };
        assert_eq!(threshold(&options), 2);
        options
            .set(
                BALLISTA_BROADCAST_JOIN_THRESHOLD_BYTES,
                &u64::MAX.to_string(),
            )
            .expect("set");
        let huge = JoinHintNode::wrap(LogicalPlan::default(), SizeEstimate::Huge, "PARTITIONED(t)");
        configure(&mut options, &huge).expect("configure");
        assert_eq!(threshold(&options), SizeEstimate::HUGE_BYTES - 1);
    }
}
