//! Trino's `WITH (…)` on `CREATE TABLE` and `CREATE SCHEMA`: DataFusion's planner rejects
//! table options, so they are taken off the parsed statement here and handed to the target
//! catalog's connector (`Connector::create_table` / `create_schema`).

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    CreateTableOptions, Expr, SchemaName, SqlOption, Statement as SqlStatement, UnaryOperator,
    Value,
};
use tributary_connector::{PropertyValue, TableProperties};

use crate::error::{Result, SchedulerError};

/// A DDL statement that carries properties.
#[derive(Debug)]
pub(crate) enum WithProperties {
    /// `CREATE TABLE … WITH (…) [AS …]`: the statement without its properties, for DataFusion.
    Table {
        /// The statement without `WITH (…)`.
        statement: Box<DfStatement>,
        /// The properties.
        properties: TableProperties,
    },
    /// `CREATE SCHEMA [IF NOT EXISTS] name WITH (…)`.
    Schema {
        /// `[catalog.]schema` parts, as written (unquoted parts lower-cased).
        name: Vec<String>,
        /// IF NOT EXISTS.
        if_not_exists: bool,
        /// The properties.
        properties: TableProperties,
    },
}

/// The properties of a `CREATE TABLE/SCHEMA … WITH (…)` statement, if `sql` is one; anything
/// else (or SQL that does not parse) is left to DataFusion.
pub(crate) fn split(sql: &str) -> Result<Option<WithProperties>> {
    let head: String = sql.trim_start().chars().take(6).collect();
    if !head.eq_ignore_ascii_case("create") {
        return Ok(None);
    }
    let Ok(mut statements) = DFParser::parse_sql(sql) else {
        return Ok(None);
    };
    if statements.len() != 1 {
        return Ok(None);
    }
    let Some(DfStatement::Statement(statement)) = statements.pop_front() else {
        return Ok(None);
    };
    match *statement {
        SqlStatement::CreateTable(mut create) => {
            let options = match std::mem::take(&mut create.table_options) {
                CreateTableOptions::With(options) if !options.is_empty() => options,
                other => {
                    create.table_options = other;
                    return Ok(None);
                }
            };
            Ok(Some(WithProperties::Table {
                properties: convert(&options)?,
                statement: Box::new(DfStatement::Statement(Box::new(SqlStatement::CreateTable(
                    create,
                )))),
            }))
        }
        SqlStatement::CreateSchema {
            schema_name,
            if_not_exists,
            with: Some(options),
            ..
        } => {
            let name = match schema_name {
                SchemaName::Simple(name) | SchemaName::NamedAuthorization(name, _) => name
                    .0
                    .iter()
                    .filter_map(|p| p.as_ident())
                    .map(|i| {
                        if i.quote_style.is_some() {
                            i.value.clone()
                        } else {
                            i.value.to_lowercase()
                        }
                    })
                    .collect(),
                SchemaName::UnnamedAuthorization(_) => {
                    return Err(SchedulerError::InvalidQuery(
                        "CREATE SCHEMA needs a schema name".into(),
                    ));
                }
            };
            Ok(Some(WithProperties::Schema {
                name,
                if_not_exists,
                properties: convert(&options)?,
            }))
        }
        _ => Ok(None),
    }
}

/// The properties of a `WITH ( … )` list given without its parentheses (`CREATE
/// MATERIALIZED VIEW … WITH (…)`), parsed as DataFusion's parser reads them for tables.
pub(crate) fn parse_list(text: &str) -> Result<TableProperties> {
    match split(&format!("CREATE TABLE t (x INT) WITH ({text})"))? {
        Some(WithProperties::Table { properties, .. }) => Ok(properties),
        _ => Err(SchedulerError::InvalidQuery(format!(
            "invalid property list: WITH ({text})"
        ))),
    }
}

fn convert(options: &[SqlOption]) -> Result<TableProperties> {
    let mut properties = Vec::with_capacity(options.len());
    for option in options {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(SchedulerError::InvalidQuery(format!(
                "table property '{option}' must be written name = value"
            )));
        };
        let name = key.value.to_lowercase();
        let value = property_value(value).ok_or_else(|| {
            SchedulerError::InvalidQuery(format!(
                "table property '{name}': unsupported value '{value}' (use a string, a number, true/false or ARRAY[…])"
            ))
        })?;
        properties.push((name, value));
    }
    Ok(TableProperties(properties))
}

fn property_value(expr: &Expr) -> Option<PropertyValue> {
    Some(match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                PropertyValue::String(s.clone())
            }
            Value::Number(n, _) => PropertyValue::Number(n.to_string()),
            Value::Boolean(b) => PropertyValue::Boolean(*b),
            _ => return None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match property_value(expr)? {
            PropertyValue::Number(n) => PropertyValue::Number(format!("-{n}")),
            _ => return None,
        },
        Expr::Array(array) => PropertyValue::Array(
            array
                .elem
                .iter()
                .map(property_value)
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_seed_properties_off() {
        let sql = "CREATE TABLE hive.default.orders (order_id BIGINT, order_date DATE)
                   WITH (format = 'PARQUET', external_location = 's3a://your-bucket/orders/',
                         partitioned_by = ARRAY['year','month'], skip_header_line_count = 1)";
        let Ok(Some(WithProperties::Table {
            statement,
            properties,
        })) = split(sql)
        else {
            panic!("not split");
        };
        assert!(!statement.to_string().contains("WITH"), "{statement}");
        assert_eq!(
            properties.get("format"),
            Some(&PropertyValue::String("PARQUET".into()))
        );
        assert_eq!(
            properties.get("partitioned_by"),
            Some(&PropertyValue::Array(vec![
                PropertyValue::String("year".into()),
                PropertyValue::String("month".into())
            ]))
        );
        assert_eq!(
            properties.get("skip_header_line_count"),
            Some(&PropertyValue::Number("1".into()))
        );
        let Ok(Some(WithProperties::Schema { name, .. })) =
            split("CREATE SCHEMA IF NOT EXISTS hive.Sales WITH (location = 's3://b/sales/')")
        else {
            panic!("not split");
        };
        assert_eq!(name, vec!["hive".to_owned(), "sales".to_owned()]);
        assert!(matches!(split("CREATE TABLE t (a INT)"), Ok(None)));
        assert!(matches!(split("SELECT 1"), Ok(None)));
    }
}
