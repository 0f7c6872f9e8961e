//! Counts in messages people read: `1 minute`, `2 minutes`.

/// `n` and the unit, with an `s` unless `n` is 1 (every unit this server
/// counts in takes an `s`).
pub fn count(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_is_singular_and_the_rest_plural() {
        assert_eq!(super::count(0, "second"), "0 seconds");
        assert_eq!(super::count(1, "second"), "1 second");
        assert_eq!(super::count(60, "minute"), "60 minutes");
    }
}
