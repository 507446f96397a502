//! Byte sizes as operators write them (`500GB`, `1.5 GiB`, `65536`) and as the tool prints
//! them (`1.00 GiB`, or `1.00 GB` for a key whose limit was written in decimal units).

/// The units a size may carry. Decimal units are powers of 1000, binary units powers of 1024.
const UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

const HINT: &str =
    "use a whole number of bytes, or a number with B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g. 500GB or 1.5GiB";

/// Parses a size: digits with an optional fraction, optional spaces, and an optional unit
/// (case-insensitive). The result must be a whole number of bytes that fits in 64 bits.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit = unit.trim();
    if number.is_empty() || number == "." {
        return Err(format!("\"{text}\" does not start with a number; {HINT}"));
    }
    let multiplier = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|&(_, factor)| factor)
            .ok_or_else(|| format!("\"{text}\" has the unknown unit \"{unit}\"; {HINT}"))?
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') {
        return Err(format!("\"{text}\" is not a number; {HINT}"));
    }
    let too_large = || {
        format!(
            "\"{text}\" is larger than the largest size, {} bytes",
            u64::MAX
        )
    };
    // Exact decimal arithmetic: digits × unit ÷ 10^fraction-digits, in 128 bits.
    let digits = format!("{whole}{fraction}");
    if digits.trim_start_matches('0').len() > 30 {
        return Err(too_large());
    }
    let mantissa: u128 = digits.parse().map_err(|_| too_large())?;
    let scale = 10u128.pow(fraction.len() as u32);
    let scaled = mantissa * u128::from(multiplier);
    if !scaled.is_multiple_of(scale) {
        return Err(format!("\"{text}\" is not a whole number of bytes"));
    }
    u64::try_from(scaled / scale).map_err(|_| too_large())
}

/// Formats a byte count with binary units and two decimals: `512 B`, `1.50 KiB`, `2.00 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    format_in(bytes, 1024, ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"])
}

/// Formats a byte count with decimal units and two decimals: `512 B`, `1.50 KB`, `1.00 GB`.
fn format_decimal_bytes(bytes: u64) -> String {
    format_in(bytes, 1000, ["KB", "MB", "GB", "TB", "PB", "EB"])
}

fn format_in(bytes: u64, base: u64, units: [&str; 6]) -> String {
    if bytes < base {
        return format!("{bytes} B");
    }
    let base = base as f64;
    let mut value = bytes as f64 / base;
    let mut unit = 0;
    // Move up while the value would print as `base`.00 or more, so 2^30 - 1 reads 1.00 GiB.
    while value >= base - 0.005 && unit + 1 < units.len() {
        value /= base;
        unit += 1;
    }
    format!("{value:.2} {}", units[unit])
}

/// The unit system a key's sizes are shown in.
///
/// Key JSON carries bytes only, so the system is read back from the limit: the one in which the
/// limit is a whole number of the larger unit. A limit written `1GB` (10^9 bytes) is not a
/// whole number of KiB, so it reads `1.00 GB`; `1GiB` reads `1.00 GiB`; `500GB` is a whole
/// number of KiB but of GB too, the larger unit, so it reads `500.00 GB`. A limit whole in both
/// at the same level (`500KiB` is 512 KB) is shown in both; one whole in neither (`65537`) in
/// binary units, as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    /// Powers of 1000: KB, MB, GB, TB.
    Decimal,
    /// Powers of 1024: KiB, MiB, GiB, TiB.
    Binary,
    /// Decimal, then binary in parentheses: `512.00 KB (500.00 KiB)`.
    Both,
}

impl Units {
    /// The unit system of a key whose limit is `limit` bytes.
    pub fn of(limit: u64) -> Units {
        let whole_units = |base: u64| {
            let (mut n, mut level) = (limit, 0);
            while n != 0 && n.is_multiple_of(base) {
                n /= base;
                level += 1;
            }
            level
        };
        let (decimal, binary) = (whole_units(1000), whole_units(1024));
        match decimal.cmp(&binary) {
            std::cmp::Ordering::Greater => Units::Decimal,
            std::cmp::Ordering::Equal if decimal > 0 => Units::Both,
            _ => Units::Binary,
        }
    }
}

/// Formats a byte count in `units`: `1.00 GB`, `1.00 GiB`, or `512.00 KB (500.00 KiB)`; a count
/// that reads the same in both systems (`512 B`) is written once.
pub fn format_size(bytes: u64, units: Units) -> String {
    match units {
        Units::Decimal => format_decimal_bytes(bytes),
        Units::Binary => format_bytes(bytes),
        Units::Both => {
            let (decimal, binary) = (format_decimal_bytes(bytes), format_bytes(bytes));
            if decimal == binary {
                decimal
            } else {
                format!("{decimal} ({binary})")
            }
        }
    }
}

/// Formats a count with thousands separators: `1,234,567`.
pub fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses() {
        let cases = [
            ("65536", 65_536),
            ("0", 0),
            ("12B", 12),
            ("500GB", 500_000_000_000),
            ("500 gb", 500_000_000_000),
            ("1KB", 1_000),
            ("1MB", 1_000_000),
            ("2TB", 2_000_000_000_000),
            ("1KiB", 1_024),
            ("64MiB", 64 << 20),
            ("2GiB", 2 << 30),
            ("1tib", 1 << 40),
            ("1.5GiB", 3 << 29),
            ("0.5KB", 500),
            (" 3 MiB ", 3 << 20),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_sizes_say_why() {
        for (text, why) in [
            ("", "does not start with a number"),
            ("GB", "does not start with a number"),
            ("5XB", "unknown unit \"XB\""),
            ("5 G", "unknown unit \"G\""),
            ("1.2.3GB", "is not a number"),
            ("1.5B", "not a whole number of bytes"),
            ("20000000TB", "larger than the largest size"),
            (
                "99999999999999999999999999999999999",
                "larger than the largest size",
            ),
        ] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn formats_binary_units() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1536), "1.50 KiB");
        assert_eq!(format_bytes(2 << 30), "2.00 GiB");
        assert_eq!(format_bytes((1 << 30) - 1), "1.00 GiB");
        assert_eq!(format_bytes(u64::MAX), "16.00 EiB");
    }

    /// Regression: a limit entered as `1GB` read `953.67 MiB`. Sizes are shown in the
    /// unit system the limit was written in, or both when the limit is round in both.
    #[test]
    fn sizes_keep_the_unit_system_the_limit_was_written_in() {
        let cases = [
            ("1GB", "1.00 GB"),
            ("500GB", "500.00 GB"),
            ("1.5GB", "1.50 GB"),
            ("2TB", "2.00 TB"),
            ("100MB", "100.00 MB"),
            ("250MB", "250.00 MB"),
            ("1GiB", "1.00 GiB"),
            ("1.5GiB", "1.50 GiB"),
            ("64MiB", "64.00 MiB"),
            ("1KiB", "1.00 KiB"),
            ("65536", "64.00 KiB"),
            ("65537", "64.00 KiB"),
            ("12", "12 B"),
            ("500KiB", "512.00 KB (500.00 KiB)"),
            ("1000KiB", "1.02 MB (1000.00 KiB)"),
        ];
        for (written, shown) in cases {
            let limit = parse_size(written).unwrap();
            assert_eq!(format_size(limit, Units::of(limit)), shown, "{written}");
        }
        let gb = Units::of(1_000_000_000);
        assert_eq!(format_size(0, gb), "0 B");
        assert_eq!(format_size(250_000_000, gb), "250.00 MB");
        assert_eq!(format_size(512, Units::Both), "512 B");
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1_000), "1,000");
        assert_eq!(format_count(1_234_567), "1,234,567");
    }
}
