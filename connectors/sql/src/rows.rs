//! Driver rows → Arrow record batches, one builder per column, decoded by [`ReadAs`].

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    ListBuilder, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
    make_builder,
};
use arrow::datatypes::{Decimal128Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use rust_decimal::Decimal;

use crate::types::ReadAs;

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Builds the batches of one query, column by column.
pub(crate) struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<(ReadAs, Box<dyn ArrayBuilder>)>,
    rows: usize,
}

impl BatchBuilder {
    pub(crate) fn new(schema: SchemaRef, read_as: &[ReadAs], capacity: usize) -> Self {
        let columns = read_as
            .iter()
            .zip(schema.fields())
            .map(|(r, f)| (r.clone(), make_builder(f.data_type(), capacity)))
            .collect();
        Self {
            schema,
            columns,
            rows: 0,
        }
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn columns_mut(&mut self) -> &mut [(ReadAs, Box<dyn ArrayBuilder>)] {
        &mut self.columns
    }

    pub(crate) fn field_name(&self, i: usize) -> &str {
        self.schema.field(i).name()
    }

    pub(crate) fn row_added(&mut self) {
        self.rows += 1;
    }

    pub(crate) fn finish(&mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(|(_, b)| b.finish()).collect();
        let rows = std::mem::take(&mut self.rows);
        RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            arrays,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
    }
}

fn get<B: 'static>(builder: &mut Box<dyn ArrayBuilder>) -> &mut B {
    #[expect(
        clippy::unwrap_used,
        reason = "builders are made from the same ReadAs list"
    )]
    builder.as_any_mut().downcast_mut::<B>().unwrap()
}

pub(crate) fn days(date: NaiveDate) -> i32 {
    use chrono::Datelike;
    date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

pub(crate) fn micros_of_day(time: NaiveTime) -> i64 {
    i64::from(time.num_seconds_from_midnight()) * 1_000_000 + i64::from(time.nanosecond() / 1000)
}

pub(crate) fn micros(ts: NaiveDateTime) -> i64 {
    ts.and_utc().timestamp_micros()
}

pub(crate) fn micros_tz(ts: DateTime<Utc>) -> i64 {
    ts.timestamp_micros()
}

pub(crate) fn decimal_value(d: Decimal, scale: i8) -> Result<i128, String> {
    let mut d = d;
    d.rescale(u32::try_from(scale).unwrap_or(0));
    if d.scale() != u32::try_from(scale).unwrap_or(0) {
        return Err(format!("decimal {d} does not fit scale {scale}"));
    }
    Ok(d.mantissa())
}

pub(crate) fn decimal_text(text: &str, precision: u8, scale: i8) -> Result<i128, String> {
    arrow::compute::kernels::cast_utils::parse_decimal::<Decimal128Type>(
        text.trim(),
        precision,
        scale,
    )
    .map_err(|e| format!("decimal '{text}' does not fit DECIMAL({precision},{scale}): {e}"))
}

type Cell<T> = Result<Option<T>, String>;

/// Typed access to the cells of one driver row. The common decoders are the same call for
/// every database ([`decode_common`]); unsigned integers (MySQL), exact decimals (MySQL,
/// PostgreSQL) and arrays (PostgreSQL) exist only where the driver offers them.
pub(crate) trait DecodeRow {
    fn bool(&self, i: usize) -> Cell<bool>;
    fn i8(&self, i: usize) -> Cell<i8>;
    fn i16(&self, i: usize) -> Cell<i16>;
    fn i32(&self, i: usize) -> Cell<i32>;
    fn i64(&self, i: usize) -> Cell<i64>;
    fn f32(&self, i: usize) -> Cell<f32>;
    fn f64(&self, i: usize) -> Cell<f64>;
    /// Borrowed from the row: no allocation per cell.
    fn text(&self, i: usize) -> Cell<&str>;
    fn bytes(&self, i: usize) -> Cell<&[u8]>;
    fn date(&self, i: usize) -> Cell<NaiveDate>;
    fn time(&self, i: usize) -> Cell<NaiveTime>;
    fn timestamp(&self, i: usize) -> Cell<NaiveDateTime>;
    fn timestamp_tz(&self, i: usize) -> Cell<DateTime<Utc>>;
    fn unsigned(&self, i: usize) -> Cell<u64> {
        let _ = i;
        Err("unsigned integers are not read from this database".into())
    }
    fn decimal(&self, i: usize) -> Cell<Decimal> {
        let _ = i;
        Err("exact decimals are not read from this database".into())
    }
    /// An exact decimal as an integer at `scale`.
    fn decimal_at(&self, i: usize, precision: u8, scale: i8) -> Cell<i128> {
        let _ = precision;
        self.decimal(i)?
            .map(|d| decimal_value(d, scale))
            .transpose()
    }
    /// Appends the array in cell `i` to a list builder.
    fn array(
        &self,
        i: usize,
        element: &ReadAs,
        builder: &mut Box<dyn ArrayBuilder>,
    ) -> Result<(), String> {
        let _ = (i, element, builder);
        Err("arrays are not read from this database".into())
    }
}

/// Implements the common decoders of [`DecodeRow`] with `sqlx::Row::try_get`.
macro_rules! decode_common {
    () => {
        fn bool(&self, i: usize) -> $crate::rows::Cell<bool> {
            sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
        }
        fn i8(&self, i: usize) -> $crate::rows::Cell<i8> {
            sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
        }
        fn i16(&self, i: usize) -> $crate::rows::Cell<i16> {
            sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
        }
        fn i32(&self, i: usize) -> $crate::rows::Cell<i32> {
            sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
        }
        fn i64(&self, i: usize) -> $crate::rows::Cell<i64> {
            sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
        }
        fn f32(&self, i: usize) -> $crate::rows::Cell<f32> {
            sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
        }
        fn f64(&self, i: usize) -> $crate::rows::Cell<f64> {
            sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
        }
        fn text(&self, i: usize) -> $crate::rows::Cell<&str> {
            sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
        }
        fn bytes(&self, i: usize) -> $crate::rows::Cell<&[u8]> {
            sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
        }
        fn date(&self, i: usize) -> $crate::rows::Cell<chrono::NaiveDate> {
            sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
        }
        fn time(&self, i: usize) -> $crate::rows::Cell<chrono::NaiveTime> {
            sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
        }
        fn timestamp(&self, i: usize) -> $crate::rows::Cell<chrono::NaiveDateTime> {
            sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
        }
        fn timestamp_tz(&self, i: usize) -> $crate::rows::Cell<chrono::DateTime<chrono::Utc>> {
            sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
        }
    };
}

impl DecodeRow for sqlx::mysql::MySqlRow {
    decode_common!();
    fn unsigned(&self, i: usize) -> Cell<u64> {
        sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
    }
    fn decimal(&self, i: usize) -> Cell<Decimal> {
        sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
    }
    /// MySQL sends DECIMAL as its text even in the binary protocol: parse it straight to
    /// the integer (the column type was checked when the table was mapped).
    fn decimal_at(&self, i: usize, precision: u8, scale: i8) -> Cell<i128> {
        let text: Option<&str> =
            sqlx::Row::try_get_unchecked(self, i).map_err(|e| e.to_string())?;
        text.map(|t| decimal_text(t, precision, scale)).transpose()
    }
}

impl DecodeRow for sqlx::sqlite::SqliteRow {
    decode_common!();
}

impl DecodeRow for sqlx::postgres::PgRow {
    decode_common!();
    fn decimal(&self, i: usize) -> Cell<Decimal> {
        sqlx::Row::try_get(self, i).map_err(|e| e.to_string())
    }
    fn array(
        &self,
        i: usize,
        element: &ReadAs,
        b: &mut Box<dyn ArrayBuilder>,
    ) -> Result<(), String> {
        fn put<T, B: 'static>(
            b: &mut Box<dyn ArrayBuilder>,
            values: Option<Vec<Option<T>>>,
            push: impl Fn(&mut B, Option<T>),
        ) {
            let valid = values.is_some();
            {
                let (child, _) = list_values::<B>(b);
                for v in values.into_iter().flatten() {
                    push(child, v);
                }
            }
            list_end(b, valid);
        }
        let e = |err: sqlx::Error| err.to_string();
        use sqlx::Row as _;
        match element {
            ReadAs::Bool => put::<bool, BooleanBuilder>(b, self.try_get(i).map_err(e)?, |c, v| {
                c.append_option(v)
            }),
            ReadAs::I16 => {
                put::<i16, Int16Builder>(b, self.try_get(i).map_err(e)?, |c, v| c.append_option(v))
            }
            ReadAs::I32 => {
                put::<i32, Int32Builder>(b, self.try_get(i).map_err(e)?, |c, v| c.append_option(v))
            }
            ReadAs::I64 => {
                put::<i64, Int64Builder>(b, self.try_get(i).map_err(e)?, |c, v| c.append_option(v))
            }
            ReadAs::F32 => put::<f32, Float32Builder>(b, self.try_get(i).map_err(e)?, |c, v| {
                c.append_option(v)
            }),
            ReadAs::F64 => put::<f64, Float64Builder>(b, self.try_get(i).map_err(e)?, |c, v| {
                c.append_option(v)
            }),
            ReadAs::Text => put::<String, StringBuilder>(b, self.try_get(i).map_err(e)?, |c, v| {
                c.append_option(v)
            }),
            other => return Err(format!("arrays of {other:?} are not read")),
        }
        Ok(())
    }
}

impl BatchBuilder {
    /// Appends one row; on error names the column.
    pub(crate) fn append<R: DecodeRow>(&mut self, row: &R) -> Result<(), String> {
        for (i, (read_as, b)) in self.columns.iter_mut().enumerate() {
            append_cell(row, i, read_as, b)
                .map_err(|message| format!("column {}: {message}", self.schema.field(i).name()))?;
        }
        self.rows += 1;
        Ok(())
    }
}

fn append_cell<R: DecodeRow>(
    row: &R,
    i: usize,
    read_as: &ReadAs,
    b: &mut Box<dyn ArrayBuilder>,
) -> Result<(), String> {
    match read_as {
        ReadAs::Bool => get::<BooleanBuilder>(b).append_option(row.bool(i)?),
        ReadAs::I8 => get::<Int8Builder>(b).append_option(row.i8(i)?),
        ReadAs::I16 => get::<Int16Builder>(b).append_option(row.i16(i)?),
        ReadAs::I32 => get::<Int32Builder>(b).append_option(row.i32(i)?),
        ReadAs::I64 => get::<Int64Builder>(b).append_option(row.i64(i)?),
        ReadAs::U8 => get::<Int16Builder>(b).append_option(row.unsigned(i)?.map(|v| v as i16)),
        ReadAs::U16 => get::<Int32Builder>(b).append_option(row.unsigned(i)?.map(|v| v as i32)),
        ReadAs::U32 => get::<Int64Builder>(b).append_option(row.unsigned(i)?.map(|v| v as i64)),
        ReadAs::U64 => get::<Decimal128Builder>(b).append_option(row.unsigned(i)?.map(i128::from)),
        ReadAs::F32 => get::<Float32Builder>(b).append_option(row.f32(i)?),
        ReadAs::F64 => get::<Float64Builder>(b).append_option(row.f64(i)?),
        ReadAs::Decimal { precision, scale } => {
            get::<Decimal128Builder>(b).append_option(row.decimal_at(i, *precision, *scale)?)
        }
        ReadAs::DecimalText { precision, scale } => {
            let v = row
                .text(i)?
                .map(|t| decimal_text(t, *precision, *scale))
                .transpose()?;
            get::<Decimal128Builder>(b).append_option(v)
        }
        ReadAs::Text => get::<StringBuilder>(b).append_option(row.text(i)?),
        ReadAs::Bytes => get::<BinaryBuilder>(b).append_option(row.bytes(i)?),
        ReadAs::Date => get::<Date32Builder>(b).append_option(row.date(i)?.map(days)),
        ReadAs::Time => {
            get::<Time64MicrosecondBuilder>(b).append_option(row.time(i)?.map(micros_of_day))
        }
        ReadAs::Timestamp => {
            get::<TimestampMicrosecondBuilder>(b).append_option(row.timestamp(i)?.map(micros))
        }
        ReadAs::TimestampTz => {
            get::<TimestampMicrosecondBuilder>(b).append_option(row.timestamp_tz(i)?.map(micros_tz))
        }
        ReadAs::Array(element) => row.array(i, element, b)?,
    }
    Ok(())
}

/// A list builder's child, downcast.
pub(crate) fn list_values<B: 'static>(b: &mut Box<dyn ArrayBuilder>) -> (&mut B, bool) {
    let list = get::<ListBuilder<Box<dyn ArrayBuilder>>>(b);
    let values = list.values();
    #[expect(
        clippy::unwrap_used,
        reason = "the child builder is made from the same ReadAs"
    )]
    (values.as_any_mut().downcast_mut::<B>().unwrap(), true)
}

pub(crate) fn list_end(b: &mut Box<dyn ArrayBuilder>, valid: bool) {
    get::<ListBuilder<Box<dyn ArrayBuilder>>>(b).append(valid);
}
