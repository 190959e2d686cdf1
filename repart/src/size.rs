//! Sizes as people write them: the one size parser of the workspace. [`parse_size`] is
//! systemd's grammar (repart.d `SizeMinBytes=` and friends); [`parse_size_arg`] is the command
//! line's narrower one (`4096`, `512M`, `16g`) on top of it. (Printing sizes, the plan's
//! "128.0 MiB" as `atomix flash`'s and `atomix inspect`'s formats, is
//! `atomix_blockdev::size::human`'s.)
//! Must not: read or write a disk, or print sizes.

/// systemd's `parse_size(value, 1024)` for one component: digits, an optional fraction, optional
/// whitespace and one of the suffixes `B K M G T P E` (base 1024, upper case). `None` if
/// malformed or above `u64::MAX`.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (int, rest) = t.split_at(digits_end);
    let (frac, rest) = match rest.strip_prefix('.') {
        Some(r) => {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            r.split_at(end)
        }
        None => ("", rest),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let shift = match rest.trim_start() {
        "" | "B" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        "E" => 60,
        _ => return None,
    };
    let mult = 1u128 << shift;
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut total = int.checked_mul(mult)?;
    if !frac.is_empty() {
        let frac = frac.get(..frac.len().min(18))?;
        let numerator: u128 = frac.parse().ok()?;
        total =
            total.checked_add(numerator * mult / 10u128.pow(u32::try_from(frac.len()).ok()?))?;
    }
    u64::try_from(total).ok()
}

/// A command-line size: decimal digits and an optional unit `K`, `M`, `G` or `T` (either case,
/// powers of 1024), computed by [`parse_size`]. The message names the text and what is wrong.
///
/// # Errors
/// An unknown unit, no digits, or a value above `u64::MAX`.
pub fn parse_size_arg(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let unit = c.to_ascii_uppercase();
            if !matches!(unit, 'K' | 'M' | 'G' | 'T') {
                return Err(format!(
                    "`{text}`: unknown unit `{c}` (expected K, M, G or T)"
                ));
            }
            (&text[..i], Some(unit))
        }
        _ => (text, None),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}`: expected a size such as 2147483648, 512M or 16G"))?;
    // The number as systemd's grammar spells it (`+5` is a u64 to `parse`, not to systemd).
    let canonical = match unit {
        Some(u) => format!("{value}{u}"),
        None => value.to_string(),
    };
    parse_size(&canonical).ok_or_else(|| format!("`{text}`: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_systemd_parses_them() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("2 T"), Some(2 << 40));
        assert_eq!(parse_size("7B"), Some(7));
        assert_eq!(parse_size("16E"), None, "overflow");
        for bad in ["", "M", "-1", "1m", "1MiB", "1G 2M", "0x10", "."] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn command_line_sizes() {
        assert_eq!(parse_size_arg("4096"), Ok(4096));
        assert_eq!(parse_size_arg("512M"), Ok(512 << 20));
        assert_eq!(parse_size_arg("16g"), Ok(16 << 30));
        assert!(parse_size_arg("16X").unwrap_err().contains("unknown unit"));
        assert!(parse_size_arg("G").is_err());
        assert!(
            parse_size_arg("99999999999T")
                .unwrap_err()
                .contains("too large")
        );
    }
}
