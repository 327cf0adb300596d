//! Trino's units in property files and session properties: data sizes (`64MB`) and durations
//! (`10s`), parsed one way everywhere.

use std::time::Duration;

/// A data size as Trino writes them (`100MB`, `1.5GB`, `512kB`, `42B`; a bare number is bytes),
/// counted in powers of 1024 as Trino does.
pub fn parse_data_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let factor: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "PB" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (number.is_finite() && number >= 0.0).then_some((number * factor) as u64)
}

/// A duration as Trino writes them, with its unit: `500ms`, `1.5s`, `10m`, `2h`, `7d`
/// (also `ns` and `us`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let seconds = match unit.trim() {
        "ns" => number / 1e9,
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86400.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_sizes() {
        assert_eq!(parse_data_size("64MB"), Some(64 << 20));
        assert_eq!(parse_data_size("1GB"), Some(1 << 30));
        assert_eq!(parse_data_size("512kB"), Some(512 << 10));
        assert_eq!(parse_data_size("1.5kB"), Some(1536));
        assert_eq!(parse_data_size("42"), Some(42));
        assert_eq!(parse_data_size("lots"), None);
        assert_eq!(parse_data_size("-1MB"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("x"), None);
    }
}
