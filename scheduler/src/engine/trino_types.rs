//! Trino's type names that DataFusion's SQL planner does not know, rewritten in the parsed
//! statement before planning: `VARBINARY` (Trino's binary type) becomes `BYTEA`, in column
//! definitions (`CREATE TABLE`, `CREATE EXTERNAL TABLE`) and in casts.

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    ArrayElemTypeDef, DataType, Expr, Statement, VisitMut, VisitorMut,
};

/// Rewrites the Trino type names of `statement`.
pub(crate) fn rewrite(statement: &mut DfStatement) {
    match statement {
        DfStatement::Statement(statement) => {
            let _ = statement.visit(&mut Casts);
            if let Statement::CreateTable(create) = statement.as_mut() {
                for column in &mut create.columns {
                    rewrite_type(&mut column.data_type);
                }
            }
        }
        DfStatement::CreateExternalTable(create) => {
            for column in &mut create.columns {
                rewrite_type(&mut column.data_type);
            }
        }
        DfStatement::Explain(explain) => rewrite(&mut explain.statement),
        _ => {}
    }
}

struct Casts;

impl VisitorMut for Casts {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Cast { data_type, .. } = expr {
            rewrite_type(data_type);
        }
        ControlFlow::Continue(())
    }
}

fn rewrite_type(data_type: &mut DataType) {
    match data_type {
        DataType::Varbinary(_) => *data_type = DataType::Bytea,
        DataType::Array(
            ArrayElemTypeDef::AngleBracket(inner)
            | ArrayElemTypeDef::SquareBracket(inner, _)
            | ArrayElemTypeDef::Parenthesis(inner),
        ) => rewrite_type(inner),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::DFParser;

    use super::*;

    #[test]
    fn varbinary_becomes_bytea() {
        let sql = "CREATE TABLE t (a VARBINARY, b ARRAY<VARBINARY>, c INT); \
                   SELECT CAST(x AS VARBINARY) FROM t";
        let mut statements = DFParser::parse_sql(sql).expect("parses");
        for statement in &mut statements {
            rewrite(statement);
        }
        let text: Vec<String> = statements.iter().map(ToString::to_string).collect();
        assert!(
            text[0].contains("a BYTEA") && !text[0].contains("VARBINARY"),
            "{}",
            text[0]
        );
        assert!(text[1].contains("CAST(x AS BYTEA)"), "{}", text[1]);
    }
}
