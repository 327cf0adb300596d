//! The `raw` decoder: a field is a byte range of the message (`mapping` = `start[:end]`,
//! end exclusive), read as `dataFormat` BYTE, SHORT, INT, LONG (big-endian signed
//! integers), FLOAT, DOUBLE (IEEE 754 big-endian), or as bytes/text for varchar and
//! varbinary.

use super::{Corrupt, Raw};
use crate::description::FieldSpec;
use crate::types::ColumnType;

/// How one field is cut out of the message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawField {
    start: usize,
    end: Option<usize>,
    format: Width,
    ty: ColumnType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    Byte,
    Short,
    Int,
    Long,
    Float,
    Double,
}

impl Width {
    fn size(self) -> usize {
        match self {
            Self::Byte => 1,
            Self::Short => 2,
            Self::Int | Self::Float => 4,
            Self::Long | Self::Double => 8,
        }
    }
}

impl RawField {
    /// The byte range: start, and the end when the mapping gives one.
    pub(crate) fn range(&self) -> (usize, Option<usize>) {
        (self.start, self.end)
    }
}

pub(crate) fn fields(fields: &[FieldSpec]) -> Result<Vec<RawField>, String> {
    fields.iter().map(field).collect()
}

fn field(f: &FieldSpec) -> Result<RawField, String> {
    let format = match f
        .data_format
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("BYTE") => Width::Byte,
        Some("SHORT") => Width::Short,
        Some("INT") => Width::Int,
        Some("LONG") => Width::Long,
        Some("FLOAT") => Width::Float,
        Some("DOUBLE") => Width::Double,
        Some(other) => {
            return Err(format!(
                "field '{}': raw dataFormat '{other}' is not one of BYTE, SHORT, INT, LONG, FLOAT, DOUBLE",
                f.name
            ));
        }
    };
    let (start, end) = match f.mapping.as_deref() {
        None => (0, None),
        Some(m) => {
            let bad = || format!("field '{}': mapping '{m}' is not start[:end]", f.name);
            match m.split_once(':') {
                Some((s, e)) => (
                    s.trim().parse().map_err(|_| bad())?,
                    Some(e.trim().parse().map_err(|_| bad())?),
                ),
                None => (m.trim().parse().map_err(|_| bad())?, None),
            }
        }
    };
    if end.is_some_and(|e| e <= start) {
        return Err(format!("field '{}': empty byte range", f.name));
    }
    let fits = match f.ty {
        ColumnType::Varchar | ColumnType::Varbinary => format == Width::Byte,
        ColumnType::Real | ColumnType::Double => matches!(format, Width::Float | Width::Double),
        ColumnType::Boolean
        | ColumnType::TinyInt
        | ColumnType::SmallInt
        | ColumnType::Integer
        | ColumnType::BigInt => !matches!(format, Width::Float | Width::Double),
        _ => false,
    };
    if !fits {
        return Err(format!(
            "field '{}': type {} cannot be read as raw {format:?}",
            f.name, f.ty
        ));
    }
    Ok(RawField {
        start,
        end,
        format,
        ty: f.ty,
    })
}

pub(crate) fn decode<'a>(
    fields: &[RawField],
    data: &'a [u8],
    out: &mut [Raw<'a>],
) -> Result<(), Corrupt> {
    for (slot, f) in out.iter_mut().zip(fields) {
        let text = matches!(f.ty, ColumnType::Varchar | ColumnType::Varbinary);
        let end = match (f.end, text) {
            (Some(e), _) => e,
            (None, true) => data.len(),
            (None, false) => f.start + f.format.size(),
        };
        let bytes = data.get(f.start..end).ok_or(Corrupt)?;
        *slot = if text {
            Raw::Bytes(bytes)
        } else {
            let width = f.format.size();
            if bytes.len() < width {
                return Err(Corrupt);
            }
            let b = &bytes[..width];
            match f.format {
                Width::Byte => Raw::Int(i64::from(b[0] as i8)),
                Width::Short => Raw::Int(i64::from(i16::from_be_bytes([b[0], b[1]]))),
                Width::Int => Raw::Int(i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
                Width::Long => Raw::Int(i64::from_be_bytes(b.try_into().map_err(|_| Corrupt)?)),
                Width::Float => Raw::Float(f64::from(f32::from_be_bytes(
                    b.try_into().map_err(|_| Corrupt)?,
                ))),
                Width::Double => Raw::Float(f64::from_be_bytes(b.try_into().map_err(|_| Corrupt)?)),
            }
        };
    }
    Ok(())
}
