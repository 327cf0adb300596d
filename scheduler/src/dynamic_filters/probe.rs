//! What a build side's collected keys put on its probe side: the predicate (a range, and a
//! list where it says more than the range) and the plan with it on the join's probe input.

use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::{Expr, Filter, Join, LogicalPlan, lit};

/// What the keys a build side held allow of its probe side.
#[derive(Debug)]
pub(super) enum Keys {
    /// No keys: the join matches nothing.
    None,
    /// Each key's distinct values (at most `max_distinct` rows of keys), with their range.
    Values(Vec<(Vec<ScalarValue>, ScalarValue, ScalarValue)>),
    /// Too many to list: each key's range.
    Ranges(Vec<(ScalarValue, ScalarValue)>),
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

/// `plan` with each filter put on the probe side of the join at its pre-order index
/// (`(index, build_is_left, predicate)`), and each stand-in in place of the build side of the
/// join at its index (`(index, plan)`).
pub(super) fn with_filters(
    plan: LogicalPlan,
    filters: &[(usize, bool, Expr)],
    stand_ins: Vec<(usize, LogicalPlan)>,
) -> datafusion::error::Result<LogicalPlan> {
    let mut rewrite = Rewrite {
        index: 0,
        filters,
        stand_ins,
    };
    rewrite.plan(plan)
}

struct Rewrite<'a> {
    /// Pre-order index of the next join.
    index: usize,
    filters: &'a [(usize, bool, Expr)],
    stand_ins: Vec<(usize, LogicalPlan)>,
}

impl Rewrite<'_> {
    /// `plan` rewritten; its joins are numbered (in pre-order) before any of their inputs is
    /// replaced, so the indices stay those of the plan the candidates were found in.
    fn plan(&mut self, plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
        let LogicalPlan::Join(join) = plan else {
            return Ok(plan
                .map_children(|child| self.plan(child).map(Transformed::yes))?
                .data);
        };
        let this = self.index;
        self.index += 1;
        let left = Arc::new(self.plan(Arc::unwrap_or_clone(join.left))?);
        let right = Arc::new(self.plan(Arc::unwrap_or_clone(join.right))?);
        let mut join = Join {
            left,
            right,
            ..join
        };
        let Some((_, build_is_left, predicate)) = self.filters.iter().find(|(i, _, _)| *i == this)
        else {
            return Ok(LogicalPlan::Join(join));
        };
        let filtered = |side: &Arc<LogicalPlan>| -> datafusion::error::Result<Arc<LogicalPlan>> {
            Ok(Arc::new(LogicalPlan::Filter(Filter::try_new(
                predicate.clone(),
                Arc::clone(side),
            )?)))
        };
        let stand_in = self
            .stand_ins
            .iter()
            .position(|(i, _)| *i == this)
            .map(|at| Arc::new(self.stand_ins.swap_remove(at).1));
        if *build_is_left {
            join.right = filtered(&join.right)?;
            if let Some(stand_in) = stand_in {
                join.left = stand_in;
            }
        } else {
            join.left = filtered(&join.left)?;
            if let Some(stand_in) = stand_in {
                join.right = stand_in;
            }
        }
        Ok(LogicalPlan::Join(join))
    }
}
