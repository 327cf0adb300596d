//! `GetSqlInfo`: every id the Flight SQL JDBC driver reads, each with the value type it casts
//! to (a missing id or a wrong type breaks JDBC < 19, DBeaver and Metabase). The types follow
//! ../shared/FLIGHTSQL.md, which follows the driver rather than the spec where they differ
//! (id 562 is read as a long).

use std::collections::BTreeMap;

use arrow_flight::sql::SqlInfo;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};

const KEYWORDS: &[&str] = &[
    "ANALYZE",
    "CATALOGS",
    "COLUMNS",
    "DESCRIBE",
    "DISTRIBUTED",
    "EXPLAIN",
    "FORMAT",
    "LIMIT",
    "OFFSET",
    "RESET",
    "SCHEMAS",
    "SESSION",
    "SHOW",
    "TABLES",
    "USE",
];
const NUMERIC_FUNCTIONS: &[&str] = &[
    "abs", "acos", "asin", "atan", "atan2", "cbrt", "ceil", "cos", "cot", "degrees", "exp",
    "floor", "ln", "log", "log10", "log2", "mod", "pi", "power", "radians", "random", "round",
    "signum", "sin", "sqrt", "tan", "trunc",
];
const STRING_FUNCTIONS: &[&str] = &[
    "ascii",
    "btrim",
    "char_length",
    "chr",
    "concat",
    "concat_ws",
    "initcap",
    "left",
    "length",
    "lower",
    "lpad",
    "ltrim",
    "position",
    "regexp_like",
    "regexp_replace",
    "repeat",
    "replace",
    "reverse",
    "right",
    "rpad",
    "rtrim",
    "split_part",
    "starts_with",
    "strpos",
    "substr",
    "substring",
    "translate",
    "trim",
    "upper",
];
const SYSTEM_FUNCTIONS: &[&str] = &["arrow_typeof", "coalesce", "nullif", "version"];
const DATETIME_FUNCTIONS: &[&str] = &[
    "current_date",
    "current_time",
    "current_timestamp",
    "date_bin",
    "date_part",
    "date_trunc",
    "extract",
    "from_unixtime",
    "now",
    "to_date",
    "to_timestamp",
];

/// Builds the answer to `GetSqlInfo`.
pub(crate) fn sql_info_data() -> SqlInfoData {
    let mut b = SqlInfoDataBuilder::new();
    // Server.
    b.append(SqlInfo::FlightSqlServerName, "Tributary");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    b.append(SqlInfo::FlightSqlServerReadOnly, false);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerSubstraitMinVersion, "");
    b.append(SqlInfo::FlightSqlServerSubstraitMaxVersion, "");
    b.append(SqlInfo::FlightSqlServerTransaction, 0i32); // SQL_SUPPORTED_TRANSACTION_NONE
    b.append(SqlInfo::FlightSqlServerCancel, true);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    b.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    b.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    b.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    // SQL language.
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, true);
    b.append(SqlInfo::SqlIdentifierCase, 2i32); // case insensitive (lower-cased, as Trino)
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlQuotedIdentifierCase, 1i32); // case sensitive
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(SqlInfo::SqlNullOrdering, 2i32); // nulls sorted at the end (DataFusion's default)
    b.append(SqlInfo::SqlKeywords, KEYWORDS);
    b.append(SqlInfo::SqlNumericFunctions, NUMERIC_FUNCTIONS);
    b.append(SqlInfo::SqlStringFunctions, STRING_FUNCTIONS);
    b.append(SqlInfo::SqlSystemFunctions, SYSTEM_FUNCTIONS);
    b.append(SqlInfo::SqlDatetimeFunctions, DATETIME_FUNCTIONS);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(
        SqlInfo::SqlSupportsConvert,
        BTreeMap::<i32, Vec<i32>>::new(),
    );
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    b.append(SqlInfo::SqlSupportedGroupBy, 3i32); // unrelated | beyond select
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(SqlInfo::SqlSupportedGrammar, 3i32); // minimum | core
    b.append(SqlInfo::SqlAnsi92SupportedLevel, 3i32); // entry | intermediate
    b.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    b.append(SqlInfo::SqlOuterJoinsSupportLevel, 2i32); // full outer joins
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSchemasSupportedActions, 7i32); // procedure calls | index | privilege definitions
    b.append(SqlInfo::SqlCatalogsSupportedActions, 7i32);
    b.append(SqlInfo::SqlSupportedPositionedCommands, 0i32);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    b.append(SqlInfo::SqlSupportedSubqueries, 15i32); // comparisons | exists | in | quantified
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    b.append(SqlInfo::SqlSupportedUnions, 3i32); // union | union all
    // Limits: 0 = no limit known (int64, as JDBC reads them).
    for id in [
        SqlInfo::SqlMaxBinaryLiteralLength,
        SqlInfo::SqlMaxCharLiteralLength,
        SqlInfo::SqlMaxColumnNameLength,
        SqlInfo::SqlMaxColumnsInGroupBy,
        SqlInfo::SqlMaxColumnsInIndex,
        SqlInfo::SqlMaxColumnsInOrderBy,
        SqlInfo::SqlMaxColumnsInSelect,
        SqlInfo::SqlMaxColumnsInTable,
        SqlInfo::SqlMaxConnections,
        SqlInfo::SqlMaxCursorNameLength,
        SqlInfo::SqlMaxIndexLength,
        SqlInfo::SqlDbSchemaNameLength,
        SqlInfo::SqlMaxProcedureNameLength,
        SqlInfo::SqlMaxCatalogNameLength,
        SqlInfo::SqlMaxRowSize,
        SqlInfo::SqlMaxStatementLength,
        SqlInfo::SqlMaxStatements,
        SqlInfo::SqlMaxTableNameLength,
        SqlInfo::SqlMaxTablesInSelect,
        SqlInfo::SqlMaxUsernameLength,
    ] {
        b.append(id, 0i64);
    }
    b.append(SqlInfo::SqlMaxRowSizeIncludesBlobs, false);
    b.append(SqlInfo::SqlDefaultTransactionIsolation, 0i64); // none; JDBC reads a long
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlSupportedTransactionsIsolationLevels, 0i32);
    b.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    b.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, true);
    b.append(SqlInfo::SqlSupportedResultSetTypes, 2i32); // forward only
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetUnspecified,
        0i32,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetForwardOnly,
        2i32,
    ); // read only
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollSensitive,
        0i32,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollInsensitive,
        0i32,
    );
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    b.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    // The builder only fails on an inconsistent union, which the code above cannot produce.
    #[allow(clippy::expect_used)]
    b.build().expect("SqlInfo values are well-formed")
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray, UnionArray};
    use arrow::datatypes::UInt32Type;

    use super::*;

    /// Union type ids of `SqlInfoValue` (arrow-flight's sql_info.rs).
    const STRING: i8 = 0;
    const BOOL: i8 = 1;
    const INT64: i8 = 2;
    const INT32: i8 = 3;
    const STRING_LIST: i8 = 4;
    const INT32_MAP: i8 = 5;

    fn expected_type(id: u32) -> Option<i8> {
        let bools = [
            3, 4, 9, 515, 516, 518, 519, 520, 521, 523, 524, 527, 532, 536, 537, 539, 556, 563,
            565, 566,
        ];
        let int32 = [8, 522, 525, 526, 528, 533, 534, 535, 538, 540, 564, 567];
        Some(match id {
            0..=2 | 504 | 513 | 514 | 529..=531 => STRING,
            _ if bools.contains(&id) || (572..=576).contains(&id) => BOOL,
            508..=512 => STRING_LIST,
            517 => INT32_MAP,
            541..=555 | 557..=562 => INT64,
            _ if int32.contains(&id) => INT32,
            _ => return None,
        })
    }

    #[test]
    fn every_jdbc_id_is_present_with_the_type_jdbc_casts_to() {
        let data = sql_info_data();
        let batch = data
            .record_batch(std::iter::empty::<u32>())
            .expect("all ids");
        let ids = batch.column(0).as_primitive::<UInt32Type>();
        let values = batch
            .column(1)
            .as_any()
            .downcast_ref::<UnionArray>()
            .expect("union");
        let mut seen = std::collections::HashMap::new();
        for row in 0..batch.num_rows() {
            seen.insert(ids.value(row), values.type_id(row));
        }
        let jdbc_ids = (0..=11)
            .chain(500..=576)
            .filter(|id| expected_type(*id).is_some());
        for id in jdbc_ids {
            let expected = expected_type(id).expect("listed");
            assert_eq!(seen.get(&id), Some(&expected), "SqlInfo {id}");
        }
        assert!(seen.len() >= 85, "{} ids registered", seen.len());
    }
}
