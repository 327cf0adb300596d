//! Top-N (`ORDER BY … LIMIT n`) computed by the database.

use std::sync::Arc;

use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{LogicalPlan, Sort};

use super::{RemoteQuery, on_base};
use crate::dialect::Dialect;
use crate::table::TableColumn;
use crate::types::ReadAs;

pub(super) fn push_top_n(sort: &Sort) -> DfResult<Option<LogicalPlan>> {
    let Some(fetch) = sort.fetch else {
        return Ok(None);
    };
    on_base(&sort.input, |base| {
        let dialect = base.dialect();
        let mut order_by = Vec::new();
        for s in &sort.expr {
            let Some(c) = base.column(&s.expr) else {
                return Ok(None);
            };
            if !base.orders_like_us(c) {
                return Ok(None);
            }
            let q = dialect.quote(&c.remote);
            let dir = if s.asc { "ASC" } else { "DESC" };
            order_by.push(match dialect {
                Dialect::MySql => format!(
                    "({q} IS NULL) {}, {q} {dir}",
                    if s.nulls_first { "DESC" } else { "ASC" }
                ),
                _ => format!(
                    "{q} {dir} NULLS {}",
                    if s.nulls_first { "FIRST" } else { "LAST" }
                ),
            });
        }
        // The scan's own columns, in its projected order; the sort stays above (over n rows) so
        // the order is guaranteed whatever runs between.
        let columns = &base.table.handle().columns;
        let projected: Vec<&TableColumn> = match &base.scan.projection {
            Some(p) => p.iter().map(|i| &columns[*i]).collect(),
            None => columns.iter().collect(),
        };
        if projected
            .iter()
            .any(|c| c.mapping.as_text && c.mapping.read_as != ReadAs::Text)
        {
            return Ok(None);
        }
        let select = projected
            .iter()
            .map(|c| {
                let q = dialect.quote(&c.remote);
                if c.mapping.as_text {
                    dialect.as_text(&q)
                } else {
                    q
                }
            })
            .collect();
        let outputs = projected
            .iter()
            .map(|c| (c.name.clone(), c.mapping.clone()))
            .collect();
        let query = RemoteQuery {
            select,
            group_by: vec![],
            order_by,
            limit: Some(fetch),
            from: None,
        };
        let fragment = LogicalPlan::TableScan(base.scan.clone());
        let remote = base.replace(&fragment, outputs, query)?;
        Ok(Some(LogicalPlan::Sort(Sort {
            expr: sort.expr.clone(),
            input: Arc::new(remote),
            fetch: Some(fetch),
        })))
    })
}
