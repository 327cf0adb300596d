//! Converting decoded values to column types, with Trino's rules: numbers from numbers or
//! numeric text (in range, or the message is corrupt), dates and times by `dataFormat`.

use std::borrow::Cow;

use super::datetime::DateFormat;
use super::{Corrupt, DataFormat, Raw, Value};
use crate::types::ColumnType;

/// How one field's value becomes its column's value.
#[derive(Debug, Clone)]
pub struct Conversion {
    ty: ColumnType,
    dates: DateFormat,
}

impl Conversion {
    /// The conversion to `ty`, with the field's `dataFormat` and `formatHint`.
    pub fn new(
        ty: ColumnType,
        data_format: Option<&str>,
        format_hint: Option<&str>,
        decoder: DataFormat,
    ) -> Result<Self, String> {
        let dates = if ty.is_temporal() {
            DateFormat::parse(data_format, format_hint, ty)?
        } else {
            if decoder != DataFormat::Raw
                && let Some(f) = data_format
            {
                return Err(format!(
                    "dataFormat '{f}' applies to date and time types only, not {ty}"
                ));
            }
            DateFormat::Iso8601
        };
        Ok(Self { ty, dates })
    }

    /// Converts one value; `Err` = the message is corrupt.
    pub fn convert<'a>(&self, raw: Raw<'a>) -> Result<Value<'a>, Corrupt> {
        if raw == Raw::Null {
            return Ok(Value::Null);
        }
        match self.ty {
            ColumnType::Boolean => match raw {
                Raw::Bool(b) => Ok(Value::Bool(b)),
                Raw::Int(i) => Ok(Value::Bool(i != 0)),
                Raw::Text(t) if t.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
                Raw::Text(t) if t.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
                _ => Err(Corrupt),
            },
            ColumnType::TinyInt => integer(raw, i8::MIN.into(), i8::MAX.into()),
            ColumnType::SmallInt => integer(raw, i16::MIN.into(), i16::MAX.into()),
            ColumnType::Integer => integer(raw, i32::MIN.into(), i32::MAX.into()),
            ColumnType::BigInt => integer(raw, i64::MIN, i64::MAX),
            ColumnType::Real | ColumnType::Double => match raw {
                Raw::Int(i) => Ok(Value::Float(i as f64)),
                Raw::UInt(u) => Ok(Value::Float(u as f64)),
                Raw::Float(f) => Ok(Value::Float(f)),
                Raw::Text(t) => t.trim().parse().map(Value::Float).map_err(|_| Corrupt),
                _ => Err(Corrupt),
            },
            ColumnType::Decimal(p, s) => {
                let text = match raw {
                    Raw::Int(i) => i.to_string(),
                    Raw::UInt(u) => u.to_string(),
                    Raw::Float(f) => f.to_string(),
                    Raw::Text(t) => t.trim().to_owned(),
                    _ => return Err(Corrupt),
                };
                parse_decimal(&text, p, s)
                    .map(Value::Decimal)
                    .ok_or(Corrupt)
            }
            ColumnType::Varchar => match raw {
                Raw::Text(t) => Ok(Value::Text(t)),
                Raw::Bytes(b) => std::str::from_utf8(b)
                    .map(|s| Value::Text(Cow::Borrowed(s)))
                    .map_err(|_| Corrupt),
                Raw::Bool(b) => Ok(Value::Text(Cow::Owned(b.to_string()))),
                Raw::Int(i) => Ok(Value::Text(Cow::Owned(i.to_string()))),
                Raw::UInt(u) => Ok(Value::Text(Cow::Owned(u.to_string()))),
                Raw::Float(f) => Ok(Value::Text(Cow::Owned(f.to_string()))),
                Raw::Json(j) => Ok(Value::Text(Cow::Owned(j))),
                Raw::ByteVec(b) => String::from_utf8(b)
                    .map(|s| Value::Text(Cow::Owned(s)))
                    .map_err(|_| Corrupt),
                Raw::Null => Ok(Value::Null),
            },
            ColumnType::Varbinary => match raw {
                Raw::Bytes(b) => Ok(Value::Bytes(Cow::Borrowed(b))),
                Raw::ByteVec(b) => Ok(Value::Bytes(Cow::Owned(b))),
                Raw::Text(Cow::Borrowed(t)) => Ok(Value::Bytes(Cow::Borrowed(t.as_bytes()))),
                Raw::Text(Cow::Owned(t)) => Ok(Value::Bytes(Cow::Owned(t.into_bytes()))),
                _ => Err(Corrupt),
            },
            ColumnType::Date
            | ColumnType::Time
            | ColumnType::Timestamp { .. }
            | ColumnType::TimestampTz { .. } => self.dates.convert(raw, self.ty).map(Value::Int),
        }
    }
}

fn integer<'a>(raw: Raw<'_>, min: i64, max: i64) -> Result<Value<'a>, Corrupt> {
    let v = match raw {
        Raw::Int(i) => i,
        Raw::Float(f) if f.fract() == 0.0 && f >= min as f64 && f <= max as f64 => f as i64,
        Raw::Text(t) => t.trim().parse::<i64>().map_err(|_| Corrupt)?,
        _ => return Err(Corrupt),
    };
    if v < min || v > max {
        return Err(Corrupt);
    }
    Ok(Value::Int(v))
}

/// `12.345` at scale 2 → 1235 (half up), checked against the precision.
pub(crate) fn parse_decimal(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match digits.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (digits, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let all: String = format!("{int_part}{frac_part}");
    // value = all × 10^(exponent − frac_len); we want value × 10^scale.
    let shift = i32::from(scale) + exponent - frac_part.len() as i32;
    let mut unscaled: i128 = 0;
    let mut round_up = false;
    let keep = if shift >= 0 {
        all.len()
    } else {
        all.len().saturating_sub((-shift) as usize)
    };
    for (i, b) in all.bytes().enumerate() {
        if i < keep {
            unscaled = unscaled
                .checked_mul(10)?
                .checked_add(i128::from(b - b'0'))?;
        } else if i == keep {
            round_up = b >= b'5';
        }
    }
    if shift > 0 {
        unscaled = unscaled.checked_mul(10_i128.checked_pow(shift as u32)?)?;
    }
    if round_up {
        unscaled += 1;
    }
    if unscaled >= 10_i128.pow(u32::from(precision)) {
        return None;
    }
    Some(if negative { -unscaled } else { unscaled })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal("12.34", 10, 2), Some(1234));
        assert_eq!(parse_decimal("12.345", 10, 2), Some(1235));
        assert_eq!(parse_decimal("-0.5", 10, 0), Some(-1));
        assert_eq!(parse_decimal("7", 10, 2), Some(700));
        assert_eq!(parse_decimal("1.5e2", 10, 2), Some(15000));
        assert_eq!(parse_decimal("123456789", 5, 2), None);
        assert_eq!(parse_decimal("abc", 5, 2), None);
    }
}
