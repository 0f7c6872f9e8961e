//! The console's one form parser: `application/x-www-form-urlencoded`
//! bodies, with repeated fields (`scopes`) kept in order.

use super::ConsoleError;
use axum::body::{Body, to_bytes};

/// The largest form the console reads.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The fields of a submitted form.
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub async fn read(body: Body) -> Result<Self, ConsoleError> {
        let bytes = to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| ConsoleError::Invalid("the form is too large".into()))?;
        Ok(Self::parse(&bytes))
    }

    pub fn parse(bytes: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every non-blank value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A whole number in `range`, or `default` when the field is blank.
    pub fn number(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u32>,
        default: Option<u32>,
    ) -> Result<Option<u32>, ConsoleError> {
        let Some(text) = self.one(name) else {
            return Ok(default);
        };
        match text.parse::<u32>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(ConsoleError::Invalid(format!(
                "{name} must be a whole number from {} to {}",
                range.start(),
                range.end()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_blanks_and_numbers() {
        let f = Fields::parse(b"scopes=orders%3Aread&name=+&scopes=admin&scopes=&n=5&bad=x");
        assert_eq!(
            f.all("scopes").collect::<Vec<_>>(),
            ["orders:read", "admin"]
        );
        assert_eq!(f.one("name"), None);
        assert_eq!(f.number("n", 1..=10, None).unwrap(), Some(5));
        assert_eq!(f.number("missing", 1..=10, Some(24)).unwrap(), Some(24));
        assert!(f.number("n", 6..=10, None).is_err());
        assert!(f.number("bad", 1..=10, None).is_err());
    }
}
