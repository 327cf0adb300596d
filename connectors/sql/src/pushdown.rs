//! Filters DataFusion offers to a table → a WHERE clause the database evaluates, with every
//! literal bound as a parameter. Only what the database evaluates as Tributary would is
//! pushed: [`Exactness`] says whether Tributary must filter again.

use arrow::datatypes::DataType;
use datafusion::logical_expr::expr::{Between, InList, Like};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use crate::dialect::{Dialect, Exactness};
use crate::table::TableColumn;
use crate::value::Value;

/// Translates filters over one table's columns.
pub(crate) struct Pushdown<'a> {
    pub(crate) dialect: Dialect,
    pub(crate) columns: &'a [TableColumn],
    /// Table alias columns are qualified with (joins), if any.
    pub(crate) qualifier: Option<&'a str>,
}

fn worst(a: Exactness, b: Exactness) -> Exactness {
    match (a, b) {
        (Exactness::No, _) | (_, Exactness::No) => Exactness::No,
        (Exactness::Superset, _) | (_, Exactness::Superset) => Exactness::Superset,
        _ => Exactness::Exact,
    }
}

impl Pushdown<'_> {
    /// How exactly the database evaluates `op` on this column.
    fn exactness_of(&self, c: &TableColumn, op: &str) -> Exactness {
        let e = self.dialect.comparison(&c.data_type(), op);
        if !c.mapping.padded {
            return e;
        }
        // char(n): PostgreSQL compares it as text without its trailing blanks, against
        // parameters with theirs; we compare the padded values. Neither side contains the
        // other, so nothing is pushed.
        let _ = e;
        Exactness::No
    }

    fn name(&self, c: &TableColumn) -> String {
        match self.qualifier {
            Some(q) => format!("{q}.{}", self.dialect.quote(&c.remote)),
            None => self.dialect.quote(&c.remote),
        }
    }

    /// How a filter would be pushed (without keeping its parameters).
    pub(crate) fn exactness(&self, expr: &Expr) -> Exactness {
        let mut params = Vec::new();
        self.translate(expr, &mut params)
            .map(|(_, e)| e)
            .unwrap_or(Exactness::No)
    }

    /// The SQL of a filter and how exact it is; its literals are appended to `params`.
    /// `None` (and `params` unchanged) when it cannot be pushed.
    pub(crate) fn translate(
        &self,
        expr: &Expr,
        params: &mut Vec<Value>,
    ) -> Option<(String, Exactness)> {
        let mark = params.len();
        let result = self.go(expr, params).filter(|(_, e)| *e != Exactness::No);
        if result.is_none() {
            params.truncate(mark);
        }
        result
    }

    fn column(&self, expr: &Expr) -> Option<&TableColumn> {
        match expr {
            Expr::Column(c) => self
                .columns
                .iter()
                .find(|t| t.name == c.name && !t.mapping.as_text),
            // Widening integer casts keep every comparison's meaning.
            Expr::Cast(cast) => {
                let column = self.column(&cast.expr)?;
                let from = column.data_type();
                let widening = matches!(
                    (&from, cast.field.data_type()),
                    (
                        DataType::Int8,
                        DataType::Int16 | DataType::Int32 | DataType::Int64
                    ) | (DataType::Int16, DataType::Int32 | DataType::Int64)
                        | (DataType::Int32, DataType::Int64)
                );
                widening.then_some(column)
            }
            _ => None,
        }
    }

    fn literal(expr: &Expr) -> Option<Value> {
        match expr {
            Expr::Literal(scalar, _) if !scalar.is_null() => Value::from_scalar(scalar),
            Expr::Cast(cast) => match cast.expr.as_ref() {
                // A literal cast to another type: fold it here.
                Expr::Literal(scalar, _) => scalar
                    .cast_to(cast.field.data_type())
                    .ok()
                    .and_then(|s| Value::from_scalar(&s)),
                _ => None,
            },
            _ => None,
        }
    }

    fn param(&self, value: Value, params: &mut Vec<Value>) -> String {
        params.push(value);
        self.dialect.placeholder(params.len())
    }

    fn go(&self, expr: &Expr, params: &mut Vec<Value>) -> Option<(String, Exactness)> {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And | Operator::Or => {
                    let (l, le) = self.go(left, params)?;
                    let (r, re) = self.go(right, params)?;
                    let word = if *op == Operator::And { "AND" } else { "OR" };
                    Some((format!("({l} {word} {r})"), worst(le, re)))
                }
                _ => self.comparison(left, *op, right, params),
            },
            Expr::Not(inner) => {
                let (sql, e) = self.go(inner, params)?;
                (e == Exactness::Exact).then(|| (format!("(NOT {sql})"), Exactness::Exact))
            }
            Expr::IsNull(inner) => {
                let c = self.column(inner)?;
                Some((format!("({} IS NULL)", self.name(c)), Exactness::Exact))
            }
            Expr::IsNotNull(inner) => {
                let c = self.column(inner)?;
                Some((format!("({} IS NOT NULL)", self.name(c)), Exactness::Exact))
            }
            Expr::Column(_) => {
                let c = self.column(expr)?;
                if c.data_type() != DataType::Boolean {
                    return None;
                }
                let p = self.param(Value::Bool(true), params);
                Some((format!("({} = {p})", self.name(c)), Exactness::Exact))
            }
            Expr::InList(InList {
                expr,
                list,
                negated,
            }) => {
                let c = self.column(expr)?;
                let e = self.exactness_of(c, if *negated { "<>" } else { "=" });
                if e == Exactness::No || (*negated && e != Exactness::Exact) || list.is_empty() {
                    return None;
                }
                let values = list.iter().map(Self::literal).collect::<Option<Vec<_>>>()?;
                let markers: Vec<String> =
                    values.into_iter().map(|v| self.param(v, params)).collect();
                let not = if *negated { "NOT " } else { "" };
                Some((
                    format!("({} {not}IN ({}))", self.name(c), markers.join(", ")),
                    e,
                ))
            }
            Expr::Between(Between {
                expr,
                negated,
                low,
                high,
            }) => {
                let c = self.column(expr)?;
                let e = self.exactness_of(c, "<");
                if e != Exactness::Exact {
                    return None;
                }
                let (low, high) = (Self::literal(low)?, Self::literal(high)?);
                let (l, h) = (self.param(low, params), self.param(high, params));
                let not = if *negated { "NOT " } else { "" };
                Some((format!("({} {not}BETWEEN {l} AND {h})", self.name(c)), e))
            }
            Expr::Like(Like {
                negated,
                expr,
                pattern,
                escape_char,
                case_insensitive,
            }) => {
                let c = self.column(expr)?;
                let e = self.exactness_of(c, "LIKE");
                if *negated || *case_insensitive || escape_char.is_some() || e == Exactness::No {
                    return None;
                }
                let Some(Value::Text(p)) = Self::literal(pattern) else {
                    return None;
                };
                // Backslash is an escape character in MySQL and PostgreSQL patterns.
                if p.contains('\\') {
                    return None;
                }
                let marker = self.param(Value::Text(p), params);
                Some((format!("({} LIKE {marker})", self.name(c)), e))
            }
            _ => None,
        }
    }

    fn comparison(
        &self,
        left: &Expr,
        op: Operator,
        right: &Expr,
        params: &mut Vec<Value>,
    ) -> Option<(String, Exactness)> {
        let (column, literal, op) = match (self.column(left), self.column(right)) {
            (Some(c), None) => (c, right, op),
            (None, Some(c)) => (c, left, op.swap()?),
            _ => return None,
        };
        let sql_op = match op {
            Operator::Eq => "=",
            Operator::NotEq => "<>",
            Operator::Lt => "<",
            Operator::LtEq => "<=",
            Operator::Gt => ">",
            Operator::GtEq => ">=",
            _ => return None,
        };
        let e = self.exactness_of(column, sql_op);
        if e == Exactness::No {
            return None;
        }
        let value = Self::literal(literal)?;
        if matches!(value, Value::F64(f) if f.is_nan()) {
            return None;
        }
        let marker = self.param(value, params);
        Some((format!("({} {sql_op} {marker})", self.name(column)), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ColumnMapping, ReadAs};
    use datafusion::prelude::{col, lit};

    fn columns() -> Vec<TableColumn> {
        let c = |name: &str, read_as: ReadAs| TableColumn {
            name: name.into(),
            remote: name.into(),
            mapping: ColumnMapping {
                read_as,
                as_text: false,
                padded: false,
            },
            nullable: true,
        };
        vec![
            c("id", ReadAs::I64),
            c("name", ReadAs::Text),
            c(
                "price",
                ReadAs::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
        ]
    }

    #[test]
    fn binds_every_literal() {
        let cols = columns();
        let p = Pushdown {
            dialect: Dialect::Postgres,
            columns: &cols,
            qualifier: None,
        };
        let mut params = vec![];
        let (sql, e) = p
            .translate(
                &col("id")
                    .gt(lit(5i64))
                    .and(col("name").eq(lit("x'; DROP TABLE t; --"))),
                &mut params,
            )
            .expect("pushed");
        assert_eq!(sql, "((\"id\" > $1) AND (\"name\" = $2))");
        assert_eq!(e, Exactness::Exact);
        assert_eq!(params.len(), 2);
        // MySQL's default collation ignores case: `=` on text is a superset, `<` is not pushed.
        let m = Pushdown {
            dialect: Dialect::MySql,
            columns: &cols,
            qualifier: None,
        };
        assert_eq!(m.exactness(&col("name").eq(lit("a"))), Exactness::Superset);
        assert_eq!(m.exactness(&col("name").lt(lit("a"))), Exactness::No);
        assert_eq!(
            m.exactness(&col("name").lt(lit("a")).or(col("id").eq(lit(1i64)))),
            Exactness::No
        );
        let mut params = vec![];
        assert!(
            m.translate(
                &col("name").lt(lit("a")).and(col("id").eq(lit(1i64))),
                &mut params
            )
            .is_none()
        );
        assert!(params.is_empty());
        let (sql, _) = m
            .translate(
                &col("id").in_list(vec![lit(1i64), lit(2i64)], false),
                &mut params,
            )
            .expect("in");
        assert_eq!(sql, "(`id` IN (?, ?))");
    }
}
