//! Aggregates (`count`, `sum`, `min`, `max` with GROUP BY) computed by the database.

use arrow::datatypes::DataType;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan};

use super::{Base, RemoteQuery, on_base};
use crate::dialect::Dialect;
use crate::types::{ColumnMapping, ReadAs};

pub(super) fn push_aggregate(aggregate: &Aggregate) -> DfResult<Option<LogicalPlan>> {
    on_base(&aggregate.input, |base| {
        let dialect = base.dialect();
        let fields = aggregate.schema.fields();
        let mut select = Vec::new();
        let mut group_by = Vec::new();
        let mut outputs = Vec::new();
        for (i, g) in aggregate.group_expr.iter().enumerate() {
            let g = match g {
                Expr::Alias(alias) => alias.expr.as_ref(),
                other => other,
            };
            let Some(c) = base.column(g) else {
                return Ok(None);
            };
            // Text keys group by the collation (MySQL merges 'a' and 'A').
            if Base::is_text(c) && dialect == Dialect::MySql {
                return Ok(None);
            }
            if fields[i].data_type() != &c.data_type() {
                return Ok(None);
            }
            let q = dialect.quote(&c.remote);
            select.push(q.clone());
            group_by.push(q);
            outputs.push((c.name.clone(), c.mapping.clone()));
        }
        for (j, a) in aggregate.aggr_expr.iter().enumerate() {
            let out_type = fields[aggregate.group_expr.len() + j].data_type();
            let inner = match a {
                Expr::Alias(alias) => alias.expr.as_ref(),
                other => other,
            };
            let Expr::AggregateFunction(f) = inner else {
                return Ok(None);
            };
            let params = &f.params;
            if params.filter.is_some()
                || !params.order_by.is_empty()
                || params.null_treatment.is_some()
            {
                return Ok(None);
            }
            let name = f.func.name().to_ascii_lowercase();
            let arg = params.args.first();
            let Some((sql, mapping)) = aggregate_sql(base, &name, arg, params.distinct, out_type)
            else {
                return Ok(None);
            };
            select.push(sql);
            outputs.push((String::new(), mapping));
        }
        let query = RemoteQuery {
            select,
            group_by,
            order_by: vec![],
            limit: None,
            from: None,
        };
        base.replace(&LogicalPlan::Aggregate(aggregate.clone()), outputs, query)
            .map(Some)
    })
}

/// The remote SQL of one aggregate and how its value is read, when it is exact.
fn aggregate_sql(
    base: &Base<'_>,
    name: &str,
    arg: Option<&Expr>,
    distinct: bool,
    out_type: &DataType,
) -> Option<(String, ColumnMapping)> {
    let dialect = base.dialect();
    let native = |read_as| ColumnMapping {
        read_as,
        as_text: false,
        padded: false,
    };
    let count_star = matches!(arg, Some(Expr::Literal(s, _)) if !s.is_null()) || arg.is_none();
    if name == "count" && count_star && !distinct {
        return (out_type == &DataType::Int64)
            .then(|| ("COUNT(*)".to_owned(), native(ReadAs::I64)));
    }
    let c = base.column(arg?)?;
    let q = dialect.quote(&c.remote);
    match name {
        "count" => {
            if out_type != &DataType::Int64 || (distinct && !base.orders_like_us(c)) {
                return None;
            }
            let d = if distinct { "DISTINCT " } else { "" };
            Some((format!("COUNT({d}{q})"), native(ReadAs::I64)))
        }
        "min" | "max" if !distinct || base.orders_like_us(c) => {
            // PostgreSQL has no min/max of booleans.
            if !base.orders_like_us(c)
                || out_type != &c.data_type()
                || c.data_type() == DataType::Boolean
            {
                return None;
            }
            Some((format!("{}({q})", name.to_uppercase()), c.mapping.clone()))
        }
        "sum" if !distinct => match (c.data_type(), out_type) {
            (
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64,
                DataType::Int64,
            ) => {
                let cast = match dialect {
                    Dialect::MySql => format!("CAST(SUM({q}) AS SIGNED)"),
                    Dialect::Postgres => format!("CAST(SUM({q}) AS BIGINT)"),
                    Dialect::Sqlite => format!("SUM({q})"),
                };
                Some((cast, native(ReadAs::I64)))
            }
            (DataType::Decimal128(..), DataType::Decimal128(p, s))
                if dialect != Dialect::Sqlite =>
            {
                let exact = format!("CAST(SUM({q}) AS DECIMAL({p},{s}))");
                if *p <= 28 {
                    Some((
                        exact,
                        native(ReadAs::Decimal {
                            precision: *p,
                            scale: *s,
                        }),
                    ))
                } else {
                    let text = dialect.as_text(&exact);
                    Some((
                        text,
                        ColumnMapping {
                            read_as: ReadAs::DecimalText {
                                precision: *p,
                                scale: *s,
                            },
                            as_text: true,
                            padded: false,
                        },
                    ))
                }
            }
            _ => None,
        },
        _ => None,
    }
}
