//! The update tools' arguments: the row's id and a patch ([`OrderPatch`],
//! [`DriverPatch`]), whose fields are declared once, on the patch. Serde's
//! `flatten` would do it, but its errors lose the field's name and its
//! unknown-field error the list of fields; so the arguments are read in one
//! pass here, taking the id out and handing every other field to the
//! patch, and every message is as if one struct had all the fields.

use crate::fleet::{DriverPatch, OrderPatch};
use rmcp::schemars;
use serde::Deserialize;
use serde::de::value::StringDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

#[derive(Debug, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(super) struct UpdateOrderArgs {
    /// The order to change (ORD-…).
    pub order_id: String,
    #[schemars(flatten)]
    pub patch: OrderPatch,
}

impl<'de> Deserialize<'de> for UpdateOrderArgs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (order_id, patch) = id_and_patch(d, "order_id", "struct UpdateOrderArgs")?;
        Ok(UpdateOrderArgs { order_id, patch })
    }
}

#[derive(Debug, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(super) struct UpdateDriverArgs {
    /// The driver to change (DRV-…).
    pub driver_id: String,
    #[schemars(flatten)]
    pub patch: DriverPatch,
}

impl<'de> Deserialize<'de> for UpdateDriverArgs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (driver_id, patch) = id_and_patch(d, "driver_id", "struct UpdateDriverArgs")?;
        Ok(UpdateDriverArgs { driver_id, patch })
    }
}

/// Reads the field `id` and the patch `P` from one map of arguments.
fn id_and_patch<'de, D, P>(
    d: D,
    id: &'static str,
    expecting: &'static str,
) -> Result<(String, P), D::Error>
where
    D: Deserializer<'de>,
    P: Deserialize<'de>,
{
    d.deserialize_map(ArgsVisitor {
        id,
        expecting,
        patch: PhantomData,
    })
}

struct ArgsVisitor<P> {
    id: &'static str,
    expecting: &'static str,
    patch: PhantomData<P>,
}

impl<'de, P: Deserialize<'de>> Visitor<'de> for ArgsVisitor<P> {
    type Value = (String, P);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(String, P), A::Error> {
        let mut id = None;
        let patch = P::deserialize(de::value::MapAccessDeserializer::new(WithoutId {
            map,
            name: self.id,
            id: &mut id,
        }))?;
        let id = id.ok_or_else(|| de::Error::missing_field(self.id))?;
        Ok((id, patch))
    }
}

/// The arguments without the id (the field `name`), which it keeps aside.
struct WithoutId<'a, A> {
    map: A,
    name: &'static str,
    id: &'a mut Option<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithoutId<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut seed = Some(seed);
        loop {
            let key = KeySeed {
                id: self.name,
                seed: &mut seed,
            };
            match self.map.next_key_seed(key)? {
                None => return Ok(None),
                Some(Key::Field(field)) => return Ok(Some(field)),
                Some(Key::Id) if self.id.is_some() => {
                    return Err(de::Error::duplicate_field(self.name));
                }
                Some(Key::Id) => *self.id = Some(self.map.next_value()?),
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

enum Key<T> {
    Id,
    Field(T),
}

/// Reads one key: the id, or a field of the patch (named through the
/// patch's own seed, which it uses only then). The key is read inside the
/// map's own call, so a mistake in it is reported at that key's path.
struct KeySeed<'a, K> {
    id: &'static str,
    seed: &'a mut Option<K>,
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = Key<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let key = String::deserialize(d)?;
        if key == self.id {
            return Ok(Key::Id);
        }
        let seed = self
            .seed
            .take()
            .ok_or_else(|| de::Error::custom("a field name was read twice"))?;
        let key: StringDeserializer<KeyError> = key.into_deserializer();
        seed.deserialize(key)
            .map(Key::Field)
            .map_err(|e| de::Error::custom(e.message(self.id)))
    }
}

/// A field name's error. An unknown field's message lists the id first, as
/// the patch does not know it, so it is written once the id is known.
#[derive(Debug)]
enum KeyError {
    Custom(String),
    Unknown(String, &'static [&'static str]),
}

impl KeyError {
    fn message(self, id: &str) -> String {
        match self {
            KeyError::Custom(message) => message,
            KeyError::Unknown(field, expected) => {
                let names: Vec<String> = std::iter::once(id)
                    .chain(expected.iter().copied())
                    .map(|name| format!("`{name}`"))
                    .collect();
                format!(
                    "unknown field `{field}`, expected one of {}",
                    names.join(", ")
                )
            }
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Custom(message) => f.write_str(message),
            KeyError::Unknown(field, _) => write!(f, "unknown field `{field}`"),
        }
    }
}

impl std::error::Error for KeyError {}

impl de::Error for KeyError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        KeyError::Custom(msg.to_string())
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        KeyError::Unknown(field.to_owned(), expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{OrderStatus, Priority};
    use crate::mcp::args::parse;
    use crate::mcp::error::ToolError;
    use serde_json::{Value, json};

    fn read(v: Value) -> Result<UpdateOrderArgs, String> {
        parse(v.as_object().cloned().unwrap_or_default()).map_err(|e| match e {
            ToolError::Refused(m) => m,
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn order_id_is_taken_out_and_the_rest_is_the_patch() {
        let a = read(json!({
            "priority": "urgent", "order_id": "ORD-1", "status": "cancelled",
            "customer_name": null, "time_window_end": "2026-11-26",
        }))
        .unwrap();
        assert_eq!(a.order_id, "ORD-1");
        assert_eq!(a.patch.priority, Some(Priority::Urgent));
        assert_eq!(a.patch.status, Some(OrderStatus::Cancelled));
        assert_eq!(a.patch.customer_name, None);
        assert!(a.patch.time_window_end.is_some());
    }

    fn read_driver(v: Value) -> Result<UpdateDriverArgs, String> {
        parse(v.as_object().cloned().unwrap_or_default()).map_err(|e| match e {
            ToolError::Refused(m) => m,
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn a_driver_update_is_read_the_same_way_with_driver_id() {
        let a = read_driver(json!({"capacity_kg": 5, "driver_id": "DRV-1", "name": null})).unwrap();
        assert_eq!(a.driver_id, "DRV-1");
        assert_eq!(a.patch.capacity_kg, Some(5.0));
        assert_eq!(a.patch.name, None);
        assert_eq!(
            read_driver(json!({"name": "A"})).unwrap_err(),
            "missing field `driver_id`"
        );
        assert_eq!(
            read_driver(json!({"driver_id": "D", "capacity_kg": "x"})).unwrap_err(),
            "capacity_kg: invalid type: string \"x\", expected f64"
        );
        let unknown = read_driver(json!({"driver_id": "D", "order_id": "O"})).unwrap_err();
        assert!(
            unknown.starts_with(
                "order_id: unknown field `order_id`, expected one of `driver_id`, `name`, "
            ) && unknown.ends_with(", `current_lng`"),
            "{unknown}"
        );
    }

    #[test]
    fn mistakes_read_as_if_one_struct_had_every_field() {
        assert_eq!(
            read(json!({"weight_kg": 1})).unwrap_err(),
            "missing field `order_id`"
        );
        assert_eq!(
            read(json!({"order_id": 5})).unwrap_err(),
            "order_id: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            read(json!({"order_id": "O", "weight_kg": "x"})).unwrap_err(),
            "weight_kg: invalid type: string \"x\", expected f64"
        );
        assert_eq!(
            read(json!({"order_id": "O", "time_window_start": "soon"})).unwrap_err(),
            "time_window_start: 'soon' is not an ISO 8601 time (e.g. 2026-11-26T15:00:00Z)"
        );
        let unknown = read(json!({"order_id": "O", "gate": 1})).unwrap_err();
        assert!(
            unknown.starts_with(
                "gate: unknown field `gate`, expected one of `order_id`, `customer_name`, "
            ) && unknown.ends_with(", `status`"),
            "{unknown}"
        );
    }
}
