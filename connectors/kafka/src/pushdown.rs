//! Filters that narrow what a scan reads before any message is fetched: `_partition_id`,
//! `_partition_offset` (and `_offset`) and `_timestamp`, compared with constants, in IN
//! lists, BETWEEN, and AND/OR of those. Filters stay above the scan too (the pushdown is
//! Inexact), so narrowing only ever has to be a superset of the matching messages.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

/// Inclusive ranges of allowed values; `None` = any value.
pub type Ranges = Option<Vec<(i64, i64)>>;

/// What the filters of a scan allow.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bounds {
    /// Allowed partitions.
    pub partitions: Ranges,
    /// Allowed offsets.
    pub offsets: Ranges,
    /// Allowed message timestamps, in milliseconds since the epoch.
    pub timestamps: Ranges,
}

/// The column names that narrow reads.
#[derive(Debug, Clone)]
pub struct NarrowingColumns {
    /// `_partition_id`
    pub partition: String,
    /// `_partition_offset` and `_offset`
    pub offsets: [String; 2],
    /// `_timestamp`
    pub timestamp: String,
}

impl NarrowingColumns {
    /// The names under an internal column prefix.
    pub fn new(prefix: &str) -> Self {
        Self {
            partition: format!("{prefix}partition_id"),
            offsets: [
                format!("{prefix}partition_offset"),
                format!("{prefix}offset"),
            ],
            timestamp: format!("{prefix}timestamp"),
        }
    }

    /// Whether a filter can narrow reads.
    pub fn narrows(&self, filter: &Expr) -> bool {
        let b = self.bounds(std::slice::from_ref(filter));
        b.partitions.is_some() || b.offsets.is_some() || b.timestamps.is_some()
    }

    /// What all `filters` together allow.
    pub fn bounds(&self, filters: &[Expr]) -> Bounds {
        let mut bounds = Bounds::default();
        for f in filters {
            bounds.partitions = intersect(bounds.partitions, ranges(f, &[&self.partition]));
            bounds.offsets = intersect(
                bounds.offsets,
                ranges(f, &[&self.offsets[0], &self.offsets[1]]),
            );
            bounds.timestamps = intersect(bounds.timestamps, ranges(f, &[&self.timestamp]));
        }
        bounds
    }
}

/// The ranges of `columns` (all naming one value) that `expr` allows.
fn ranges(expr: &Expr, columns: &[&str]) -> Ranges {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => intersect(ranges(left, columns), ranges(right, columns)),
            Operator::Or => union(ranges(left, columns), ranges(right, columns)),
            _ => {
                let (op, value) = if is_column(left, columns) {
                    (*op, constant(right)?)
                } else if is_column(right, columns) {
                    (op.swap()?, constant(left)?)
                } else {
                    return None;
                };
                match op {
                    Operator::Eq => Some(vec![(value, value)]),
                    Operator::Gt => Some(vec![(value.saturating_add(1), i64::MAX)]),
                    Operator::GtEq => Some(vec![(value, i64::MAX)]),
                    Operator::Lt => Some(vec![(i64::MIN, value.saturating_sub(1))]),
                    Operator::LtEq => Some(vec![(i64::MIN, value)]),
                    _ => None,
                }
            }
        },
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_column(expr, columns) => Some(vec![(constant(low)?, constant(high)?)]),
        Expr::InList(list) if !list.negated && is_column(&list.expr, columns) => {
            let mut values = list
                .list
                .iter()
                .map(constant)
                .collect::<Option<Vec<i64>>>()?;
            values.sort_unstable();
            values.dedup();
            Some(values.into_iter().map(|v| (v, v)).collect())
        }
        _ => None,
    }
}

fn is_column(expr: &Expr, columns: &[&str]) -> bool {
    match expr {
        Expr::Column(c) => columns.contains(&c.name.as_str()),
        // Casts between integer widths and timestamp units keep order.
        Expr::Cast(c) if c.field.data_type().is_integer() || c.field.data_type().is_temporal() => {
            is_column(&c.expr, columns)
        }
        _ => false,
    }
}

/// An integer or timestamp constant (timestamps in milliseconds, rounded down: bounds
/// are only used as supersets).
fn constant(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::Int8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int64(Some(v)) => Some(*v),
        ScalarValue::UInt8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok(),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1000),
        ScalarValue::TimestampMillisecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(v.div_euclid(1000)),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000_000)),
        _ => None,
    }
}

/// Ranges in both.
pub fn intersect(a: Ranges, b: Ranges) -> Ranges {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => {
            let mut out = Vec::new();
            for (a0, a1) in &a {
                for (b0, b1) in &b {
                    let lo = (*a0).max(*b0);
                    let hi = (*a1).min(*b1);
                    if lo <= hi {
                        out.push((lo, hi));
                    }
                }
            }
            Some(normalize(out))
        }
    }
}

fn union(a: Ranges, b: Ranges) -> Ranges {
    let mut all = a?;
    all.extend(b?);
    Some(normalize(all))
}

fn normalize(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn narrows_partitions_offsets_and_times() {
        let cols = NarrowingColumns::new("_");
        let b = cols.bounds(&[
            col("_partition_id").in_list(vec![lit(2_i64), lit(0_i64)], false),
            col("_offset")
                .gt_eq(lit(10_i64))
                .and(col("_partition_offset").lt(lit(20_i64))),
            col("_timestamp").gt_eq(lit(ScalarValue::TimestampNanosecond(
                Some(1_500_000_000),
                None,
            ))),
            col("quantity").gt(lit(5)),
        ]);
        assert_eq!(b.partitions, Some(vec![(0, 0), (2, 2)]));
        assert_eq!(b.offsets, Some(vec![(10, 19)]));
        assert_eq!(b.timestamps, Some(vec![(1500, i64::MAX)]));
        let b = cols.bounds(&[col("_partition_id")
            .eq(lit(1_i64))
            .or(col("quantity").eq(lit(3)))]);
        assert_eq!(b.partitions, None);
        assert!(!cols.narrows(&col("quantity").gt(lit(5))));
        assert!(cols.narrows(&lit(5_i64).lt(col("_offset"))));
    }
}
