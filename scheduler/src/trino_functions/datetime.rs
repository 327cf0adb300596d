//! Trino's date and time functions, as DataFusion's `date_part`, `date_trunc`, `to_char`,
//! `to_timestamp`, intervals, durations and integer arithmetic on milliseconds.

use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{DFSchema, Result, ScalarValue, plan_err};
use datafusion::functions::datetime as dt;
use datafusion::logical_expr::{Expr, ExprSchemable, cast, lit};

use super::formats::{joda_to_chrono, mysql_to_chrono};
use super::{
    TrinoScalar, bigint, case_when, constant_text, take, third, timestamp_millis, varchar,
};

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

pub(super) fn scalars() -> Vec<TrinoScalar> {
    let field = |name: &'static str, part: &'static str| {
        TrinoScalar::new(
            name,
            "date or timestamp",
            1..=1,
            bigint,
            move |args, _, _| Ok(date_field(part, args)),
        )
    };
    vec![
        field("year", "year"),
        field("quarter", "quarter"),
        field("month", "month"),
        field("week", "week").alias("week_of_year"),
        field("day", "day").alias("day_of_month"),
        field("day_of_week", "isodow").alias("dow"),
        field("day_of_year", "doy").alias("doy"),
        field("hour", "hour"),
        field("minute", "minute"),
        field("second", "second"),
        field("millisecond", "millisecond"),
        field("year_of_week", "isoyear").alias("yow"),
        TrinoScalar::new(
            "date_add",
            "unit, value, timestamp",
            3..=3,
            third,
            |args, schema, _| {
                let [unit, value, x] = take(args);
                date_add(&constant_text("date_add", "unit", &unit)?, value, x, schema)
            },
        ),
        TrinoScalar::new(
            "date_diff",
            "unit, timestamp1, timestamp2",
            3..=3,
            bigint,
            |args, schema, _| {
                let [unit, a, b] = take(args);
                date_diff(&constant_text("date_diff", "unit", &unit)?, a, b, schema)
            },
        ),
        TrinoScalar::new(
            "last_day_of_month",
            "x",
            1..=1,
            |_| DataType::Date32,
            |args, _, _| {
                let [x] = take(args);
                Ok(cast(last_day_of_month(x), DataType::Date32))
            },
        ),
        TrinoScalar::new(
            "date_format",
            "timestamp, format",
            2..=2,
            varchar,
            |args, _, _| {
                let [x, format] = take(args);
                let format = mysql_to_chrono(&constant_text("date_format", "format", &format)?)?;
                Ok(dt::to_char().call(vec![x, lit(format)]))
            },
        ),
        TrinoScalar::new(
            "date_parse",
            "string, format",
            2..=2,
            timestamp_millis,
            |args, _, config| {
                let [string, format] = take(args);
                let format = mysql_to_chrono(&constant_text("date_parse", "format", &format)?)?;
                Ok(parsed(string, format, config))
            },
        ),
        TrinoScalar::new(
            "format_datetime",
            "timestamp, format",
            2..=2,
            varchar,
            |args, _, _| {
                let [x, format] = take(args);
                let format = joda_to_chrono(&constant_text("format_datetime", "format", &format)?)?;
                Ok(dt::to_char().call(vec![x, lit(format)]))
            },
        ),
        TrinoScalar::new(
            "parse_datetime",
            "string, format",
            2..=2,
            timestamp_millis,
            |args, _, config| {
                let [string, format] = take(args);
                let format = joda_to_chrono(&constant_text("parse_datetime", "format", &format)?)?;
                Ok(parsed(string, format, config))
            },
        ),
        TrinoScalar::new(
            "from_iso8601_timestamp",
            "string",
            1..=1,
            timestamp_millis,
            |args, _, config| {
                Ok(cast(
                    dt::to_timestamp(config).call(args),
                    DataType::Timestamp(TimeUnit::Millisecond, None),
                ))
            },
        ),
        TrinoScalar::new(
            "from_iso8601_date",
            "string",
            1..=1,
            |_| DataType::Date32,
            |args, _, _| Ok(dt::to_date().call(args)),
        ),
        TrinoScalar::new(
            "to_iso8601",
            "date or timestamp",
            1..=1,
            varchar,
            |args, schema, _| {
                let [x] = take(args);
                let format = match x.get_type(schema)? {
                    DataType::Date32 | DataType::Date64 => "%Y-%m-%d",
                    DataType::Timestamp(_, Some(_)) => "%Y-%m-%dT%H:%M:%S%.3f%:z",
                    _ => "%Y-%m-%dT%H:%M:%S%.3f",
                };
                Ok(dt::to_char().call(vec![x, lit(format)]))
            },
        ),
    ]
}

/// A field function (`year(x)` → `date_part('year', x)` as bigint).
fn date_field(part: &str, args: Vec<Expr>) -> Expr {
    let [x] = take(args);
    let value = cast(dt::date_part().call(vec![lit(part), x]), DataType::Int64);
    if part == "millisecond" {
        // date_part counts the seconds' milliseconds too.
        value % lit(1000_i64)
    } else {
        value
    }
}

/// `string` parsed with a chrono `format`, as Trino's `timestamp(3)`.
fn parsed(string: Expr, format: String, config: &ConfigOptions) -> Expr {
    cast(
        dt::to_timestamp(config).call(vec![string, lit(format)]),
        DataType::Timestamp(TimeUnit::Millisecond, None),
    )
}

/// A Trino unit (`date_add`, `date_diff`), by its name in either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Unit {
    fn parse(function: &str, unit: &str) -> Result<Self> {
        Ok(match unit.to_ascii_lowercase().as_str() {
            "millisecond" => Self::Millisecond,
            "second" => Self::Second,
            "minute" => Self::Minute,
            "hour" => Self::Hour,
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            "quarter" => Self::Quarter,
            "year" => Self::Year,
            other => {
                return plan_err!(
                    "{function}: unknown unit '{other}' (expected millisecond, second, minute, \
                     hour, day, week, month, quarter or year)"
                );
            }
        })
    }

    /// Milliseconds of one unit, for units of fixed length.
    fn millis(self) -> Option<i64> {
        match self {
            Self::Millisecond => Some(1),
            Self::Second => Some(1_000),
            Self::Minute => Some(60_000),
            Self::Hour => Some(3_600_000),
            Self::Day => Some(DAY_MS),
            Self::Week => Some(7 * DAY_MS),
            Self::Month | Self::Quarter | Self::Year => None,
        }
    }

    /// Months of one unit, for calendar units.
    fn months(self) -> Option<i64> {
        match self {
            Self::Month => Some(1),
            Self::Quarter => Some(3),
            Self::Year => Some(12),
            _ => None,
        }
    }
}

/// `date_add(unit, value, x)`: a constant value as an interval (calendar units as months,
/// days as days, so a date stays a date and an end of month clamps); otherwise a duration of
/// milliseconds (fixed units; on a date, whole days), or months moved by hand.
fn date_add(unit: &str, value: Expr, x: Expr, schema: &DFSchema) -> Result<Expr> {
    let unit = Unit::parse("date_add", unit)?;
    let is_date = matches!(x.get_type(schema)?, DataType::Date32 | DataType::Date64);
    if is_date && unit.months().is_none() && !matches!(unit, Unit::Day | Unit::Week) {
        return plan_err!("date_add: {unit:?} cannot be added to a date (use a timestamp)");
    }
    if let Some(n) = constant_integer(&value) {
        let interval = match (unit.months(), unit.millis()) {
            (Some(months), _) => {
                IntervalMonthDayNano::new(checked_i32(n.saturating_mul(months))?, 0, 0)
            }
            (None, Some(DAY_MS)) => IntervalMonthDayNano::new(0, checked_i32(n)?, 0),
            (None, Some(ms)) if ms == 7 * DAY_MS => {
                IntervalMonthDayNano::new(0, checked_i32(n.saturating_mul(7))?, 0)
            }
            (None, Some(ms)) => {
                IntervalMonthDayNano::new(0, 0, n.saturating_mul(ms).saturating_mul(1_000_000))
            }
            (None, None) => unreachable!("every unit has months or milliseconds"),
        };
        return Ok(x + lit(ScalarValue::IntervalMonthDayNano(Some(interval))));
    }
    let value = cast(value, DataType::Int64);
    let Some(ms) = unit.millis() else {
        let months = value * lit(unit.months().unwrap_or(1));
        return add_months(months, x, schema);
    };
    if is_date {
        let days = value * lit(ms / DAY_MS);
        return Ok(cast(
            cast(cast(x, DataType::Date32), DataType::Int32) + cast(days, DataType::Int32),
            DataType::Date32,
        ));
    }
    Ok(x + cast(value * lit(ms), DataType::Duration(TimeUnit::Millisecond)))
}

/// `x` moved by `months` (an expression): the same day of the month, or the month's last day
/// where it has fewer, at the same time of day.
fn add_months(months: Expr, x: Expr, schema: &DFSchema) -> Result<Expr> {
    let x_type = x.get_type(schema)?;
    if matches!(x_type, DataType::Timestamp(_, Some(_))) {
        return plan_err!(
            "date_add: a number of months that is not a constant is not supported on a \
             timestamp with time zone"
        );
    }
    let part =
        |name: &str, x: Expr| cast(dt::date_part().call(vec![lit(name), x]), DataType::Int64);
    // Months since year 0 of the target month, then its year and month.
    let total =
        part("year", x.clone()) * lit(12_i64) + part("month", x.clone()) - lit(1_i64) + months;
    let year = cast(total.clone() / lit(12_i64), DataType::Int32);
    let month = cast(total % lit(12_i64) + lit(1_i64), DataType::Int32);
    let first = dt::make_date().call(vec![year.clone(), month.clone(), lit(1_i32)]);
    let days = part("day", last_day_of_month(first));
    let day = cast(
        datafusion::functions::core::least().call(vec![part("day", x.clone()), days]),
        DataType::Int32,
    );
    let date = dt::make_date().call(vec![year, month, day]);
    Ok(match x_type {
        DataType::Date32 | DataType::Date64 => cast(date, x_type),
        _ => {
            let time_of_day = x.clone() - dt::date_trunc().call(vec![lit("day"), x]);
            cast(cast(date, x_type.clone()) + time_of_day, x_type)
        }
    })
}

fn checked_i32(n: i64) -> Result<i32> {
    i32::try_from(n).or_else(|_| plan_err!("date_add: {n} is out of range"))
}

/// The integer a constant expression holds.
fn constant_integer(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(value, _) => match value.cast_to(&DataType::Int64).ok()? {
            ScalarValue::Int64(n) => n,
            _ => None,
        },
        Expr::Negative(inner) => constant_integer(inner).map(|n| -n),
        Expr::Cast(c) => constant_integer(&c.expr),
        _ => None,
    }
}

/// Milliseconds since the epoch of a date or timestamp (in its own time zone's instant).
fn epoch_ms(x: Expr, schema: &DFSchema) -> Result<Expr> {
    let as_millis = match x.get_type(schema)? {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Millisecond, tz),
        _ => DataType::Timestamp(TimeUnit::Millisecond, None),
    };
    Ok(cast(cast(x, as_millis), DataType::Int64))
}

/// `date_diff(unit, a, b)`: whole units from `a` to `b` (negative when `b` is earlier),
/// counted as Trino counts them: fixed units by milliseconds, truncated; calendar units by
/// months, one less when `a` moved that many months (its day clamped to the end of `b`'s
/// month) passes `b`.
fn date_diff(unit: &str, a: Expr, b: Expr, schema: &DFSchema) -> Result<Expr> {
    let unit = Unit::parse("date_diff", unit)?;
    if let Some(ms) = unit.millis() {
        return Ok((epoch_ms(b, schema)? - epoch_ms(a, schema)?) / lit(ms));
    }
    let months_of = |x: Expr| {
        cast(
            dt::date_part().call(vec![lit("year"), x.clone()]),
            DataType::Int64,
        ) * lit(12_i64)
            + cast(dt::date_part().call(vec![lit("month"), x]), DataType::Int64)
    };
    let day_of = |x: Expr| cast(dt::date_part().call(vec![lit("day"), x]), DataType::Int64);
    let time_of_day = |x: Expr| -> Result<Expr> {
        Ok(epoch_ms(x.clone(), schema)?
            - epoch_ms(dt::date_trunc().call(vec![lit("day"), x]), schema)?)
    };
    let raw = months_of(b.clone()) - months_of(a.clone());
    // Where in its month each lies, `a` as if moved into `b`'s month.
    let days_in_b_month = day_of(last_day_of_month(b.clone()));
    let a_day = datafusion::functions::core::least().call(vec![day_of(a.clone()), days_in_b_month]);
    let a_rest = (a_day - lit(1_i64)) * lit(DAY_MS) + time_of_day(a)?;
    let b_rest = (day_of(b.clone()) - lit(1_i64)) * lit(DAY_MS) + time_of_day(b)?;
    let months = case_when(
        vec![
            (
                raw.clone()
                    .gt(lit(0_i64))
                    .and(a_rest.clone().gt(b_rest.clone())),
                raw.clone() - lit(1_i64),
            ),
            (
                raw.clone().lt(lit(0_i64)).and(a_rest.lt(b_rest)),
                raw.clone() + lit(1_i64),
            ),
        ],
        raw,
    );
    let per_unit = unit.months().unwrap_or(1);
    Ok(if per_unit == 1 {
        months
    } else {
        months / lit(per_unit)
    })
}

/// The last day of `x`'s month (a timestamp at its midnight).
fn last_day_of_month(x: Expr) -> Expr {
    dt::date_trunc().call(vec![lit("month"), x])
        + lit(ScalarValue::IntervalMonthDayNano(Some(
            IntervalMonthDayNano::new(1, -1, 0),
        )))
}
