//! Running a build side's distinct keys on the scheduler, and the plan that stands in for a
//! build side whose keys were all listed.

use std::sync::Arc;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use datafusion::common::{Column, ScalarValue, plan_err};
use datafusion::functions_aggregate::expr_fn::{max, min};
use datafusion::logical_expr::{EmptyRelation, Expr, LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::prelude::SessionContext;

use super::Settings;
use super::candidates::Candidate;
use super::probe::Keys;

/// What a build side's collection found: the keys for the probe side and, for a reusable
/// build side whose keys were all listed, its distinct key tuples (in the order of its keys).
pub(super) struct Collected {
    pub(super) keys: Keys,
    pub(super) rows: Option<Vec<Vec<ScalarValue>>>,
}

/// Runs the build side's distinct keys (and, past `max_distinct`, their ranges) here; `None`
/// when there are more keys than that and the candidate takes no ranges.
pub(super) async fn collect(
    ctx: &SessionContext,
    candidate: &Candidate,
    settings: &Settings,
) -> datafusion::error::Result<Option<Collected>> {
    let names: Vec<String> = (0..candidate.build_keys.len())
        .map(|i| format!("__dynamic_key_{i}"))
        .collect();
    let keys: Vec<Expr> = candidate
        .build_keys
        .iter()
        .zip(&names)
        .map(|(k, name)| k.clone().alias(name))
        .collect();
    let distinct = LogicalPlanBuilder::from(candidate.build.as_ref().clone())
        .aggregate(keys.clone(), Vec::<Expr>::new())?
        .limit(0, Some(settings.max_distinct + 1))?
        .build()?;
    let batches = ctx.execute_logical_plan(distinct).await?.collect().await?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let listed = |keys: Keys| -> datafusion::error::Result<Option<Collected>> {
        let rows = if candidate.reusable {
            let mut tuples = Vec::with_capacity(rows);
            for batch in &batches {
                for row in 0..batch.num_rows() {
                    tuples.push(
                        batch
                            .columns()
                            .iter()
                            .map(|column| ScalarValue::try_from_array(column, row))
                            .collect::<datafusion::error::Result<Vec<_>>>()?,
                    );
                }
            }
            Some(tuples)
        } else {
            None
        };
        Ok(Some(Collected { keys, rows }))
    };
    if rows == 0 {
        return listed(Keys::None);
    }
    if rows <= settings.max_distinct {
        let mut per_key = Vec::new();
        for column in 0..names.len() {
            let mut values = Vec::new();
            for batch in &batches {
                let array = batch.column(column);
                for row in 0..array.len() {
                    if array.is_valid(row) {
                        values.push(ScalarValue::try_from_array(array, row)?);
                    }
                }
            }
            values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            values.dedup();
            let (Some(low), Some(high)) = (values.first().cloned(), values.last().cloned()) else {
                // Every key NULL: nothing can match.
                return listed(Keys::None);
            };
            per_key.push((values, low, high));
        }
        return listed(Keys::Values(per_key));
    }
    if !candidate.ranges {
        return Ok(None);
    }
    let aggregates: Vec<Expr> = keys
        .iter()
        .zip(&names)
        .flat_map(|(_, name)| {
            let column = Expr::Column(Column::new_unqualified(name));
            [
                min(column.clone()).alias(format!("{name}_min")),
                max(column).alias(format!("{name}_max")),
            ]
        })
        .collect();
    let ranges = LogicalPlanBuilder::from(candidate.build.as_ref().clone())
        .project(keys)?
        .aggregate(Vec::<Expr>::new(), aggregates)?
        .build()?;
    let batches = ctx.execute_logical_plan(ranges).await?.collect().await?;
    let none = Collected {
        keys: Keys::None,
        rows: None,
    };
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(Some(none));
    };
    let mut per_key = Vec::new();
    for i in 0..names.len() {
        let low = ScalarValue::try_from_array(batch.column(2 * i), 0)?;
        let high = ScalarValue::try_from_array(batch.column(2 * i + 1), 0)?;
        if low.is_null() || high.is_null() {
            return Ok(Some(none));
        }
        per_key.push((low, high));
    }
    Ok(Some(Collected {
        keys: Keys::Ranges(per_key),
        rows: None,
    }))
}

/// The plan standing in for a reusable build side: its distinct key tuples as a `VALUES`
/// list under the build side's key columns (each once), or an empty relation.
pub(super) fn stand_in(
    candidate: &Candidate,
    rows: Vec<Vec<ScalarValue>>,
) -> datafusion::error::Result<LogicalPlan> {
    let mut columns: Vec<(usize, Column)> = Vec::new();
    for (position, key) in candidate.build_keys.iter().enumerate() {
        let Expr::Column(column) = key else {
            return plan_err!("build key {key} is not a column");
        };
        if !columns.iter().any(|(_, seen)| seen == column) {
            columns.push((position, column.clone()));
        }
    }
    let keys = LogicalPlanBuilder::from(candidate.build.as_ref().clone())
        .project(columns.iter().map(|(_, c)| Expr::Column(c.clone())))?
        .build()?;
    if rows.is_empty() {
        return Ok(LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema: Arc::clone(keys.schema()),
        }));
    }
    let values = rows
        .into_iter()
        .map(|row| columns.iter().map(|(i, _)| lit(row[*i].clone())).collect())
        .collect();
    LogicalPlanBuilder::values_with_schema(values, keys.schema())?
        .project(columns.iter().enumerate().map(|(j, (_, column))| {
            Expr::Column(Column::new_unqualified(format!("column{}", j + 1)))
                .alias_qualified(column.relation.clone(), column.name.clone())
        }))?
        .build()
}
