//! Permissions a key carries. A small set value: parsed once, stored as a
//! space-separated string, checked with [`Scopes::allows`].

use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    OrdersRead,
    OrdersWrite,
    DriversRead,
    DriversWrite,
    AssignmentsRead,
    AssignmentsManage,
    /// Implies every other scope, and alone allows the admin tools.
    Admin,
    /// Routes, geocoding and the tenant's saved places.
    RoutingUse,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::OrdersRead,
        Scope::OrdersWrite,
        Scope::DriversRead,
        Scope::DriversWrite,
        Scope::AssignmentsRead,
        Scope::AssignmentsManage,
        Scope::Admin,
        Scope::RoutingUse,
    ];

    /// The name used on the wire, in the database and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::OrdersRead => "orders:read",
            Scope::OrdersWrite => "orders:write",
            Scope::DriversRead => "drivers:read",
            Scope::DriversWrite => "drivers:write",
            Scope::AssignmentsRead => "assignments:read",
            Scope::AssignmentsManage => "assignments:manage",
            Scope::Admin => "admin",
            Scope::RoutingUse => "routing:use",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.chars().take(64).collect()))
    }
}

/// A scope name nobody knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scope '{0}' (known: orders:read, orders:write, drivers:read, drivers:write, assignments:read, assignments:manage, admin, routing:use)"
)]
pub struct UnknownScope(pub String);

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// What the predecessor gave every key; keys issued without explicit
    /// scopes, and keys adopted from its table, get these.
    pub const PREDECESSOR_DEFAULT: Scopes = Scopes(
        (1 << Scope::OrdersRead as u8)
            | (1 << Scope::OrdersWrite as u8)
            | (1 << Scope::DriversRead as u8)
            | (1 << Scope::DriversWrite as u8)
            | (1 << Scope::AssignmentsManage as u8)
            // The predecessor's routing tools took any key.
            | (1 << Scope::RoutingUse as u8),
    );

    pub fn empty() -> Self {
        Scopes(0)
    }

    pub fn admin() -> Self {
        Scopes::from_iter([Scope::Admin])
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether a key with these scopes may do what `needed` guards.
    /// `admin` implies everything, and `assignments:manage` implies
    /// `assignments:read` (managing assignments means seeing them).
    pub fn allows(self, needed: Scope) -> bool {
        self.contains(Scope::Admin)
            || self.contains(needed)
            || (needed == Scope::AssignmentsRead && self.contains(Scope::AssignmentsManage))
    }

    /// Whether every scope in `other` is allowed by `self` (a key may only
    /// grant what its holder has).
    pub fn covers(self, other: Scopes) -> bool {
        other.iter().all(|scope| self.allows(scope))
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Parses a list separated by commas or whitespace; refuses unknown names.
    pub fn parse_list(list: &str) -> Result<Self, UnknownScope> {
        list.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(Scope::from_str)
            .collect()
    }

    /// The stored form: names separated by single spaces, in a fixed order.
    pub fn to_storage(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    /// Reads the stored form. `None` (a key from the predecessor's table, or
    /// written by it) means the predecessor's default scopes; unknown names in
    /// storage are dropped rather than granting anything.
    pub fn from_storage(stored: Option<&str>) -> Self {
        match stored {
            None => Scopes::PREDECESSOR_DEFAULT,
            Some(s) => s
                .split_whitespace()
                .filter_map(|part| part.parse().ok())
                .collect(),
        }
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut scopes = Scopes::empty();
        for scope in iter {
            scopes.insert(scope);
        }
        scopes
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Scope::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_everything() {
        for scope in Scope::ALL {
            assert!(Scopes::admin().allows(scope), "{scope}");
        }
    }

    #[test]
    fn manage_implies_read_but_not_the_reverse() {
        let manage = Scopes::from_iter([Scope::AssignmentsManage]);
        assert!(manage.allows(Scope::AssignmentsRead));
        let read = Scopes::from_iter([Scope::AssignmentsRead]);
        assert!(!read.allows(Scope::AssignmentsManage));
    }

    #[test]
    fn storage_round_trip_and_default() {
        let scopes = Scopes::parse_list("orders:read, drivers:write admin").unwrap();
        assert_eq!(Scopes::from_storage(Some(&scopes.to_storage())), scopes);
        assert_eq!(
            Scopes::from_storage(None).to_storage(),
            "orders:read orders:write drivers:read drivers:write assignments:manage routing:use"
        );
        assert!(Scopes::parse_list("orders:read,root").is_err());
        assert!(Scopes::from_storage(Some("")).is_empty());
    }

    #[test]
    fn covers_respects_implications() {
        let holder = Scopes::from_iter([Scope::OrdersRead, Scope::AssignmentsManage]);
        assert!(holder.covers(Scopes::from_iter([Scope::AssignmentsRead])));
        assert!(!holder.covers(Scopes::from_iter([Scope::OrdersWrite])));
        assert!(!holder.covers(Scopes::admin()));
    }
}
