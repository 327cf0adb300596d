//! Files and partitions of a table: listing the table's location, reading `key=value`
//! directories into typed partition values, and pruning partitions with the query's filters,
//! including date filters on the column the `year`/`month`/`day` directories derive from.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{Datelike, NaiveDate};
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};

use crate::error::{HiveError, Result};
use crate::storage::Location;

/// Hive's name for a NULL partition value.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// One partition directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    /// `year=2025/month=9` (empty for files outside any partition directory).
    pub dir: String,
    /// Every `key=value` of the directory, unescaped, in path order.
    pub keys: Vec<(String, Option<String>)>,
    /// Typed values of the table's declared partition columns, in their order.
    pub values: Vec<ScalarValue>,
}

/// A data file and its partition.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// The object.
    pub meta: ObjectMeta,
    /// Index into [`Listing::partitions`].
    pub partition: usize,
}

/// What a table's location holds.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Distinct partitions, in path order.
    pub partitions: Vec<Partition>,
    /// Data files.
    pub files: Vec<DataFile>,
}

/// Which files to read.
pub struct ListRequest<'a> {
    /// Qualified table name, for messages.
    pub table: &'a str,
    /// The table's location.
    pub location: &'a Location,
    /// Declared partition columns.
    pub partition_fields: &'a [Arc<Field>],
    /// Files of writes not yet committed start with one of these prefixes.
    pub pending: &'a [String],
}

/// Lists a table's data files (hidden `.`/`_` files and directories, empty objects and
/// uncommitted writes left out) with their partitions.
pub async fn list(store: &Arc<dyn ObjectStore>, request: &ListRequest<'_>) -> Result<Listing> {
    let location = request.location;
    let objects: Vec<ObjectMeta> = store
        .list(Some(&location.path))
        .try_collect()
        .await
        .map_err(|e| {
            HiveError::storage(
                format!("table {}: cannot list {location}", request.table),
                &e,
            )
        })?;
    let prefix_parts = location.path.parts().count();
    let mut listing = Listing::default();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for meta in objects {
        let parts: Vec<String> = meta
            .location
            .parts()
            .skip(prefix_parts)
            .map(|p| p.as_ref().to_owned())
            .collect();
        let Some((name, dirs)) = parts.split_last() else {
            continue;
        };
        if meta.size == 0
            || parts
                .iter()
                .any(|p| p.starts_with('.') || p.starts_with('_'))
            || request
                .pending
                .iter()
                .any(|id| name.starts_with(&format!("{id}_")))
        {
            continue;
        }
        let dir = dirs.join("/");
        let partition = match index.get(&dir) {
            Some(&i) => i,
            None => {
                let partition = parse_partition(request, &dir, dirs, &meta.location)?;
                listing.partitions.push(partition);
                index.insert(dir, listing.partitions.len() - 1);
                listing.partitions.len() - 1
            }
        };
        listing.files.push(DataFile { meta, partition });
    }
    Ok(listing)
}

fn parse_partition(
    request: &ListRequest<'_>,
    dir: &str,
    dirs: &[String],
    file: &Path,
) -> Result<Partition> {
    let keys: Vec<(String, Option<String>)> = dirs
        .iter()
        .filter_map(|d| d.split_once('='))
        .map(|(k, v)| {
            let v = unescape(v);
            (
                unescape(k).to_ascii_lowercase(),
                (v != NULL_PARTITION).then_some(v),
            )
        })
        .collect();
    let mut values = Vec::with_capacity(request.partition_fields.len());
    for field in request.partition_fields {
        let Some((_, raw)) = keys.iter().find(|(k, _)| k == field.name()) else {
            return Err(HiveError::BadData {
                table: request.table.to_owned(),
                message: format!(
                    "file {} is not inside a '{}=…' partition directory",
                    request.location.display_path(file),
                    field.name()
                ),
            });
        };
        let value = match raw {
            None => ScalarValue::try_from(field.data_type()).map_err(|e| HiveError::BadData {
                table: request.table.to_owned(),
                message: e.to_string(),
            })?,
            Some(text) => partition_value(text, field.data_type()).ok_or_else(|| HiveError::BadData {
                table: request.table.to_owned(),
                message: format!(
                    "partition directory '{}={text}' ({}) holds a value that is not of the partition column's type {}",
                    field.name(),
                    request.location.display_path(&Path::from(format!("{}/{dir}", request.location.path))),
                    crate::types::hive_type(field.data_type()).unwrap_or_else(|| field.data_type().to_string()),
                ),
            })?,
        };
        values.push(value);
    }
    Ok(Partition {
        dir: dir.to_owned(),
        keys,
        values,
    })
}

fn partition_value(text: &str, data_type: &DataType) -> Option<ScalarValue> {
    let value = ScalarValue::try_from_string(text.trim().to_owned(), data_type).ok()?;
    (!value.is_null()).then_some(value)
}

/// Hive's path escaping (`%2F` for `/`, …).
pub fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2)))
        {
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes a partition value for a directory name.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || "\"#%'*/:=?\\\u{7f}{[]^".contains(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Keeps the partitions the filters on declared partition columns can match.
pub fn prune_declared(
    state: &dyn Session,
    partitions: &[Partition],
    fields: &[Arc<Field>],
    filters: &[Expr],
) -> datafusion::error::Result<Vec<bool>> {
    let mut keep = vec![true; partitions.len()];
    if fields.is_empty() || filters.is_empty() || partitions.is_empty() {
        return Ok(keep);
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields.to_vec()));
    let columns: Vec<ArrayRef> = (0..fields.len())
        .map(|i| ScalarValue::iter_to_array(partitions.iter().map(|p| p.values[i].clone())))
        .collect::<datafusion::error::Result<_>>()?;
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let df_schema = DFSchema::try_from(schema)?;
    for filter in filters {
        let expr = state.create_physical_expr(filter.clone(), &df_schema)?;
        let result = expr.evaluate(&batch)?.into_array(batch.num_rows())?;
        let Some(mask) = result.as_any().downcast_ref::<BooleanArray>() else {
            continue;
        };
        for (i, k) in keep.iter_mut().enumerate() {
            *k &= mask.is_valid(i) && mask.value(i);
        }
    }
    Ok(keep)
}

/// How exactly a table with these partition columns answers each filter: filters on
/// partition columns only are decided by the partition values (exact); the rest stay above the
/// scan (and still prune Parquet row groups).
pub fn filter_pushdown(
    filters: &[&Expr],
    partition_fields: &[Arc<Field>],
) -> Vec<datafusion::logical_expr::TableProviderFilterPushDown> {
    use datafusion::logical_expr::TableProviderFilterPushDown;
    let names: Vec<&str> = partition_fields.iter().map(|f| f.name().as_str()).collect();
    filters
        .iter()
        .map(|f| {
            if only_columns(f, &names) {
                TableProviderFilterPushDown::Exact
            } else {
                TableProviderFilterPushDown::Inexact
            }
        })
        .collect()
}

/// Whether a filter references only these columns (so partition values decide it).
pub fn only_columns(filter: &Expr, names: &[&str]) -> bool {
    let columns = filter.column_refs();
    !columns.is_empty() && columns.iter().all(|c| names.contains(&c.name.as_str()))
}

/// Days since 1970-01-01, inclusive at both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    /// First day that can match.
    pub lo: Option<i32>,
    /// Last day that can match.
    pub hi: Option<i32>,
}

/// The days a date or timestamp column can hold under `filters` (comparisons with
/// constants, BETWEEN); `None` if the filters do not bound it.
pub fn day_range(filters: &[Expr], column: &str) -> Option<DayRange> {
    let mut range = DayRange { lo: None, hi: None };
    let mut bounded = false;
    let mut tighten = |lo: Option<i32>, hi: Option<i32>| {
        if let Some(lo) = lo {
            range.lo = Some(range.lo.map_or(lo, |r| r.max(lo)));
            bounded = true;
        }
        if let Some(hi) = hi {
            range.hi = Some(range.hi.map_or(hi, |r| r.min(hi)));
            bounded = true;
        }
    };
    for filter in filters {
        match filter {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, value) = match (is_column(left, column), is_column(right, column)) {
                    (true, false) => (*op, literal_day(right)),
                    (false, true) => (op.swap().unwrap_or(*op), literal_day(left)),
                    _ => continue,
                };
                let Some((day, exact)) = value else { continue };
                match op {
                    Operator::Eq => tighten(Some(day), Some(day)),
                    Operator::Gt if exact => tighten(Some(day + 1), None),
                    Operator::Gt | Operator::GtEq => tighten(Some(day), None),
                    Operator::Lt if exact => tighten(None, Some(day - 1)),
                    Operator::Lt | Operator::LtEq => tighten(None, Some(day)),
                    _ => {}
                }
            }
            Expr::Between(b) if !b.negated && is_column(&b.expr, column) => {
                tighten(
                    literal_day(&b.low).map(|d| d.0),
                    literal_day(&b.high).map(|d| d.0),
                );
            }
            _ => {}
        }
    }
    bounded.then_some(range)
}

fn is_column(expr: &Expr, column: &str) -> bool {
    match expr {
        Expr::Column(c) => c.name == column,
        Expr::Cast(c) => is_column(&c.expr, column),
        Expr::TryCast(c) => is_column(&c.expr, column),
        _ => false,
    }
}

/// A constant's day, and whether the constant is exactly that day (a date, or a timestamp
/// at midnight) — `> day` may then skip the day itself.
fn literal_day(expr: &Expr) -> Option<(i32, bool)> {
    let value = match expr {
        Expr::Literal(v, _) => v.clone(),
        Expr::Cast(c) => {
            return literal_day(&c.expr).filter(|_| {
                matches!(
                    c.field.data_type(),
                    DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
                )
            });
        }
        _ => return None,
    };
    const DAY_MS: i64 = 86_400_000;
    let from_ms = |ms: i64| {
        (
            i32::try_from(ms.div_euclid(DAY_MS)).ok()?,
            Some(ms.rem_euclid(DAY_MS) == 0),
        )
            .into_day()
    };
    match value {
        ScalarValue::Date32(Some(d)) => Some((d, true)),
        ScalarValue::Date64(Some(ms)) => from_ms(ms),
        ScalarValue::TimestampSecond(Some(v), _) => from_ms(v.checked_mul(1000)?),
        ScalarValue::TimestampMillisecond(Some(v), _) => from_ms(v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => (
            i32::try_from(v.div_euclid(86_400_000_000)).ok()?,
            Some(v.rem_euclid(86_400_000_000) == 0),
        )
            .into_day(),
        ScalarValue::TimestampNanosecond(Some(v), _) => (
            i32::try_from(v.div_euclid(86_400_000_000_000)).ok()?,
            Some(v.rem_euclid(86_400_000_000_000) == 0),
        )
            .into_day(),
        ScalarValue::Utf8(Some(s)) => NaiveDate::parse_from_str(&s, "%Y-%m-%d")
            .ok()
            .map(|d| (days(d), true)),
        _ => None,
    }
}

trait IntoDay {
    fn into_day(self) -> Option<(i32, bool)>;
}

impl IntoDay for (i32, Option<bool>) {
    fn into_day(self) -> Option<(i32, bool)> {
        Some((self.0, self.1?))
    }
}

fn days(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - 719_163
}

/// The days a partition's `year`/`month`/`day` (or `date`/`dt`) keys cover, if it has them.
pub fn partition_days(partition: &Partition) -> Option<DayRange> {
    let key = |names: &[&str]| {
        partition
            .keys
            .iter()
            .find(|(k, _)| names.contains(&k.as_str()))
            .and_then(|(_, v)| v.as_deref())
    };
    if let Some(date) =
        key(&["date", "dt", "day_date"]).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    {
        let d = days(date);
        return Some(DayRange {
            lo: Some(d),
            hi: Some(d),
        });
    }
    let year: i32 = key(&["year", "yr"])?.trim().parse().ok()?;
    let month: Option<u32> = key(&["month", "mon", "mm"]).and_then(|m| m.trim().parse().ok());
    let day: Option<u32> = key(&["day", "dd"]).and_then(|d| d.trim().parse().ok());
    let (first, last) = match (month, day) {
        (Some(m), Some(d)) => {
            let date = NaiveDate::from_ymd_opt(year, m, d)?;
            (date, date)
        }
        (Some(m), None) => {
            let first = NaiveDate::from_ymd_opt(year, m, 1)?;
            let next = if m == 12 {
                NaiveDate::from_ymd_opt(year + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(year, m + 1, 1)?
            };
            (first, next.pred_opt()?)
        }
        _ => (
            NaiveDate::from_ymd_opt(year, 1, 1)?,
            NaiveDate::from_ymd_opt(year, 12, 31)?,
        ),
    };
    Some(DayRange {
        lo: Some(days(first)),
        hi: Some(days(last)),
    })
}

/// Whether two day ranges overlap.
pub fn overlaps(a: DayRange, b: DayRange) -> bool {
    let lo = match (a.lo, b.lo) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    let hi = match (a.hi, b.hi) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    !matches!((lo, hi), (Some(lo), Some(hi)) if lo > hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn date(s: &str) -> ScalarValue {
        ScalarValue::Date32(Some(days(
            NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default(),
        )))
    }

    #[test]
    fn date_filters_become_day_ranges() {
        let filters = vec![col("order_date").gt_eq(lit(date("2025-09-01")))];
        let range = day_range(&filters, "order_date").unwrap_or(DayRange { lo: None, hi: None });
        let p = |y: &str, m: &str| Partition {
            dir: String::new(),
            keys: vec![
                ("year".into(), Some(y.into())),
                ("month".into(), Some(m.into())),
            ],
            values: vec![],
        };
        let keep = |part: Partition| partition_days(&part).is_some_and(|d| overlaps(d, range));
        assert!(keep(p("2025", "9")));
        assert!(keep(p("2025", "09")));
        assert!(keep(p("2026", "1")));
        assert!(!keep(p("2025", "8")));
        assert!(!keep(p("2024", "12")));
        let filters = vec![
            col("order_date").gt(lit(date("2025-08-31"))),
            col("order_date").lt(lit(date("2025-10-01"))),
        ];
        let range = day_range(&filters, "order_date").unwrap_or(DayRange { lo: None, hi: None });
        let keep = |part: Partition| partition_days(&part).is_some_and(|d| overlaps(d, range));
        assert!(keep(p("2025", "9")));
        assert!(!keep(p("2025", "10")));
        assert!(!keep(p("2025", "8")));
        assert!(day_range(&[col("other").gt(lit(1))], "order_date").is_none());
    }

    #[test]
    fn escapes_round_trip() {
        for s in ["a/b", "x=y", "100%", "plain", "2025-09-01"] {
            assert_eq!(unescape(&escape(s)), s);
        }
    }
}
