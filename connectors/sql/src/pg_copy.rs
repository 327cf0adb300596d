//! PostgreSQL's fastest way out: `COPY (SELECT …) TO STDOUT (FORMAT binary)`, parsed straight
//! into Arrow builders (no per-row driver objects). Used for splits whose SQL has no bound
//! parameters (COPY takes none, and values are never pasted into SQL); the others go through
//! the driver's extended protocol.

use arrow::array::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};

use crate::rows::{BatchBuilder, decimal_text};
use crate::types::ReadAs;

/// `PGCOPY\n\xff\r\n\0`
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Whether every column can be read from binary COPY.
pub(crate) fn supported(read_as: &[ReadAs]) -> bool {
    read_as.iter().all(|r| {
        matches!(
            r,
            ReadAs::Bool
                | ReadAs::I16
                | ReadAs::I32
                | ReadAs::I64
                | ReadAs::F32
                | ReadAs::F64
                | ReadAs::Decimal { .. }
                | ReadAs::DecimalText { .. }
                | ReadAs::Text
                | ReadAs::Bytes
                | ReadAs::Date
                | ReadAs::Time
                | ReadAs::Timestamp
                | ReadAs::TimestampTz
        )
    })
}

/// Incremental parser of a binary COPY stream.
pub(crate) struct CopyParser {
    header_done: bool,
    /// Reused per tuple: (offset, length) of each field in the buffer, length -1 for NULL.
    fields: Vec<(usize, i32)>,
    pub(crate) finished: bool,
}

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

impl CopyParser {
    pub(crate) fn new() -> Self {
        Self {
            header_done: false,
            fields: Vec::new(),
            finished: false,
        }
    }

    /// Parses every complete tuple at the start of `buf` into `builder`; returns how many
    /// bytes were consumed (the rest waits for more data).
    pub(crate) fn parse(
        &mut self,
        buf: &[u8],
        builder: &mut BatchBuilder,
        max_rows: usize,
    ) -> Result<usize, String> {
        let mut pos = 0;
        if !self.header_done {
            if buf.len() < SIGNATURE.len() + 8 {
                return Ok(0);
            }
            if &buf[..SIGNATURE.len()] != SIGNATURE {
                return Err("not a binary COPY stream".into());
            }
            let ext = be_i32(&buf[SIGNATURE.len() + 4..]) as usize;
            let header = SIGNATURE.len() + 8 + ext;
            if buf.len() < header {
                return Ok(0);
            }
            pos = header;
            self.header_done = true;
        }
        while builder.rows() < max_rows {
            if buf.len() < pos + 2 {
                break;
            }
            let count = be_i16(&buf[pos..]);
            if count == -1 {
                self.finished = true;
                pos += 2;
                break;
            }
            let mut p = pos + 2;
            self.fields.clear();
            let mut complete = true;
            for _ in 0..count {
                if buf.len() < p + 4 {
                    complete = false;
                    break;
                }
                let len = be_i32(&buf[p..]);
                p += 4;
                if len >= 0 {
                    if buf.len() < p + len as usize {
                        complete = false;
                        break;
                    }
                    self.fields.push((p, len));
                    p += len as usize;
                } else {
                    self.fields.push((p, -1));
                }
            }
            if !complete {
                break;
            }
            builder.append_binary(buf, &self.fields)?;
            pos = p;
        }
        Ok(pos)
    }
}

/// PostgreSQL's binary NUMERIC → an integer at `scale`.
fn numeric(b: &[u8], scale: i8) -> Result<i128, String> {
    if b.len() < 8 {
        return Err("short numeric".into());
    }
    let ndigits = be_i16(b) as usize;
    let weight = i32::from(be_i16(&b[2..]));
    let sign = be_i16(&b[4..]) as u16;
    if sign == 0xC000 {
        return Err("NaN does not fit a decimal".into());
    }
    if sign == 0xD000 || sign == 0xF000 {
        return Err("infinity does not fit a decimal".into());
    }
    let scale = i32::from(scale);
    let mut value: i128 = 0;
    for i in 0..ndigits {
        let digit = i128::from(be_i16(&b[8 + 2 * i..]));
        // digit i is worth 10000^(weight - i); at `scale` that is 10^(4*(weight-i) + scale).
        let exp = 4 * (weight - i as i32) + scale;
        if exp >= 0 {
            value = value
                .checked_add(
                    digit
                        .checked_mul(10i128.checked_pow(exp as u32).ok_or("decimal overflow")?)
                        .ok_or("decimal overflow")?,
                )
                .ok_or("decimal overflow")?;
        } else if exp > -4 {
            value += digit / 10i128.pow((-exp) as u32);
        }
    }
    Ok(if sign == 0x4000 { -value } else { value })
}

fn get<B: 'static>(builder: &mut Box<dyn ArrayBuilder>) -> &mut B {
    #[expect(
        clippy::unwrap_used,
        reason = "builders are made from the same ReadAs list"
    )]
    builder.as_any_mut().downcast_mut::<B>().unwrap()
}

impl BatchBuilder {
    /// Appends one binary COPY tuple.
    pub(crate) fn append_binary(
        &mut self,
        buf: &[u8],
        fields: &[(usize, i32)],
    ) -> Result<(), String> {
        let width = self.columns_mut().len();
        if fields.len() != width {
            return Err(format!(
                "COPY returned {} columns, expected {width}",
                fields.len()
            ));
        }
        let mut failed = None;
        for (i, ((read_as, b), (offset, len))) in
            self.columns_mut().iter_mut().zip(fields).enumerate()
        {
            let cell = (*len >= 0).then(|| &buf[*offset..*offset + *len as usize]);
            if let Err(e) = append(read_as, b, cell) {
                failed = Some((i, e));
                break;
            }
        }
        if let Some((i, e)) = failed {
            return Err(format!("column {}: {e}", self.field_name(i)));
        }
        self.row_added();
        Ok(())
    }
}

fn append(
    read_as: &ReadAs,
    b: &mut Box<dyn ArrayBuilder>,
    cell: Option<&[u8]>,
) -> Result<(), String> {
    let need = |n: usize, c: &[u8]| {
        if c.len() < n {
            Err(format!("short value ({} bytes)", c.len()))
        } else {
            Ok(())
        }
    };
    match read_as {
        ReadAs::Bool => get::<BooleanBuilder>(b).append_option(cell.map(|c| c.first() == Some(&1))),
        ReadAs::I16 => get::<Int16Builder>(b)
            .append_option(cell.map(|c| need(2, c).map(|()| be_i16(c))).transpose()?),
        ReadAs::I32 => get::<Int32Builder>(b)
            .append_option(cell.map(|c| need(4, c).map(|()| be_i32(c))).transpose()?),
        ReadAs::I64 => get::<Int64Builder>(b)
            .append_option(cell.map(|c| need(8, c).map(|()| be_i64(c))).transpose()?),
        ReadAs::F32 => get::<Float32Builder>(b).append_option(
            cell.map(|c| need(4, c).map(|()| f32::from_bits(be_i32(c) as u32)))
                .transpose()?,
        ),
        ReadAs::F64 => get::<Float64Builder>(b).append_option(
            cell.map(|c| need(8, c).map(|()| f64::from_bits(be_i64(c) as u64)))
                .transpose()?,
        ),
        ReadAs::Decimal { scale, .. } => {
            get::<Decimal128Builder>(b).append_option(cell.map(|c| numeric(c, *scale)).transpose()?)
        }
        ReadAs::DecimalText { precision, scale } => {
            let v = cell
                .map(|c| {
                    std::str::from_utf8(c)
                        .map_err(|e| e.to_string())
                        .and_then(|t| decimal_text(t, *precision, *scale))
                })
                .transpose()?;
            get::<Decimal128Builder>(b).append_option(v)
        }
        ReadAs::Text => {
            let v = cell
                .map(|c| std::str::from_utf8(c).map_err(|e| e.to_string()))
                .transpose()?;
            get::<StringBuilder>(b).append_option(v)
        }
        ReadAs::Bytes => get::<BinaryBuilder>(b).append_option(cell),
        ReadAs::Date => {
            let v = cell
                .map(|c| {
                    need(4, c)?;
                    let days = be_i32(c);
                    if days == i32::MAX || days == i32::MIN {
                        return Err("an infinite date cannot be represented".to_owned());
                    }
                    days.checked_add(PG_EPOCH_DAYS)
                        .ok_or_else(|| "date out of range".to_owned())
                })
                .transpose()?;
            get::<Date32Builder>(b).append_option(v)
        }
        ReadAs::Time => get::<Time64MicrosecondBuilder>(b)
            .append_option(cell.map(|c| need(8, c).map(|()| be_i64(c))).transpose()?),
        ReadAs::Timestamp | ReadAs::TimestampTz => {
            let v = cell
                .map(|c| {
                    need(8, c)?;
                    let micros = be_i64(c);
                    if micros == i64::MAX || micros == i64::MIN {
                        return Err("an infinite timestamp cannot be represented".to_owned());
                    }
                    micros
                        .checked_add(PG_EPOCH_MICROS)
                        .ok_or_else(|| "timestamp out of range".to_owned())
                })
                .transpose()?;
            get::<TimestampMicrosecondBuilder>(b).append_option(v)
        }
        other => return Err(format!("{other:?} is not read through COPY")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&ndigits.to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn decodes_numeric() {
        // 12345678.90 = 1234 5678 . 9000
        assert_eq!(
            numeric(&numeric_bytes(3, 1, 0, 2, &[1234, 5678, 9000]), 2),
            Ok(1_234_567_890)
        );
        // -0.05 = weight -1, digit 500
        assert_eq!(numeric(&numeric_bytes(1, -1, 0x4000, 2, &[500]), 2), Ok(-5));
        assert_eq!(numeric(&numeric_bytes(0, 0, 0, 0, &[]), 2), Ok(0));
        assert!(numeric(&numeric_bytes(0, 0, 0xC000, 0, &[]), 2).is_err());
    }
}
