//! Trino's functions that DataFusion lacks or spells differently (`if`, `date_add`,
//! `date_diff`, `year`, `day_of_week`, `date_format`, `format_datetime`, `count_if`,
//! `max_by`, `approx_percentile`, `typeof`, …), so that SQL written for Trino runs as written.
//!
//! Each is registered under Trino's name for planning, with Trino's arity, and is rewritten
//! before type coercion (a DataFusion [`FunctionRewrite`], the analyzer's first step) into
//! DataFusion's own functions and operators. Nothing new reaches the executors: the physical
//! plan holds only DataFusion's functions, which Ballista's codec already carries, and
//! DataFusion's optimizations apply to the rewritten form (constant folding, `date_part`'s
//! preimage for pruning, filters pushed into connectors).
//!
//! | Trino | DataFusion form |
//! |---|---|
//! | `if(c, a [, b])` | `CASE WHEN c THEN a [ELSE b] END` |
//! | `year`, `quarter`, `month`, `week`/`week_of_year`, `day`/`day_of_month`, `day_of_week`/`dow` (ISO, Monday 1), `day_of_year`/`doy`, `hour`, `minute`, `second`, `millisecond`, `year_of_week`/`yow` | `date_part(…)` as `bigint` |
//! | `date_add(unit, n, x)` | `x + INTERVAL` (constant `n`); `x + n` as a duration (`millisecond` … `week`); `make_date` of the month moved to (`month` … `year`) |
//! | `date_diff(unit, a, b)` | whole units from `a` to `b`, months as Trino counts them (an end of month clamps) |
//! | `last_day_of_month(x)` | `date_trunc('month', x) + 1 month - 1 day` as `date` |
//! | `date_format(x, f)`, `date_parse(s, f)` (MySQL specifiers) | `to_char` / `to_timestamp` with the format in chrono's terms |
//! | `format_datetime(x, f)`, `parse_datetime(s, f)` (Joda patterns) | `to_char` / `to_timestamp` likewise |
//! | `from_iso8601_timestamp(s)`, `from_iso8601_date(s)`, `to_iso8601(x)` | `to_timestamp`, `to_date`, `to_char` |
//! | `typeof(x)` | Trino's name of `x`'s type, a constant |
//! | `split(s, d)`, `contains(array, x)` (and string `contains`), `sequence(a, b [, step])` | `string_to_array`, `array_has`, `generate_series` |
//! | `regexp_extract(s, p [, g])` | `regexp_match(s, '(' \|\| p \|\| ')')[g + 1]` |
//! | `levenshtein_distance`, `truncate`, `codepoint`, `is_nan`, `is_finite`, `is_infinite`, `infinity()`, `nan()`, `e()`, `to_utf8`, `from_utf8` | `levenshtein`, `trunc`, `ascii`, `isnan`, comparisons, constants, casts (`rand()` is DataFusion's) |
//! | `count_if(c)` | `count(CASE WHEN c THEN 1 END)` |
//! | `arbitrary(x)` | `any_value(x)` |
//! | `max_by(x, y)`, `min_by(x, y)` | `first_value(x ORDER BY y DESC/ASC) FILTER (WHERE y IS NOT NULL)` |
//! | `approx_percentile(x, p)` | `approx_percentile_cont(x, p)` |
//! | `every(c)`, `geometric_mean(x)` | `bool_and(c)`, `exp(avg(ln(x)))` |
//!
//! Trino's JSON functions (`json_extract_scalar`, …) are not rewrites: DataFusion has none, so
//! they are kernels of their own in `tributary_connector` that executors run (registered
//! here for planning, carried by the codec by name).
//!
//! Not here (yet): lambdas (`transform`, `filter`), maps built by `map_agg`/`histogram`.

mod datetime;
mod formats;
mod without_aliases;

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue, plan_err};
use datafusion::error::DataFusionError;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr::{AggregateFunction, Case, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::FunctionRewrite;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::type_coercion::binary::type_union_resolution;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Expr, ExprFunctionExt,
    ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, SortExpr, Volatility,
    cast, lit,
};

/// How a Trino function becomes DataFusion expressions: its arguments (checked for number),
/// the schema they are typed in and the session's options.
#[derive(Clone)]
struct Rewrite(Arc<RewriteFn>);

type RewriteFn = dyn Fn(Vec<Expr>, &DFSchema, &ConfigOptions) -> Result<Expr> + Send + Sync;

impl Rewrite {
    fn new(
        rewrite: impl Fn(Vec<Expr>, &DFSchema, &ConfigOptions) -> Result<Expr> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(rewrite))
    }

    fn apply(&self, args: Vec<Expr>, schema: &DFSchema, config: &ConfigOptions) -> Result<Expr> {
        (self.0)(args, schema, config)
    }
}

impl std::fmt::Debug for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rewrite")
    }
}

/// Registers Trino's functions and the rewrite that turns them into DataFusion's on `state`.
pub(crate) fn register(state: &mut SessionState) -> Result<()> {
    let scalars = scalars();
    // DataFusion's functions that also answer to one of these names keep their own only.
    let taken: Vec<Arc<ScalarUDF>> = state
        .scalar_functions()
        .values()
        .filter(|f| {
            f.aliases()
                .iter()
                .any(|alias| scalars.iter().any(|s| s.answers_to(alias)))
        })
        .cloned()
        .collect();
    for function in taken {
        let own = ScalarUDF::new_from_impl(without_aliases::WithoutAliases(function));
        state.register_udf(Arc::new(own))?;
    }
    for function in scalars {
        state.register_udf(Arc::new(ScalarUDF::new_from_impl(function)))?;
    }
    // JSON functions run on the executors as functions of their own (the codec carries them).
    for function in tributary_connector::json_functions() {
        state.register_udf(function)?;
    }
    for function in aggregates() {
        state.register_udaf(Arc::new(AggregateUDF::new_from_impl(function)))?;
    }
    state.register_function_rewrite(Arc::new(TrinoRewrite))
}

/// A Trino scalar function: its names, arity, result type for planning and rewrite.
#[derive(Debug)]
struct TrinoScalar {
    name: &'static str,
    aliases: Vec<String>,
    /// What the arguments are, for errors ("unit, value, timestamp").
    arguments: &'static str,
    arity: std::ops::RangeInclusive<usize>,
    signature: Signature,
    returns: fn(&[DataType]) -> DataType,
    rewrite: Rewrite,
}

impl TrinoScalar {
    fn new(
        name: &'static str,
        arguments: &'static str,
        arity: std::ops::RangeInclusive<usize>,
        returns: fn(&[DataType]) -> DataType,
        rewrite: impl Fn(Vec<Expr>, &DFSchema, &ConfigOptions) -> Result<Expr> + Send + Sync + 'static,
    ) -> Self {
        let rewrite = Rewrite::new(rewrite);
        let signature = if *arity.end() == 0 {
            Signature::nullary(Volatility::Immutable)
        } else {
            Signature::variadic_any(Volatility::Immutable)
        };
        Self {
            name,
            aliases: Vec::new(),
            arguments,
            arity,
            signature,
            returns,
            rewrite,
        }
    }

    fn alias(mut self, alias: &str) -> Self {
        self.aliases.push(alias.to_owned());
        self
    }

    /// Whether `name` calls this function.
    fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.iter().any(|a| a == name)
    }
}

impl PartialEq for TrinoScalar {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TrinoScalar {}

impl Hash for TrinoScalar {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// The error of a call with the wrong number of arguments.
fn arity_error(name: &str, arguments: &str, got: usize) -> DataFusionError {
    DataFusionError::Plan(format!(
        "function {name} expects ({arguments}), got {got} argument{}",
        if got == 1 { "" } else { "s" }
    ))
}

impl ScalarUDFImpl for TrinoScalar {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if !self.arity.contains(&arg_types.len()) {
            return Err(arity_error(self.name, self.arguments, arg_types.len()));
        }
        Ok((self.returns)(arg_types))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(DataFusionError::Internal(format!(
            "{} runs as DataFusion functions it is rewritten into when planned",
            self.name
        )))
    }
}

/// A Trino aggregate function, rewritten into DataFusion's aggregates.
#[derive(Debug)]
struct TrinoAggregate {
    name: &'static str,
    arguments: &'static str,
    arity: usize,
    signature: Signature,
    returns: fn(&[DataType]) -> DataType,
    rewrite: Rewrite,
}

impl TrinoAggregate {
    fn new(
        name: &'static str,
        arguments: &'static str,
        arity: usize,
        returns: fn(&[DataType]) -> DataType,
        rewrite: impl Fn(Vec<Expr>, &DFSchema, &ConfigOptions) -> Result<Expr> + Send + Sync + 'static,
    ) -> Self {
        let rewrite = Rewrite::new(rewrite);
        Self {
            name,
            arguments,
            arity,
            signature: Signature::any(arity, Volatility::Immutable),
            returns,
            rewrite,
        }
    }
}

impl PartialEq for TrinoAggregate {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TrinoAggregate {}

impl Hash for TrinoAggregate {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl AggregateUDFImpl for TrinoAggregate {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.len() != self.arity {
            return Err(arity_error(self.name, self.arguments, arg_types.len()));
        }
        Ok((self.returns)(arg_types))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Err(DataFusionError::NotImplemented(format!(
            "{} as a window function (it is an aggregate of GROUP BY here)",
            self.name
        )))
    }
}

/// Rewrites calls of [`TrinoScalar`]s and [`TrinoAggregate`]s into DataFusion's.
#[derive(Debug)]
struct TrinoRewrite;

impl FunctionRewrite for TrinoRewrite {
    fn name(&self) -> &str {
        "trino_functions"
    }

    fn rewrite(
        &self,
        expr: Expr,
        schema: &DFSchema,
        config: &ConfigOptions,
    ) -> Result<Transformed<Expr>> {
        match expr {
            Expr::ScalarFunction(ScalarFunction { func, args })
                if func.inner().is::<TrinoScalar>() =>
            {
                let Some(trino) = func.inner().downcast_ref::<TrinoScalar>() else {
                    unreachable!("checked by the guard")
                };
                Ok(Transformed::yes(trino.rewrite.apply(args, schema, config)?))
            }
            Expr::AggregateFunction(AggregateFunction { func, params })
                if func.inner().is::<TrinoAggregate>() =>
            {
                let Some(trino) = func.inner().downcast_ref::<TrinoAggregate>() else {
                    unreachable!("checked by the guard")
                };
                if params.distinct || !params.order_by.is_empty() {
                    return plan_err!("{} takes neither DISTINCT nor ORDER BY", trino.name);
                }
                let mut rewritten = trino.rewrite.apply(params.args, schema, config)?;
                if let Some(filter) = params.filter {
                    rewritten = with_filter(rewritten, *filter)?;
                }
                Ok(Transformed::yes(rewritten))
            }
            expr => Ok(Transformed::no(expr)),
        }
    }
}

/// `aggregate` with `filter` added to its own (`FILTER (WHERE …)` on a Trino aggregate).
fn with_filter(aggregate: Expr, filter: Expr) -> Result<Expr> {
    match aggregate {
        Expr::AggregateFunction(mut f) => {
            f.params.filter = Some(Box::new(match f.params.filter.take() {
                Some(own) => own.and(filter),
                None => filter,
            }));
            Ok(Expr::AggregateFunction(f))
        }
        Expr::ScalarFunction(mut f) => {
            // exp(avg(ln(x))): the filter goes on the aggregate inside.
            let inner = f.args.remove(0);
            f.args.insert(0, with_filter(inner, filter)?);
            Ok(Expr::ScalarFunction(f))
        }
        other => plan_err!("FILTER on {other} is not supported"),
    }
}

/// `CASE WHEN … THEN … ELSE otherwise END`, its types left to DataFusion's coercion (the
/// rewrite runs before it).
fn case_when(branches: Vec<(Expr, Expr)>, otherwise: Expr) -> Expr {
    Expr::Case(Case::new(
        None,
        branches
            .into_iter()
            .map(|(when, then)| (Box::new(when), Box::new(then)))
            .collect(),
        Some(Box::new(otherwise)),
    ))
}

/// Each argument, by position.
fn take<const N: usize>(args: Vec<Expr>) -> [Expr; N] {
    let mut args = args.into_iter();
    std::array::from_fn(|_| args.next().unwrap_or(lit(ScalarValue::Null)))
}

/// A constant string argument (a unit, a format), lower-cased where `lower`.
fn constant_text(name: &str, what: &str, expr: &Expr) -> Result<String> {
    match expr {
        Expr::Literal(value, _) => match value.try_as_str() {
            Some(Some(text)) => Ok(text.to_owned()),
            _ => plan_err!("{name}: the {what} must be a string, got {value}"),
        },
        Expr::Cast(c) => constant_text(name, what, &c.expr),
        Expr::Alias(a) => constant_text(name, what, &a.expr),
        other => plan_err!("{name}: the {what} must be a constant string, got {other}"),
    }
}

fn bigint(_: &[DataType]) -> DataType {
    DataType::Int64
}

fn double(_: &[DataType]) -> DataType {
    DataType::Float64
}

fn boolean(_: &[DataType]) -> DataType {
    DataType::Boolean
}

fn varchar(_: &[DataType]) -> DataType {
    DataType::Utf8
}

fn first(types: &[DataType]) -> DataType {
    types.first().cloned().unwrap_or(DataType::Null)
}

fn third(types: &[DataType]) -> DataType {
    types.get(2).cloned().unwrap_or(DataType::Null)
}

fn timestamp_millis(_: &[DataType]) -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

fn scalars() -> Vec<TrinoScalar> {
    let mut all = vec![
        TrinoScalar::new(
            "if",
            "condition, true_value[, false_value]",
            2..=3,
            |t| {
                let values: Vec<DataType> = t.iter().skip(1).cloned().collect();
                type_union_resolution(&values).unwrap_or_else(|| first(&values))
            },
            |args, _, _| {
                let (condition, then) = (args[0].clone(), args[1].clone());
                let otherwise = args.get(2).cloned().unwrap_or(lit(ScalarValue::Null));
                Ok(case_when(vec![(condition, then)], otherwise))
            },
        ),
        TrinoScalar::new("typeof", "value", 1..=1, varchar, |args, schema, _| {
            let [value] = take(args);
            Ok(lit(crate::flight_sql::trino_type_name(
                &value.get_type(schema)?,
            )))
        }),
        TrinoScalar::new(
            "split",
            "string, delimiter",
            2..=2,
            split_type,
            |args, _, _| {
                let [string, delimiter] = take(args);
                Ok(datafusion::functions_nested::string::string_to_array_udf()
                    .call(vec![string, delimiter]))
            },
        ),
        TrinoScalar::new(
            "contains",
            "array_or_string, element",
            2..=2,
            boolean,
            |args, schema, _| {
                let [container, element] = take(args);
                Ok(match container.get_type(schema)? {
                    DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
                        datafusion::functions_nested::array_has::array_has_udf()
                            .call(vec![container, element])
                    }
                    _ => datafusion::functions::string::contains().call(vec![container, element]),
                })
            },
        ),
        TrinoScalar::new(
            "sequence",
            "start, stop[, step]",
            2..=3,
            sequence_type,
            |args, _, _| Ok(datafusion::functions_nested::range::gen_series_udf().call(args)),
        ),
        TrinoScalar::new(
            "regexp_extract",
            "string, pattern[, group]",
            2..=3,
            varchar,
            |args, _, _| {
                let group = args.get(2).cloned().unwrap_or(lit(0_i64));
                let [string, pattern] = take(args);
                // The whole match is the first group of the pattern in parentheses.
                let pattern =
                    datafusion::functions::string::concat().call(vec![lit("("), pattern, lit(")")]);
                let groups =
                    datafusion::functions::regex::regexp_match().call(vec![string, pattern]);
                Ok(datafusion::functions_nested::extract::array_element_udf()
                    .call(vec![groups, cast(group, DataType::Int64) + lit(1_i64)]))
            },
        ),
        TrinoScalar::new(
            "levenshtein_distance",
            "string1, string2",
            2..=2,
            bigint,
            |args, _, _| {
                Ok(cast(
                    datafusion::functions::string::levenshtein().call(args),
                    DataType::Int64,
                ))
            },
        ),
        TrinoScalar::new("truncate", "x", 1..=1, first, |args, _, _| {
            Ok(datafusion::functions::math::trunc().call(args))
        }),
        TrinoScalar::new(
            "codepoint",
            "character",
            1..=1,
            |_| DataType::Int32,
            |args, _, _| Ok(datafusion::functions::string::ascii().call(args)),
        ),
        TrinoScalar::new("is_nan", "x", 1..=1, boolean, |args, _, _| {
            Ok(datafusion::functions::math::isnan().call(args))
        }),
        TrinoScalar::new("is_finite", "x", 1..=1, boolean, |args, _, _| {
            let [x] = take(args);
            let x = cast(x, DataType::Float64);
            Ok(x.clone()
                .lt(lit(f64::INFINITY))
                .and(x.clone().gt(lit(f64::NEG_INFINITY)))
                .and(Expr::Not(Box::new(
                    datafusion::functions::math::isnan().call(vec![x]),
                ))))
        }),
        TrinoScalar::new("is_infinite", "x", 1..=1, boolean, |args, _, _| {
            let [x] = take(args);
            let x = cast(x, DataType::Float64);
            Ok(x.clone()
                .eq(lit(f64::INFINITY))
                .or(x.eq(lit(f64::NEG_INFINITY))))
        }),
        TrinoScalar::new("infinity", "", 0..=0, double, |_, _, _| {
            Ok(lit(f64::INFINITY))
        }),
        TrinoScalar::new("nan", "", 0..=0, double, |_, _, _| Ok(lit(f64::NAN))),
        TrinoScalar::new("e", "", 0..=0, double, |_, _, _| {
            Ok(lit(std::f64::consts::E))
        }),
        TrinoScalar::new(
            "to_utf8",
            "string",
            1..=1,
            |_| DataType::Binary,
            |args, _, _| {
                let [string] = take(args);
                Ok(cast(string, DataType::Binary))
            },
        ),
        TrinoScalar::new("from_utf8", "binary", 1..=1, varchar, |args, _, _| {
            let [binary] = take(args);
            Ok(cast(binary, DataType::Utf8))
        }),
    ];
    all.extend(datetime::scalars());
    all
}

fn split_type(_: &[DataType]) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

fn sequence_type(types: &[DataType]) -> DataType {
    let element = match first(types) {
        DataType::Date32 | DataType::Date64 => DataType::Date32,
        DataType::Timestamp(unit, tz) => DataType::Timestamp(unit, tz),
        _ => DataType::Int64,
    };
    DataType::List(Arc::new(Field::new_list_field(element, true)))
}

fn aggregates() -> Vec<TrinoAggregate> {
    use datafusion::functions_aggregate as agg;
    vec![
        TrinoAggregate::new("count_if", "condition", 1, bigint, |args, _, _| {
            let [condition] = take(args);
            let counted = case_when(vec![(condition, lit(1_i64))], lit(ScalarValue::Null));
            Ok(agg::count::count_udaf().call(vec![counted]))
        }),
        TrinoAggregate::new("arbitrary", "x", 1, first, |args, _, _| {
            Ok(agg::any_value::any_value_udaf().call(args))
        }),
        TrinoAggregate::new("every", "condition", 1, boolean, |args, _, _| {
            Ok(agg::bool_and_or::bool_and_udaf().call(args))
        }),
        TrinoAggregate::new("max_by", "x, y", 2, first, |args, _, _| by(args, false)),
        TrinoAggregate::new("min_by", "x, y", 2, first, |args, _, _| by(args, true)),
        TrinoAggregate::new(
            "approx_percentile",
            "x, percentage",
            2,
            first,
            |args, schema, _| {
                let x_type = args[0].get_type(schema)?;
                let percentile =
                    agg::approx_percentile_cont::approx_percentile_cont_udaf().call(args);
                // Of integers an integer, rounded as Trino rounds the digest's value.
                Ok(if x_type.is_integer() {
                    cast(
                        datafusion::functions::math::round()
                            .call(vec![cast(percentile, DataType::Float64)]),
                        x_type,
                    )
                } else {
                    percentile
                })
            },
        ),
        TrinoAggregate::new("geometric_mean", "x", 1, double, |args, _, _| {
            let [x] = take(args);
            let logs = datafusion::functions::math::ln().call(vec![cast(x, DataType::Float64)]);
            Ok(datafusion::functions::math::exp()
                .call(vec![agg::average::avg_udaf().call(vec![logs])]))
        }),
    ]
}

/// `max_by(x, y)` / `min_by(x, y)`: `x` of the row with the largest / smallest `y`, rows
/// whose `y` is NULL left out.
fn by(args: Vec<Expr>, ascending: bool) -> Result<Expr> {
    let [x, y] = take(args);
    datafusion::functions_aggregate::first_last::first_value_udaf()
        .call(vec![x])
        .order_by(vec![SortExpr::new(y.clone(), ascending, false)])
        .filter(y.is_not_null())
        .build()
}

#[cfg(test)]
mod tests;
