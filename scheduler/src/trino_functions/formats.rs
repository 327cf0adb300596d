//! Trino's date formats in chrono's terms (DataFusion's `to_char` and `to_timestamp` take
//! chrono's `strftime` specifiers): MySQL's specifiers (`date_format`, `date_parse`) and
//! Joda's patterns (`format_datetime`, `parse_datetime`). A specifier chrono has no
//! equivalent for is an error naming it, never a silently different result.

use datafusion::common::{Result, plan_err};

/// A MySQL format (`%Y-%m-%d %H:%i:%s`) as a chrono one (`%Y-%m-%d %H:%M:%S`).
pub(super) fn mysql_to_chrono(format: &str) -> Result<String> {
    let mut out = String::with_capacity(format.len() + 8);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(specifier) = chars.next() else {
            return plan_err!("date format '{format}' ends with a lone '%'");
        };
        out.push_str(match specifier {
            'a' => "%a",
            'b' => "%b",
            'c' => "%-m",
            'd' => "%d",
            'e' => "%-d",
            'f' => "%6f",
            'H' => "%H",
            'h' | 'I' => "%I",
            'i' => "%M",
            'j' => "%j",
            'k' => "%-H",
            'l' => "%-I",
            'M' => "%B",
            'm' => "%m",
            'p' => "%p",
            'r' => "%I:%M:%S %p",
            'S' | 's' => "%S",
            'T' => "%H:%M:%S",
            'U' => "%U",
            'u' => "%W",
            'v' => "%V",
            'W' => "%A",
            'w' => "%w",
            'x' => "%G",
            'Y' => "%Y",
            'y' => "%y",
            '%' => "%%",
            'D' | 'V' | 'X' => {
                return plan_err!(
                    "date format '{format}': %{specifier} is not supported (Trino does not \
                     support it either)"
                );
            }
            // MySQL: any other character after % stands for itself.
            other => {
                out.push(other);
                continue;
            }
        });
    }
    Ok(out)
}

/// A Joda pattern (`yyyy-MM-dd HH:mm:ss`) as a chrono format (`%Y-%m-%d %H:%M:%S`).
pub(super) fn joda_to_chrono(pattern: &str) -> Result<String> {
    let mut out = String::with_capacity(pattern.len() + 8);
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted text; '' is a quote.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            loop {
                match chars.get(i) {
                    None => return plan_err!("date pattern '{pattern}' has an unclosed quote"),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        out.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('%') => {
                        out.push_str("%%");
                        i += 1;
                    }
                    Some(&other) => {
                        out.push(other);
                        i += 1;
                    }
                }
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            if c == '%' {
                out.push_str("%%");
            } else {
                out.push(c);
            }
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        i += n;
        out.push_str(match (c, n) {
            ('y' | 'Y', 2) => "%y",
            ('y' | 'Y', _) => "%Y",
            ('x', 2) => "%g",
            ('x', _) => "%G",
            ('w', 1) => "%-V",
            ('w', _) => "%V",
            ('e', _) => "%u",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('D', 1) => "%-j",
            ('D', _) => "%j",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('a', _) => "%p",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', 9) => "%9f",
            ('z', _) => "%Z",
            ('Z', 1) => "%z",
            ('Z', 2) => "%:z",
            _ => {
                return plan_err!(
                    "date pattern '{pattern}': '{}' is not supported",
                    std::iter::repeat_n(c, n).collect::<String>()
                );
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_specifiers_become_chronos() {
        assert_eq!(
            mysql_to_chrono("%Y-%m-%d %H:%i:%s").expect("converted"),
            "%Y-%m-%d %H:%M:%S"
        );
        assert_eq!(
            mysql_to_chrono("%W, %M %e %r %%").expect("converted"),
            "%A, %B %-d %I:%M:%S %p %%"
        );
        assert_eq!(mysql_to_chrono("%f|%c|%q").expect("converted"), "%6f|%-m|q");
        let err = mysql_to_chrono("%D of %M")
            .expect_err("an error")
            .to_string();
        assert!(err.contains("%D is not supported"), "{err}");
        assert!(mysql_to_chrono("100%").is_err());
    }

    #[test]
    fn joda_patterns_become_chronos() {
        assert_eq!(
            joda_to_chrono("yyyy-MM-dd HH:mm:ss.SSS").expect("converted"),
            "%Y-%m-%d %H:%M:%S.%3f"
        );
        assert_eq!(
            joda_to_chrono("EEEE, MMMM d, yy").expect("converted"),
            "%A, %B %-d, %y"
        );
        assert_eq!(
            joda_to_chrono("h:mm a 'o''clock' 100%").expect("converted"),
            "%-I:%M %p o'clock 100%%"
        );
        assert_eq!(joda_to_chrono("''yyyy''").expect("converted"), "'%Y'");
        let err = joda_to_chrono("G yyyy").expect_err("an error").to_string();
        assert!(err.contains("'G' is not supported"), "{err}");
        assert!(joda_to_chrono("yyyy 'open").is_err());
    }
}
