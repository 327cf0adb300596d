//! Each function against the answer Trino's documentation gives, run by DataFusion with the
//! functions registered as every session registers them.

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;

use super::register;

fn context() -> SessionContext {
    let mut state = SessionStateBuilder::new().with_default_features().build();
    register(&mut state).expect("registered");
    SessionContext::new_with_state(state)
}

/// The single value `sql` answers, as text (NULL as "NULL").
async fn value(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .unwrap_or_else(|| panic!("{sql}: no rows"));
    let options = FormatOptions::default().with_null("NULL");
    let formatter =
        ArrayFormatter::try_new(batch.column(0).as_ref(), &options).expect("a formatter");
    formatter.value(0).to_string()
}

async fn error(ctx: &SessionContext, sql: &str) -> String {
    match ctx.sql(sql).await {
        Err(e) => e.to_string(),
        Ok(frame) => match frame.collect().await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{sql}: no error"),
        },
    }
}

#[tokio::test]
async fn conditional_and_type_functions_answer_as_trino() {
    let ctx = context();
    for (sql, expected) in [
        ("SELECT if(1 < 2, 'yes', 'no')", "yes"),
        ("SELECT if(1 > 2, 'yes', 'no')", "no"),
        ("SELECT if(1 > 2, 'yes')", "NULL"),
        ("SELECT if(true, 1, 2.5)", "1.0"),
        ("SELECT typeof(1)", "bigint"),
        ("SELECT typeof(CAST(1 AS integer))", "integer"),
        ("SELECT typeof(CAST(1.5 AS decimal(10,2)))", "decimal(10,2)"),
        ("SELECT typeof('a')", "varchar"),
        ("SELECT typeof(DATE '2020-01-01')", "date"),
        (
            "SELECT typeof(CAST('2020-01-01 00:00:00' AS timestamp))",
            "timestamp(9)",
        ),
        ("SELECT typeof(split('a,b', ','))", "array(varchar)"),
        ("SELECT split('a,b,c', ',')", "[a, b, c]"),
        ("SELECT contains(split('a,b,c', ','), 'b')", "true"),
        ("SELECT contains(split('a,b,c', ','), 'd')", "false"),
        ("SELECT contains('abc', 'bc')", "true"),
        ("SELECT sequence(1, 5)", "[1, 2, 3, 4, 5]"),
        ("SELECT sequence(1, 10, 4)", "[1, 5, 9]"),
        ("SELECT regexp_extract('1a 2b 14m', '\\d+')", "1"),
        (
            "SELECT regexp_extract('1a 2b 14m', '(\\d+)([a-z]+)', 2)",
            "a",
        ),
        ("SELECT regexp_extract('abc', '\\d+')", "NULL"),
        ("SELECT levenshtein_distance('kitten', 'sitting')", "3"),
        ("SELECT truncate(-4.7)", "-4.0"),
        ("SELECT codepoint('A')", "65"),
        ("SELECT is_nan(nan())", "true"),
        ("SELECT is_finite(1.0)", "true"),
        ("SELECT is_infinite(infinity())", "true"),
        ("SELECT round(e(), 5)", "2.71828"),
        ("SELECT rand() BETWEEN 0 AND 1", "true"),
        ("SELECT from_utf8(to_utf8('héllo'))", "héllo"),
    ] {
        assert_eq!(value(&ctx, sql).await, expected, "{sql}");
    }
}

#[tokio::test]
async fn date_fields_arithmetic_and_formats_answer_as_trino() {
    let ctx = context();
    let ts = "TIMESTAMP '2001-08-22 03:04:05.321'";
    for (sql, expected) in [
        (format!("SELECT year({ts})"), "2001"),
        (format!("SELECT quarter({ts})"), "3"),
        (format!("SELECT month({ts})"), "8"),
        (format!("SELECT week({ts})"), "34"),
        (format!("SELECT week_of_year({ts})"), "34"),
        (format!("SELECT day({ts})"), "22"),
        (format!("SELECT day_of_month({ts})"), "22"),
        // 2001-08-22 was a Wednesday: ISO 3.
        (format!("SELECT day_of_week({ts})"), "3"),
        (format!("SELECT dow({ts})"), "3"),
        (format!("SELECT day_of_year({ts})"), "234"),
        (format!("SELECT hour({ts})"), "3"),
        (format!("SELECT minute({ts})"), "4"),
        (format!("SELECT second({ts})"), "5"),
        (format!("SELECT millisecond({ts})"), "321"),
        ("SELECT year_of_week(DATE '2005-01-02')".to_owned(), "2004"),
        ("SELECT typeof(year(DATE '2005-01-02'))".to_owned(), "bigint"),
        // date_add: dates stay dates, months clamp at the end of a month.
        ("SELECT date_add('day', 1, DATE '2020-02-28')".to_owned(), "2020-02-29"),
        ("SELECT date_add('month', 1, DATE '2020-01-31')".to_owned(), "2020-02-29"),
        ("SELECT date_add('year', -1, DATE '2020-02-29')".to_owned(), "2019-02-28"),
        ("SELECT date_add('week', 2, DATE '2020-01-01')".to_owned(), "2020-01-15"),
        (format!("SELECT date_add('hour', 25, {ts})"), "2001-08-23T04:04:05.321"),
        (format!("SELECT date_add('millisecond', 679, {ts})"), "2001-08-22T03:04:06"),
        (format!("SELECT date_add('quarter', 2, {ts})"), "2002-02-22T03:04:05.321"),
        // A value that is not a constant: a duration (or days on a date).
        ("SELECT date_add('day', n, DATE '2020-02-28') FROM (VALUES (2)) t(n)".to_owned(), "2020-03-01"),
        (format!("SELECT date_add('minute', n, {ts}) FROM (VALUES (-5)) t(n)"), "2001-08-22T02:59:05.321"),
        // Months that are not a constant: the day clamps to the month's end, the time stays.
        ("SELECT date_add('month', n, DATE '2020-01-31') FROM (VALUES (1)) t(n)".to_owned(), "2020-02-29"),
        ("SELECT date_add('year', n, DATE '2020-02-29') FROM (VALUES (-1)) t(n)".to_owned(), "2019-02-28"),
        ("SELECT date_add('month', n, DATE '2020-03-15') FROM (VALUES (-3)) t(n)".to_owned(), "2019-12-15"),
        (format!("SELECT date_add('quarter', n, {ts}) FROM (VALUES (2)) t(n)"), "2002-02-22T03:04:05.321"),
        (format!("SELECT typeof(date_add('month', n, {ts})) FROM (VALUES (2)) t(n)"), "timestamp(9)"),
        // date_diff
        ("SELECT date_diff('day', DATE '2020-01-01', DATE '2020-03-01')".to_owned(), "60"),
        ("SELECT date_diff('day', DATE '2020-03-01', DATE '2020-01-01')".to_owned(), "-60"),
        ("SELECT date_diff('week', DATE '2020-01-01', DATE '2020-01-15')".to_owned(), "2"),
        ("SELECT date_diff('hour', TIMESTAMP '2020-01-01 00:00:00', TIMESTAMP '2020-01-01 23:59:00')".to_owned(), "23"),
        ("SELECT date_diff('millisecond', TIMESTAMP '2020-01-01 00:00:00.001', TIMESTAMP '2020-01-01 00:00:00.002')".to_owned(), "1"),
        ("SELECT date_diff('month', DATE '2020-01-15', DATE '2020-02-14')".to_owned(), "0"),
        ("SELECT date_diff('month', DATE '2020-01-15', DATE '2020-02-15')".to_owned(), "1"),
        // Joda's rule: Jan 31 + 1 month is Feb 29, so a whole month has passed.
        ("SELECT date_diff('month', DATE '2020-01-31', DATE '2020-02-29')".to_owned(), "1"),
        ("SELECT date_diff('month', DATE '2020-03-31', DATE '2020-02-29')".to_owned(), "-1"),
        ("SELECT date_diff('month', DATE '2020-03-15', DATE '2020-02-16')".to_owned(), "0"),
        ("SELECT date_diff('month', TIMESTAMP '2020-01-15 10:00:00', TIMESTAMP '2020-02-15 09:00:00')".to_owned(), "0"),
        ("SELECT date_diff('year', DATE '2019-06-01', DATE '2021-05-31')".to_owned(), "1"),
        ("SELECT date_diff('quarter', DATE '2019-01-01', DATE '2019-12-31')".to_owned(), "3"),
        ("SELECT last_day_of_month(DATE '2020-02-10')".to_owned(), "2020-02-29"),
        (format!("SELECT last_day_of_month({ts})"), "2001-08-31"),
        // Formats
        (format!("SELECT date_format({ts}, '%Y-%m-%d %H:%i:%s')"), "2001-08-22 03:04:05"),
        (format!("SELECT date_format({ts}, '%W %M %e, %r')"), "Wednesday August 22, 03:04:05 AM"),
        (format!("SELECT format_datetime({ts}, 'yyyy-MM-dd''T''HH:mm:ss.SSS')"), "2001-08-22T03:04:05.321"),
        (format!("SELECT format_datetime({ts}, 'EEE, d MMM yy')"), "Wed, 22 Aug 01"),
        ("SELECT date_parse('2001/08/22 03:04', '%Y/%m/%d %H:%i')".to_owned(), "2001-08-22T03:04:00"),
        ("SELECT parse_datetime('22-08-2001 03:04:05', 'dd-MM-yyyy HH:mm:ss')".to_owned(), "2001-08-22T03:04:05"),
        ("SELECT from_iso8601_timestamp('2001-08-22T03:04:05.321Z')".to_owned(), "2001-08-22T03:04:05.321"),
        ("SELECT from_iso8601_date('2001-08-22')".to_owned(), "2001-08-22"),
        (format!("SELECT to_iso8601({ts})"), "2001-08-22T03:04:05.321"),
        ("SELECT to_iso8601(DATE '2001-08-22')".to_owned(), "2001-08-22"),
    ] {
        assert_eq!(value(&ctx, &sql).await, expected, "{sql}");
    }
}

#[tokio::test]
async fn aggregates_answer_as_trino() {
    let ctx = context();
    let rows = "(VALUES (1, 'a', 10.0), (2, 'b', NULL), (3, 'c', 30.0), (4, NULL, 5.0)) t(k, s, x)";
    for (sql, expected) in [
        (format!("SELECT count_if(k > 1) FROM {rows}"), "3"),
        (format!("SELECT count_if(k > 9) FROM {rows}"), "0"),
        (
            format!("SELECT count_if(k > 1) FILTER (WHERE k < 4) FROM {rows}"),
            "2",
        ),
        (format!("SELECT max_by(s, x) FROM {rows}"), "c"),
        (format!("SELECT min_by(s, x) FROM {rows}"), "NULL"),
        (format!("SELECT min_by(k, x) FROM {rows}"), "4"),
        (
            format!("SELECT max_by(s, x) FROM {rows} WHERE x IS NULL"),
            "NULL",
        ),
        (
            format!("SELECT arbitrary(k) BETWEEN 1 AND 4 FROM {rows}"),
            "true",
        ),
        (format!("SELECT every(k > 0) FROM {rows}"), "true"),
        (format!("SELECT approx_percentile(k, 0.5) FROM {rows}"), "3"),
        (
            format!("SELECT approx_percentile(x, 0.5) FROM {rows}"),
            "10.0",
        ),
        (
            format!("SELECT round(geometric_mean(k), 4) FROM {rows}"),
            "2.2134",
        ),
        (
            format!(
                "SELECT s FROM {rows} GROUP BY s HAVING count_if(k > 2) = 1 ORDER BY s LIMIT 1"
            ),
            "c",
        ),
    ] {
        assert_eq!(value(&ctx, &sql).await, expected, "{sql}");
    }
}

#[tokio::test]
async fn misuse_is_named() {
    let ctx = context();
    for (sql, expected) in [
        (
            "SELECT date_add('fortnight', 1, DATE '2020-01-01')",
            "date_add: unknown unit 'fortnight'",
        ),
        (
            "SELECT date_add('hour', 1, DATE '2020-01-01')",
            "cannot be added to a date",
        ),
        (
            "SELECT date_add('day', 1)",
            "function date_add expects (unit, value, timestamp), got 2 arguments",
        ),
        (
            "SELECT date_format(DATE '2020-01-01', '%D')",
            "%D is not supported",
        ),
        (
            "SELECT date_diff(u, DATE '2020-01-01', DATE '2020-01-02') FROM (VALUES ('day')) t(u)",
            "the unit must be a constant string",
        ),
        (
            "SELECT if(true)",
            "function if expects (condition, true_value[, false_value]), got 1 argument",
        ),
    ] {
        let err = error(&ctx, sql).await;
        assert!(err.contains(expected), "{sql}: {err}");
    }
}

#[tokio::test]
async fn rewritten_calls_keep_their_names_and_become_datafusions_functions() {
    let ctx = context();
    let frame = ctx
        .sql(
            "SELECT year(d) AS y, count_if(d > DATE '2020-01-01'), date_add('day', 1, max(d)) \
             FROM (VALUES (DATE '2020-01-01'), (DATE '2021-06-30')) t(d) GROUP BY year(d)",
        )
        .await
        .expect("planned");
    let names: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names[0], "y");
    assert!(names[1].starts_with("count_if("), "{names:?}");
    assert!(names[2].starts_with("date_add("), "{names:?}");
    let plan = frame
        .into_optimized_plan()
        .expect("optimized")
        .display_indent()
        .to_string();
    assert!(plan.contains("date_part(Utf8(\"year\")"), "{plan}");
    assert!(plan.contains("count(CASE WHEN"), "{plan}");
    assert!(plan.contains("IntervalMonthDayNano"), "{plan}");
}

#[test]
fn trinos_names_stay_trinos_whenever_datafusion_rebuilds_the_state() {
    use super::{TrinoAggregate, TrinoScalar, aggregates, scalars};
    let mut state = ballista_core::utils::default_session_builder(crate::cluster::base_config())
        .expect("a state");
    register(&mut state).expect("registered");
    // DataFusion registers every function again, in a hash map's order, on each rebuild
    // (Ballista and Tributary rebuild a state for each query).
    for round in 0..20 {
        state = SessionStateBuilder::new_from_existing(state).build();
        for f in scalars() {
            for name in std::iter::once(f.name.to_owned()).chain(f.aliases.clone()) {
                let found = &state.scalar_functions()[name.as_str()];
                assert!(
                    found.inner().is::<TrinoScalar>(),
                    "{name}: DataFusion's {} (rebuild {round})",
                    found.name()
                );
            }
        }
        for f in aggregates() {
            let found = &state.aggregate_functions()[f.name];
            assert!(
                found.inner().is::<TrinoAggregate>(),
                "{}: DataFusion's {} (rebuild {round})",
                f.name,
                found.name()
            );
        }
    }
    // DataFusion's function keeps its own name.
    assert_eq!(state.scalar_functions()["to_char"].name(), "to_char");
}
