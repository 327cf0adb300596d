//! Date and time `dataFormat`s of Trino's decoders: `iso8601`, `rfc2822`,
//! `custom-date-time` (a Joda-Time pattern in `formatHint`), `milliseconds-since-epoch`,
//! `seconds-since-epoch`. Values become days (date), microseconds of the day (time) or
//! the column's unit since the epoch in UTC (timestamps).

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use super::{Corrupt, Raw};
use crate::types::ColumnType;

/// A date/time format of one field.
#[derive(Debug, Clone)]
pub(crate) enum DateFormat {
    /// ISO 8601 text (also the default); numbers are epoch milliseconds (days for dates).
    Iso8601,
    /// RFC 2822 text.
    Rfc2822,
    /// A chrono pattern translated from the Joda pattern of `formatHint`.
    Custom { pattern: String, has_offset: bool },
    /// Milliseconds since the epoch.
    Millis,
    /// Seconds since the epoch.
    Seconds,
}

impl DateFormat {
    pub(crate) fn parse(
        data_format: Option<&str>,
        hint: Option<&str>,
        ty: ColumnType,
    ) -> Result<Self, String> {
        let format = match data_format.map(str::to_ascii_lowercase).as_deref() {
            None | Some("iso8601") => Self::Iso8601,
            Some("rfc2822") => Self::Rfc2822,
            Some("custom-date-time") => {
                let hint =
                    hint.ok_or("custom-date-time needs a formatHint (a Joda-Time pattern)")?;
                let pattern = joda_to_chrono(hint)?;
                Self::Custom {
                    has_offset: pattern.contains("%z") || pattern.contains("%:z"),
                    pattern,
                }
            }
            Some("milliseconds-since-epoch") => Self::Millis,
            Some("seconds-since-epoch") => Self::Seconds,
            Some(other) => {
                return Err(format!(
                    "dataFormat '{other}' is not one of iso8601, rfc2822, custom-date-time, milliseconds-since-epoch, seconds-since-epoch"
                ));
            }
        };
        if matches!(format, Self::Rfc2822) && matches!(ty, ColumnType::Date | ColumnType::Time) {
            return Err(format!("rfc2822 applies to timestamps, not {ty}"));
        }
        Ok(format)
    }

    /// The value in the column's representation; `Err` = corrupt.
    pub(crate) fn convert(&self, raw: Raw<'_>, ty: ColumnType) -> Result<i64, Corrupt> {
        let micros: i64 = match (self, raw) {
            (Self::Millis | Self::Iso8601, Raw::Int(ms)) => {
                if ty == ColumnType::Date && matches!(self, Self::Iso8601) {
                    return Ok(ms);
                }
                ms.checked_mul(1000).ok_or(Corrupt)?
            }
            (Self::Seconds, Raw::Int(s)) => s.checked_mul(1_000_000).ok_or(Corrupt)?,
            (Self::Millis, Raw::Text(t)) => t
                .trim()
                .parse::<i64>()
                .map_err(|_| Corrupt)?
                .checked_mul(1000)
                .ok_or(Corrupt)?,
            (Self::Seconds, Raw::Text(t)) => t
                .trim()
                .parse::<i64>()
                .map_err(|_| Corrupt)?
                .checked_mul(1_000_000)
                .ok_or(Corrupt)?,
            (Self::Seconds, Raw::Float(f)) => (f * 1e6) as i64,
            (Self::Iso8601, Raw::Text(t)) => iso8601(t.trim(), ty).ok_or(Corrupt)?,
            (Self::Rfc2822, Raw::Text(t)) => DateTime::parse_from_rfc2822(t.trim())
                .map_err(|_| Corrupt)?
                .timestamp_micros(),
            (
                Self::Custom {
                    pattern,
                    has_offset,
                },
                Raw::Text(t),
            ) => custom(t.trim(), pattern, *has_offset, ty).ok_or(Corrupt)?,
            _ => return Err(Corrupt),
        };
        Ok(match ty {
            ColumnType::Date => micros.div_euclid(86_400_000_000),
            ColumnType::Time => micros.rem_euclid(86_400_000_000),
            ColumnType::Timestamp { micros: true } | ColumnType::TimestampTz { micros: true } => {
                micros
            }
            _ => micros.div_euclid(1000),
        })
    }
}

/// Microseconds since the epoch (or of the day, for times) of ISO 8601 text.
fn iso8601(text: &str, ty: ColumnType) -> Option<i64> {
    if ty == ColumnType::Time {
        let t = NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
            .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
            .ok()?;
        return Some(time_micros(t));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.timestamp_micros());
    }
    for pattern in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(text, pattern) {
            return Some(dt.timestamp_micros());
        }
    }
    let text = text.strip_suffix('Z').unwrap_or(text);
    for pattern in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(text, pattern) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_micros())
}

fn custom(text: &str, pattern: &str, has_offset: bool, ty: ColumnType) -> Option<i64> {
    if has_offset {
        return DateTime::parse_from_str(text, pattern)
            .ok()
            .map(|dt| dt.timestamp_micros());
    }
    match ty {
        ColumnType::Date => NaiveDate::parse_from_str(text, pattern)
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|dt| dt.and_utc().timestamp_micros()),
        ColumnType::Time => NaiveTime::parse_from_str(text, pattern)
            .ok()
            .map(time_micros),
        _ => NaiveDateTime::parse_from_str(text, pattern)
            .ok()
            .map(|dt| dt.and_utc().timestamp_micros())
            .or_else(|| {
                NaiveDate::parse_from_str(text, pattern)
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|dt| dt.and_utc().timestamp_micros())
            }),
    }
}

fn time_micros(t: NaiveTime) -> i64 {
    i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000)
}

/// Translates a Joda-Time pattern (`yyyy-MM-dd HH:mm:ss.SSS Z`) to chrono's.
pub(crate) fn joda_to_chrono(joda: &str) -> Result<String, String> {
    let chars: Vec<char> = joda.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let mut j = i + 1;
            if chars.get(j) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            while j < chars.len() && chars[j] != '\'' {
                push_literal(&mut out, chars[j]);
                j += 1;
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        let spec = match (c, n) {
            ('y' | 'Y' | 'u', 2) => "%y",
            ('y' | 'Y' | 'u', _) => "%Y",
            ('M', 1 | 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', _) => "%d",
            ('D', _) => "%j",
            ('H', _) => "%H",
            ('k', _) => "%H",
            ('h', _) => "%I",
            ('m', _) => "%M",
            ('s', _) => "%S",
            ('S', 1..=3) => "%3f",
            ('S', 4..=6) => "%6f",
            ('S', _) => "%9f",
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('Z', 1) => "%z",
            ('Z', _) => "%:z",
            ('z', _) => "%Z",
            _ => {
                return Err(format!(
                    "formatHint '{joda}': pattern letter '{c}' is not supported"
                ));
            }
        };
        out.push_str(spec);
        i += n;
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts() -> ColumnType {
        ColumnType::Timestamp { micros: false }
    }

    #[test]
    fn formats() {
        let iso = DateFormat::parse(Some("iso8601"), None, ts()).expect("fmt");
        assert_eq!(
            iso.convert(Raw::Text("2024-01-02T03:04:05.678Z".into()), ts()),
            Ok(1_704_164_645_678)
        );
        assert_eq!(
            iso.convert(Raw::Text("2024-01-02 03:04:05".into()), ts()),
            Ok(1_704_164_645_000)
        );
        assert_eq!(
            iso.convert(Raw::Text("2024-01-02T04:04:05+01:00".into()), ts()),
            Ok(1_704_164_645_000)
        );
        assert_eq!(
            iso.convert(Raw::Text("2024-01-02".into()), ColumnType::Date),
            Ok(19_724)
        );
        assert_eq!(
            iso.convert(Raw::Text("03:04:05".into()), ColumnType::Time),
            Ok(11_045_000_000)
        );
        assert!(iso.convert(Raw::Text("yesterday".into()), ts()).is_err());
        let rfc = DateFormat::parse(Some("rfc2822"), None, ts()).expect("fmt");
        assert_eq!(
            rfc.convert(Raw::Text("Tue, 02 Jan 2024 03:04:05 +0000".into()), ts()),
            Ok(1_704_164_645_000)
        );
        let secs = DateFormat::parse(Some("seconds-since-epoch"), None, ts()).expect("fmt");
        assert_eq!(
            secs.convert(Raw::Int(1_704_164_645), ts()),
            Ok(1_704_164_645_000)
        );
        let custom = DateFormat::parse(Some("custom-date-time"), Some("dd/MM/yyyy HH:mm:ss"), ts())
            .expect("fmt");
        assert_eq!(
            custom.convert(Raw::Text("02/01/2024 03:04:05".into()), ts()),
            Ok(1_704_164_645_000)
        );
        assert!(DateFormat::parse(Some("custom-date-time"), Some("yyyy Q"), ts()).is_err());
        assert!(DateFormat::parse(Some("julian"), None, ts()).is_err());
    }
}
