//! Joins of two tables of one catalog computed by the database.

use std::sync::Arc;

use datafusion::common::{NullEquality, Result as DfResult};
use datafusion::logical_expr::{Expr, Join, JoinType, LogicalPlan, TableScan};

use super::{RemoteQuery, base, replace};
use crate::dialect::{Dialect, Exactness};
use crate::pushdown::Pushdown;
use crate::table::{SqlTable, TableColumn};

/// An inner or left join of two tables of the same catalog on equal keys, when both scans'
/// filters are exact and the database compares the keys as Tributary does.
pub(super) fn push_join(join: &Join) -> DfResult<Option<LogicalPlan>> {
    if !matches!(join.join_type, JoinType::Inner | JoinType::Left)
        || join.filter.is_some()
        || join.null_equality != NullEquality::NullEqualsNothing
        || join.on.is_empty()
    {
        return Ok(None);
    }
    let (Some((lp, ls)), Some((rp, rs))) = (base(&join.left)?, base(&join.right)?) else {
        return Ok(None);
    };
    let (Some(left), Some(right)) = (lp.downcast_ref::<SqlTable>(), rp.downcast_ref::<SqlTable>())
    else {
        return Ok(None);
    };
    if !Arc::ptr_eq(left.client(), right.client()) || !left.client().config().filter_pushdown {
        return Ok(None);
    }
    let dialect = left.client().dialect();
    // Filters of both sides, qualified by the side's alias, parameters numbered in order.
    let mut params = Vec::new();
    let mut conditions = Vec::new();
    for (table, scan, alias) in [(left, ls, "l"), (right, rs, "r")] {
        let p = Pushdown {
            dialect,
            columns: &table.handle().columns,
            qualifier: Some(alias),
        };
        for f in &scan.filters {
            match p.translate(f, &mut params) {
                Some((sql, Exactness::Exact)) => conditions.push(sql),
                _ => return Ok(None),
            }
        }
    }
    let column = |table: &SqlTable, expr: &Expr| -> Option<TableColumn> {
        let Expr::Column(c) = expr else { return None };
        table
            .handle()
            .columns
            .iter()
            .find(|t| t.name == c.name && !t.mapping.as_text)
            .cloned()
    };
    let mut on = Vec::new();
    for (l, r) in &join.on {
        let (Some(lc), Some(rc)) = (column(left, l), column(right, r)) else {
            return Ok(None);
        };
        if lc.data_type() != rc.data_type()
            || dialect.comparison(&lc.data_type(), "=") != Exactness::Exact
            || lc.mapping.padded
            || rc.mapping.padded
        {
            return Ok(None);
        }
        on.push(format!(
            "l.{} = r.{}",
            dialect.quote(&lc.remote),
            dialect.quote(&rc.remote)
        ));
    }
    let projected = |table: &SqlTable, scan: &TableScan| -> Vec<TableColumn> {
        match &scan.projection {
            Some(p) => p
                .iter()
                .map(|i| table.handle().columns[*i].clone())
                .collect(),
            None => table.handle().columns.clone(),
        }
    };
    let mut select = Vec::new();
    let mut outputs = Vec::new();
    for (table, scan, alias) in [(left, ls, "l"), (right, rs, "r")] {
        for c in projected(table, scan) {
            let q = format!("{alias}.{}", dialect.quote(&c.remote));
            select.push(if c.mapping.as_text {
                dialect.as_text(&q)
            } else {
                q
            });
            outputs.push((c.name.clone(), c.mapping.clone()));
        }
    }
    if outputs.len() != join.schema.fields().len() {
        return Ok(None);
    }
    let name = |t: &SqlTable| match dialect {
        Dialect::Sqlite => dialect.quote(&t.handle().table),
        d => d.table_name(&t.handle().schema, &t.handle().table),
    };
    let kind = if join.join_type == JoinType::Left {
        "LEFT JOIN"
    } else {
        "JOIN"
    };
    let from = format!(
        "{} l {kind} {} r ON {}",
        name(left),
        name(right),
        on.join(" AND ")
    );
    let query = RemoteQuery {
        select,
        group_by: vec![],
        order_by: vec![],
        limit: None,
        from: Some(from),
    };
    let filter = (!conditions.is_empty()).then(|| conditions.join(" AND "));
    replace(
        left,
        ls,
        filter,
        params,
        &LogicalPlan::Join(join.clone()),
        outputs,
        query,
    )
    .map(Some)
}
