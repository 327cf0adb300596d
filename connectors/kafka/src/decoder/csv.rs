//! The `csv` decoder: a message is one line of comma-separated values (RFC 4180 quoting);
//! a field's mapping is its column index. Empty and missing columns are NULL, as in Trino.

use std::borrow::Cow;

use super::{Corrupt, Raw};
use crate::description::FieldSpec;

/// The column index of each field.
pub(crate) fn columns(fields: &[FieldSpec]) -> Result<Vec<usize>, String> {
    fields
        .iter()
        .map(|f| {
            let mapping = f.mapping.as_deref().ok_or_else(|| {
                format!(
                    "field '{}': csv fields need a mapping (the column index)",
                    f.name
                )
            })?;
            mapping.trim().parse::<usize>().map_err(|_| {
                format!(
                    "field '{}': mapping '{mapping}' is not a column index",
                    f.name
                )
            })
        })
        .collect()
}

/// Splits one line and picks the mapped columns.
pub(crate) fn decode<'a>(
    columns: &[usize],
    data: &'a [u8],
    out: &mut [Raw<'a>],
) -> Result<(), Corrupt> {
    let text = std::str::from_utf8(data).map_err(|_| Corrupt)?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    let values = split(text)?;
    for (slot, column) in out.iter_mut().zip(columns) {
        *slot = match values.get(*column) {
            Some(v) if !v.is_empty() => Raw::Text(v.clone()),
            _ => Raw::Null,
        };
    }
    Ok(())
}

/// The values of one CSV line; quoted values may hold commas and doubled quotes.
fn split(line: &str) -> Result<Vec<Cow<'_, str>>, Corrupt> {
    let mut values = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    loop {
        if bytes.get(i) == Some(&b'"') {
            let mut value = String::new();
            let mut start = i + 1;
            let mut j = start;
            loop {
                match bytes.get(j) {
                    None => return Err(Corrupt),
                    Some(b'"') if bytes.get(j + 1) == Some(&b'"') => {
                        value.push_str(&line[start..=j]);
                        j += 2;
                        start = j;
                    }
                    Some(b'"') => {
                        value.push_str(&line[start..j]);
                        j += 1;
                        break;
                    }
                    Some(_) => j += 1,
                }
            }
            values.push(Cow::Owned(value));
            match bytes.get(j) {
                None => return Ok(values),
                Some(b',') => i = j + 1,
                Some(_) => return Err(Corrupt),
            }
        } else {
            let end = line[i..].find(',').map_or(line.len(), |e| i + e);
            values.push(Cow::Borrowed(&line[i..end]));
            if end == line.len() {
                return Ok(values);
            }
            i = end + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quoted_values() {
        assert_eq!(
            split("a,,\"b,\"\"c\"\"\",d").expect("csv"),
            vec!["a", "", "b,\"c\"", "d"]
        );
        assert_eq!(split("").expect("csv"), vec![""]);
        assert!(split("\"open").is_err());
        assert!(split("\"a\"b").is_err());
    }
}
