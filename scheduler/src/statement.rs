//! The Trino-flavoured statements Tributary answers itself; everything else goes to
//! DataFusion's SQL planner unchanged.

pub mod hints;
mod lexer;
mod parser;

pub use lexer::number_placeholders;
use parser::Parser;

use crate::error::{Result, SchedulerError};

/// A parsed client statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `SHOW CATALOGS [LIKE pattern]`
    ShowCatalogs {
        /// LIKE pattern.
        like: Option<String>,
    },
    /// `SHOW SCHEMAS [FROM catalog] [LIKE pattern]`
    ShowSchemas {
        /// Catalog (default: the session's).
        catalog: Option<String>,
        /// LIKE pattern.
        like: Option<String>,
    },
    /// `SHOW TABLES [FROM [catalog.]schema] [LIKE pattern]`
    ShowTables {
        /// `[catalog.]schema` parts.
        schema: Vec<String>,
        /// LIKE pattern.
        like: Option<String>,
    },
    /// `SHOW COLUMNS FROM t`, `DESCRIBE t`
    ShowColumns {
        /// `[[catalog.]schema.]table` parts.
        table: Vec<String>,
    },
    /// `SHOW CREATE TABLE t`
    ShowCreateTable {
        /// `[[catalog.]schema.]table` parts.
        table: Vec<String>,
    },
    /// `SHOW PARTITIONS FROM t` (Trino's `SELECT * FROM "t$partitions"`)
    ShowPartitions {
        /// `[[catalog.]schema.]table` parts.
        table: Vec<String>,
    },
    /// `SHOW SESSION`
    ShowSession,
    /// `SET SESSION name = value`
    SetSession {
        /// Property name.
        name: String,
        /// Value.
        value: String,
    },
    /// `RESET SESSION name`
    ResetSession {
        /// Property name.
        name: String,
    },
    /// `USE [catalog.]schema`
    Use {
        /// `[catalog.]schema` parts.
        schema: Vec<String>,
    },
    /// `EXPLAIN (TYPE DISTRIBUTED) query`
    ExplainDistributed {
        /// The query.
        query: String,
    },
    /// `CALL catalog.schema.procedure(arg, name => arg, …)`
    Call {
        /// Procedure name parts.
        procedure: Vec<String>,
        /// Arguments: name (for `name => value`) and value.
        args: Vec<(Option<String>, String)>,
    },
    /// `CREATE [OR REPLACE] VIEW name [COMMENT '…'] [SECURITY DEFINER|INVOKER] AS query`
    CreateView {
        /// `[[catalog.]schema.]view` parts.
        name: Vec<String>,
        /// OR REPLACE.
        or_replace: bool,
        /// COMMENT.
        comment: Option<String>,
        /// SECURITY INVOKER.
        invoker: bool,
        /// The query, as written.
        query: String,
    },
    /// `CREATE [OR REPLACE] MATERIALIZED VIEW [IF NOT EXISTS] name [COMMENT '…']
    /// [WITH (…)] AS query`
    CreateMaterializedView {
        /// `[[catalog.]schema.]view` parts.
        name: Vec<String>,
        /// OR REPLACE.
        or_replace: bool,
        /// IF NOT EXISTS.
        if_not_exists: bool,
        /// COMMENT.
        comment: Option<String>,
        /// The text inside `WITH ( … )`.
        properties: Option<String>,
        /// The query, as written.
        query: String,
    },
    /// `REFRESH MATERIALIZED VIEW name`
    RefreshMaterializedView {
        /// `[[catalog.]schema.]view` parts.
        name: Vec<String>,
    },
    /// `DROP [MATERIALIZED] VIEW [IF EXISTS] name`
    DropView {
        /// `[[catalog.]schema.]view` parts.
        name: Vec<String>,
        /// IF EXISTS.
        if_exists: bool,
        /// MATERIALIZED.
        materialized: bool,
    },
    /// `SHOW CREATE [MATERIALIZED] VIEW name`
    ShowCreateView {
        /// `[[catalog.]schema.]view` parts.
        name: Vec<String>,
        /// MATERIALIZED.
        materialized: bool,
    },
    /// Anything else: DataFusion SQL.
    Sql(String),
}

/// Parses a statement: ours when it starts like one, DataFusion's otherwise.
pub fn parse(sql: &str) -> Result<Statement> {
    let sql = sql.trim().trim_end_matches(';').trim();
    let mut p = Parser::new(sql);
    if p.keyword("CALL") {
        let procedure = p.name()?;
        if !p.symbol('(') {
            return Err(p.error("'('"));
        }
        let mut args = Vec::new();
        if !p.symbol(')') {
            loop {
                let start = p.pos;
                let name = match p.name() {
                    Ok(n) if n.len() == 1 && p.symbol('=') && p.symbol('>') => n.into_iter().next(),
                    _ => {
                        p.pos = start;
                        None
                    }
                };
                args.push((name, p.value()?));
                if p.symbol(')') {
                    break;
                }
                if !p.symbol(',') {
                    return Err(p.error("',' or ')'"));
                }
            }
        }
        return p.end(Statement::Call { procedure, args });
    }
    if p.keyword("CREATE") {
        if let Some(statement) = p.create_view()? {
            return Ok(statement);
        }
        p.pos = 0;
    }
    if p.keyword("REFRESH") {
        if !(p.keyword("MATERIALIZED") && p.keyword("VIEW")) {
            return Err(p.error("MATERIALIZED VIEW"));
        }
        let name = p.name()?;
        return p.end(Statement::RefreshMaterializedView { name });
    }
    if p.keyword("DROP") {
        let materialized = p.keyword("MATERIALIZED");
        if p.keyword("VIEW") {
            let if_exists = p.keyword("IF") && p.keyword("EXISTS");
            let name = p.name()?;
            return p.end(Statement::DropView {
                name,
                if_exists,
                materialized,
            });
        }
        if materialized {
            return Err(p.error("VIEW"));
        }
        p.pos = 0;
    }
    if p.keyword("SHOW") {
        if p.keyword("CATALOGS") {
            let like = p.like()?;
            return p.end(Statement::ShowCatalogs { like });
        }
        if p.keyword("SCHEMAS") {
            let catalog = if p.keyword("FROM") || p.keyword("IN") {
                p.name()?.pop()
            } else {
                None
            };
            let like = p.like()?;
            return p.end(Statement::ShowSchemas { catalog, like });
        }
        if p.keyword("TABLES") {
            let schema = if p.keyword("FROM") || p.keyword("IN") {
                p.name()?
            } else {
                vec![]
            };
            let like = p.like()?;
            return p.end(Statement::ShowTables { schema, like });
        }
        if p.keyword("COLUMNS") {
            if !(p.keyword("FROM") || p.keyword("IN")) {
                return Err(p.error("FROM"));
            }
            let table = p.name()?;
            return p.end(Statement::ShowColumns { table });
        }
        if p.keyword("SESSION") {
            return p.end(Statement::ShowSession);
        }
        if p.keyword("CREATE") {
            let materialized = p.keyword("MATERIALIZED");
            if p.keyword("VIEW") {
                let name = p.name()?;
                return p.end(Statement::ShowCreateView { name, materialized });
            }
            if materialized || !p.keyword("TABLE") {
                return Err(p.error(if materialized {
                    "VIEW"
                } else {
                    "TABLE or VIEW"
                }));
            }
            let table = p.name()?;
            return p.end(Statement::ShowCreateTable { table });
        }
        if p.keyword("PARTITIONS") {
            if !(p.keyword("FROM") || p.keyword("IN")) {
                return Err(p.error("FROM"));
            }
            let table = p.name()?;
            return p.end(Statement::ShowPartitions { table });
        }
        return Ok(Statement::Sql(sql.to_owned()));
    }
    if p.keyword("DESCRIBE") || p.keyword("DESC") {
        let table = p.name()?;
        return p.end(Statement::ShowColumns { table });
    }
    if p.keyword("USE") {
        let schema = p.name()?;
        if schema.len() > 2 {
            return Err(SchedulerError::InvalidQuery(format!(
                "USE takes [catalog.]schema, got '{}'",
                schema.join(".")
            )));
        }
        return p.end(Statement::Use { schema });
    }
    if p.keyword("SET") {
        if p.keyword("SESSION") {
            let name = p.name()?.join(".");
            if !p.symbol('=') {
                return Err(p.error("'='"));
            }
            let value = p.value()?;
            return p.end(Statement::SetSession { name, value });
        }
        return Ok(Statement::Sql(sql.to_owned()));
    }
    if p.keyword("RESET") && p.keyword("SESSION") {
        let name = p.name()?.join(".");
        return p.end(Statement::ResetSession { name });
    }
    p.pos = 0;
    if p.keyword("EXPLAIN") && p.symbol('(') && p.keyword("TYPE") && p.keyword("DISTRIBUTED") {
        if !p.symbol(')') {
            return Err(p.error("')'"));
        }
        let offset = p.tokens.get(p.pos).map(|(_, o)| *o).unwrap_or(sql.len());
        let query: String = sql.chars().skip(offset).collect();
        return Ok(Statement::ExplainDistributed { query });
    }
    Ok(Statement::Sql(number_placeholders(sql)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_call() {
        assert_eq!(
            parse(
                "CALL system.runtime.kill_query(query_id => '20261128_1', message => 'too slow')"
            )
            .expect("parses"),
            Statement::Call {
                procedure: vec!["system".into(), "runtime".into(), "kill_query".into()],
                args: vec![
                    (Some("query_id".into()), "20261128_1".into()),
                    (Some("message".into()), "too slow".into()),
                ],
            }
        );
        assert_eq!(
            parse("call system.runtime.kill_query('q')").expect("parses"),
            Statement::Call {
                procedure: vec!["system".into(), "runtime".into(), "kill_query".into()],
                args: vec![(None, "q".into())],
            }
        );
        assert!(parse("CALL system.runtime.kill_query('q'").is_err());
    }

    #[test]
    fn parses_views() {
        assert_eq!(
            parse(
                "CREATE OR REPLACE VIEW hive.s.v COMMENT 'x' SECURITY INVOKER AS SELECT (1) AS a"
            )
            .expect("parses"),
            Statement::CreateView {
                name: vec!["hive".into(), "s".into(), "v".into()],
                or_replace: true,
                comment: Some("x".into()),
                invoker: true,
                query: "SELECT (1) AS a".into(),
            }
        );
        assert_eq!(
            parse(
                "create materialized view if not exists hive.a.t WITH (format = 'PARQUET', partitioned_by = ARRAY['d']) AS\nSELECT 1;"
            )
            .expect("parses"),
            Statement::CreateMaterializedView {
                name: vec!["hive".into(), "a".into(), "t".into()],
                or_replace: false,
                if_not_exists: true,
                comment: None,
                properties: Some("format = 'PARQUET', partitioned_by = ARRAY['d']".into()),
                query: "SELECT 1".into(),
            }
        );
        assert_eq!(
            parse("REFRESH MATERIALIZED VIEW a.t").expect("parses"),
            Statement::RefreshMaterializedView {
                name: vec!["a".into(), "t".into()]
            }
        );
        assert_eq!(
            parse("DROP MATERIALIZED VIEW IF EXISTS t").expect("parses"),
            Statement::DropView {
                name: vec!["t".into()],
                if_exists: true,
                materialized: true
            }
        );
        assert_eq!(
            parse("SHOW CREATE VIEW v").expect("parses"),
            Statement::ShowCreateView {
                name: vec!["v".into()],
                materialized: false
            }
        );
        assert_eq!(
            parse("CREATE TABLE t (a INT)").expect("parses"),
            Statement::Sql("CREATE TABLE t (a INT)".into())
        );
        assert_eq!(
            parse("DROP TABLE t").expect("parses"),
            Statement::Sql("DROP TABLE t".into())
        );
        assert!(parse("CREATE VIEW v SELECT 1").is_err());
        assert_eq!(
            parse("/* why */ CREATE VIEW v /* c */ AS SELECT 1").expect("parses"),
            Statement::CreateView {
                name: vec!["v".into()],
                or_replace: false,
                comment: None,
                invoker: false,
                query: "SELECT 1".into(),
            }
        );
    }

    #[test]
    fn parses_trino_statements() {
        assert_eq!(
            parse("show catalogs").expect("ok"),
            Statement::ShowCatalogs { like: None }
        );
        assert_eq!(
            parse("SHOW TABLES FROM tpch.tiny LIKE 'n%';").expect("ok"),
            Statement::ShowTables {
                schema: vec!["tpch".into(), "tiny".into()],
                like: Some("n%".into())
            }
        );
        assert_eq!(
            parse("SET SESSION join_distribution_type = 'BROADCAST'").expect("ok"),
            Statement::SetSession {
                name: "join_distribution_type".into(),
                value: "BROADCAST".into()
            }
        );
        assert_eq!(
            parse("set session datafusion.execution.batch_size = 1024").expect("ok"),
            Statement::SetSession {
                name: "datafusion.execution.batch_size".into(),
                value: "1024".into()
            }
        );
        assert_eq!(
            parse("DESCRIBE tpch.tiny.\"Nation\"").expect("ok"),
            Statement::ShowColumns {
                table: vec!["tpch".into(), "tiny".into(), "Nation".into()]
            }
        );
        assert_eq!(
            parse("USE tpch.tiny").expect("ok"),
            Statement::Use {
                schema: vec!["tpch".into(), "tiny".into()]
            }
        );
        assert_eq!(
            parse("EXPLAIN (TYPE DISTRIBUTED) SELECT 1").expect("ok"),
            Statement::ExplainDistributed {
                query: "SELECT 1".into()
            }
        );
        assert_eq!(
            parse("SELECT 1").expect("ok"),
            Statement::Sql("SELECT 1".into())
        );
        assert_eq!(
            number_placeholders("SELECT '?', x FROM t WHERE a = ? AND b = ? -- ?\n"),
            "SELECT '?', x FROM t WHERE a = $1 AND b = $2 -- ?\n"
        );
        let err = parse("SET SESSION x 1").expect_err("missing =").to_string();
        assert!(err.starts_with("line 1, column 15"), "{err}");
    }
}
