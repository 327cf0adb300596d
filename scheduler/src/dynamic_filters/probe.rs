//! What a build side's collected keys put on its probe side: the predicate (a range, and a
//! list where it says more than the range) and the plan with it on the join's probe input.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, JoinType, NullEquality, ScalarValue};
use datafusion::logical_expr::{Distinct, Expr, Filter, Join, LogicalPlan, lit};

/// What the keys a build side held allow of its probe side.
#[derive(Debug, Clone)]
pub(super) enum Keys {
    /// No keys: the join matches nothing.
    None,
    /// Each key's distinct values (at most `max_distinct` rows of keys), with their range.
    Values(Vec<(Vec<ScalarValue>, ScalarValue, ScalarValue)>),
    /// Too many to list: each key's range.
    Ranges(Vec<(ScalarValue, ScalarValue)>),
}

impl Keys {
    /// What is known of the `i`-th key alone.
    fn key(&self, i: usize) -> Keys {
        match self {
            Keys::None => Keys::None,
            Keys::Values(per_key) => Keys::Values(vec![per_key[i].clone()]),
            Keys::Ranges(per_key) => Keys::Ranges(vec![per_key[i].clone()]),
        }
    }
}

/// The probe side's predicate for `keys`, and how it is shown.
pub(super) fn predicate(probe_keys: &[Expr], keys: &Keys) -> (Expr, String) {
    let range = |key: &Expr, low: &ScalarValue, high: &ScalarValue| {
        if low == high {
            key.clone().eq(lit(low.clone()))
        } else {
            key.clone()
                .gt_eq(lit(low.clone()))
                .and(key.clone().lt_eq(lit(high.clone())))
        }
    };
    match keys {
        Keys::None => (
            lit(false),
            "no build keys: the probe side reads nothing".into(),
        ),
        Keys::Values(per_key) => {
            let mut conjuncts = Vec::new();
            let mut shown = Vec::new();
            for (key, (values, low, high)) in probe_keys.iter().zip(per_key) {
                // The range prunes row groups by their statistics; the list, rows (and the
                // remote SQL), beyond what a range can say.
                conjuncts.push(range(key, low, high));
                // Every integer of the range (TPC-H Q15's 10,000 suppliers, 1 to 10000): the
                // list says nothing the range does not, and costs a lookup per probe row.
                if dense(values, low, high) {
                    shown.push(format!(
                        "{key} BETWEEN {low} AND {high} (all {} values of the range)",
                        values.len()
                    ));
                    continue;
                }
                if values.len() > 1 {
                    let list = values.iter().cloned().map(lit).collect();
                    conjuncts.push(key.clone().in_list(list, false));
                }
                shown.push(format!(
                    "{key} IN ({} values, {low} to {high})",
                    values.len()
                ));
            }
            (conjunction(conjuncts), shown.join(" AND "))
        }
        Keys::Ranges(per_key) => {
            let mut conjuncts = Vec::new();
            let mut shown = Vec::new();
            for (key, (low, high)) in probe_keys.iter().zip(per_key) {
                conjuncts.push(range(key, low, high));
                shown.push(format!("{key} BETWEEN {low} AND {high}"));
            }
            (conjunction(conjuncts), shown.join(" AND "))
        }
    }
}

/// Whether distinct integer `values` from `low` to `high` are every integer between them.
fn dense(values: &[ScalarValue], low: &ScalarValue, high: &ScalarValue) -> bool {
    let as_i128 = |v: &ScalarValue| match v {
        ScalarValue::Int8(Some(v)) => Some(i128::from(*v)),
        ScalarValue::Int16(Some(v)) => Some(i128::from(*v)),
        ScalarValue::Int32(Some(v)) => Some(i128::from(*v)),
        ScalarValue::Int64(Some(v)) => Some(i128::from(*v)),
        ScalarValue::UInt8(Some(v)) => Some(i128::from(*v)),
        ScalarValue::UInt16(Some(v)) => Some(i128::from(*v)),
        ScalarValue::UInt32(Some(v)) => Some(i128::from(*v)),
        ScalarValue::UInt64(Some(v)) => Some(i128::from(*v)),
        _ => None,
    };
    match (as_i128(low), as_i128(high)) {
        (Some(low), Some(high)) => values.len() > 1 && high - low + 1 == values.len() as i128,
        _ => false,
    }
}

fn conjunction(exprs: Vec<Expr>) -> Expr {
    datafusion::logical_expr::utils::conjunction(exprs).unwrap_or_else(|| lit(true))
}

/// A filter applied to the probe side of the join at pre-order `index`, with what it was made
/// of: the keys on each side and what the build side held of them.
#[derive(Debug)]
pub(super) struct Applied {
    pub(super) index: usize,
    pub(super) build_is_left: bool,
    pub(super) predicate: Expr,
    pub(super) build_keys: Vec<Expr>,
    pub(super) probe_keys: Vec<Expr>,
    pub(super) keys: Keys,
    /// How the filter is shown (`l_partkey from the right side's p_partkey`).
    pub(super) described: String,
}

/// `plan` with each filter put on the probe side of its join, each stand-in in place of the
/// build side of the join at its index (`(index, plan)`), and each filter's keys carried
/// through equal join keys to the other joins they restrict; with one line per carried filter.
pub(super) fn with_filters(
    plan: LogicalPlan,
    filters: &[Applied],
    stand_ins: Vec<(usize, LogicalPlan)>,
) -> datafusion::error::Result<(LogicalPlan, Vec<String>)> {
    let mut rewrite = Rewrite {
        index: 0,
        filters,
        stand_ins,
        carried: Vec::new(),
    };
    let (plan, _) = rewrite.plan(plan)?;
    Ok((plan, rewrite.carried.into_iter().map(|c| c.line).collect()))
}

/// Whether the keys of the join at pre-order `index`, once collected, would be carried into
/// another join's side that aggregates (where they save the most: the aggregation of every
/// row outside them).
pub(super) fn reaches_an_aggregate(
    plan: &LogicalPlan,
    index: usize,
    build_is_left: bool,
    build_keys: &[Expr],
    probe_keys: &[Expr],
) -> bool {
    let applied = Applied {
        index,
        build_is_left,
        predicate: lit(false),
        build_keys: build_keys.to_vec(),
        probe_keys: probe_keys.to_vec(),
        keys: Keys::None,
        described: String::new(),
    };
    let mut rewrite = Rewrite {
        index: 0,
        filters: std::slice::from_ref(&applied),
        stand_ins: Vec::new(),
        carried: Vec::new(),
    };
    rewrite
        .plan(plan.clone())
        .is_ok_and(|_| rewrite.carried.iter().any(|c| c.into_aggregate))
}

/// A filter carried to another join's side.
struct Carried {
    line: String,
    /// Whether that side aggregates.
    into_aggregate: bool,
}

/// What is known of a column of a plan's output: its values are among one key's collected
/// keys (NULL excluded), as the filter applied at join `origin` found them.
#[derive(Debug, Clone)]
struct Fact {
    column: Column,
    keys: Arc<Keys>,
    origin: usize,
}

struct Rewrite<'a> {
    /// Pre-order index of the next join.
    index: usize,
    filters: &'a [Applied],
    stand_ins: Vec<(usize, LogicalPlan)>,
    /// The filters carried to other joins.
    carried: Vec<Carried>,
}

impl Rewrite<'_> {
    /// `plan` rewritten, with the [`Fact`]s known of its output columns; its joins are
    /// numbered (in pre-order) before any of their inputs is replaced, so the indices stay
    /// those of the plan the candidates were found in.
    fn plan(&mut self, plan: LogicalPlan) -> datafusion::error::Result<(LogicalPlan, Vec<Fact>)> {
        let LogicalPlan::Join(join) = plan else {
            let mut inputs = Vec::new();
            let plan = plan
                .map_children(|child| {
                    let (child, facts) = self.plan(child)?;
                    inputs.push(facts);
                    Ok(Transformed::yes(child))
                })?
                .data;
            let facts = carry(&plan, inputs);
            return Ok((plan, facts));
        };
        let this = self.index;
        self.index += 1;
        let (left, mut left_facts) = self.plan(Arc::unwrap_or_clone(join.left))?;
        let (right, mut right_facts) = self.plan(Arc::unwrap_or_clone(join.right))?;
        let mut join = Join {
            left: Arc::new(left),
            right: Arc::new(right),
            ..join
        };
        if let Some(applied) = self.filters.iter().find(|a| a.index == this) {
            let stand_in = self
                .stand_ins
                .iter()
                .position(|(i, _)| *i == this)
                .map(|at| Arc::new(self.stand_ins.swap_remove(at).1));
            let (probe, build) = if applied.build_is_left {
                (&mut join.right, &mut join.left)
            } else {
                (&mut join.left, &mut join.right)
            };
            *probe = filtered(probe, applied.predicate.clone())?;
            if let Some(stand_in) = stand_in {
                *build = stand_in;
            }
            // Both sides' keys are now among the collected keys: the probe side's by its
            // filter, the build side's because they are what it holds.
            let (probe_facts, build_facts) = if applied.build_is_left {
                (&mut right_facts, &mut left_facts)
            } else {
                (&mut left_facts, &mut right_facts)
            };
            for (i, (probe_key, build_key)) in applied
                .probe_keys
                .iter()
                .zip(&applied.build_keys)
                .enumerate()
            {
                let keys = Arc::new(applied.keys.key(i));
                for (facts, key) in [
                    (&mut *probe_facts, probe_key),
                    (&mut *build_facts, build_key),
                ] {
                    if let Expr::Column(column) = key {
                        facts.push(Fact {
                            column: column.clone(),
                            keys: Arc::clone(&keys),
                            origin: this,
                        });
                    }
                }
            }
        }
        self.carry_across(&mut join, &mut left_facts, &mut right_facts)?;
        let facts = match join.join_type {
            JoinType::Inner => left_facts.into_iter().chain(right_facts).collect(),
            JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
                left_facts
            }
            JoinType::Right | JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => {
                right_facts
            }
            JoinType::Full => Vec::new(),
        };
        Ok((LogicalPlan::Join(join), facts))
    }

    /// Filters each side of `join` by the collected keys known of the other side's equal key,
    /// where rows of that side outside them cannot change the join's output: an inner or semi
    /// join, or the side an outer or anti join does not keep whole. TPC-H Q17: the 204 parts'
    /// keys collected for `lineitem JOIN part` also filter the `avg(l_quantity) GROUP BY
    /// l_partkey` it is joined with, which the optimizer then pushes below the aggregate into
    /// its lineitem scan.
    fn carry_across(
        &mut self,
        join: &mut Join,
        left_facts: &mut Vec<Fact>,
        right_facts: &mut Vec<Fact>,
    ) -> datafusion::error::Result<()> {
        if join.null_equality != NullEquality::NullEqualsNothing || join.null_aware {
            return Ok(());
        }
        let (to_right, to_left) = match join.join_type {
            JoinType::Inner | JoinType::LeftSemi | JoinType::RightSemi => (true, true),
            JoinType::Left | JoinType::LeftAnti => (true, false),
            JoinType::Right | JoinType::RightAnti => (false, true),
            _ => (false, false),
        };
        for (left_key, right_key) in join.on.clone() {
            if to_right {
                self.carry(
                    &left_key,
                    left_facts,
                    &right_key,
                    right_facts,
                    &mut join.right,
                )?;
            }
            if to_left {
                self.carry(
                    &right_key,
                    right_facts,
                    &left_key,
                    left_facts,
                    &mut join.left,
                )?;
            }
        }
        Ok(())
    }

    /// Puts on `target` the keys known of `from_key` (a column of the other side), unless
    /// `target_key` is already known to be among them.
    fn carry(
        &mut self,
        from_key: &Expr,
        from_facts: &[Fact],
        target_key: &Expr,
        target_facts: &mut Vec<Fact>,
        target: &mut Arc<LogicalPlan>,
    ) -> datafusion::error::Result<()> {
        let Expr::Column(from) = from_key else {
            return Ok(());
        };
        for fact in from_facts.iter().filter(|f| &f.column == from) {
            let known = |f: &Fact| {
                f.origin == fact.origin && matches!(target_key, Expr::Column(c) if c == &f.column)
            };
            if target_facts.iter().any(known) {
                continue;
            }
            let (predicate, shown) = predicate(std::slice::from_ref(target_key), &fact.keys);
            let into_aggregate = target
                .exists(|node| Ok(matches!(node, LogicalPlan::Aggregate(_))))
                .unwrap_or(false);
            *target = filtered(target, predicate)?;
            let described = self
                .filters
                .iter()
                .find(|a| a.index == fact.origin)
                .map(|a| a.described.as_str())
                .unwrap_or_default();
            self.carried.push(Carried {
                line: format!(
                    "{shown}: carried through {from_key} = {target_key} from {described}"
                ),
                into_aggregate,
            });
            if let Expr::Column(column) = target_key {
                target_facts.push(Fact {
                    column: column.clone(),
                    keys: Arc::clone(&fact.keys),
                    origin: fact.origin,
                });
            }
        }
        Ok(())
    }
}

fn filtered(
    side: &Arc<LogicalPlan>,
    predicate: Expr,
) -> datafusion::error::Result<Arc<LogicalPlan>> {
    Ok(Arc::new(LogicalPlan::Filter(Filter::try_new(
        predicate,
        Arc::clone(side),
    )?)))
}

/// The facts of a (non-join) node's output columns from its inputs' facts: carried by nodes
/// that keep their input's rows' values (filters, sorts, limits), renamed by aliases and
/// projections of plain columns, and kept for an aggregate's plain group-by columns.
fn carry(plan: &LogicalPlan, inputs: Vec<Vec<Fact>>) -> Vec<Fact> {
    let Some(input) = inputs.into_iter().next() else {
        return Vec::new();
    };
    if input.is_empty() {
        return input;
    }
    // Output column `j` is input column `columns[j]` (when it is a plain column).
    let renamed = |sources: Vec<Option<Column>>, output: &DFSchema| -> Vec<Fact> {
        let outputs = output.columns();
        let mut facts = Vec::new();
        for (source, out) in sources.into_iter().zip(outputs) {
            let Some(source) = source else { continue };
            for fact in input.iter().filter(|f| f.column == source) {
                facts.push(Fact {
                    column: out.clone(),
                    ..fact.clone()
                });
            }
        }
        facts
    };
    let plain = |e: &Expr| match e.clone().unalias_nested().data {
        Expr::Column(c) => Some(c),
        _ => None,
    };
    match plan {
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Repartition(_)
        | LogicalPlan::Distinct(Distinct::All(_)) => input,
        LogicalPlan::SubqueryAlias(alias) => renamed(
            alias
                .input
                .schema()
                .columns()
                .into_iter()
                .map(Some)
                .collect(),
            &alias.schema,
        ),
        LogicalPlan::Projection(projection) => renamed(
            projection.expr.iter().map(plain).collect(),
            &projection.schema,
        ),
        LogicalPlan::Aggregate(aggregate) => renamed(
            aggregate.group_expr.iter().map(plain).collect(),
            &aggregate.schema,
        ),
        _ => Vec::new(),
    }
}
