//! The `update_order` tool's arguments: `order_id` and an [`OrderPatch`],
//! whose fields are declared once, on the patch. Serde's `flatten` would
//! do it, but its errors lose the field's name and its unknown-field error
//! the list of fields; so the arguments are read in one pass here, taking
//! `order_id` out and handing every other field to the patch, and every
//! message is as if one struct had all the fields.

use crate::fleet::OrderPatch;
use rmcp::schemars;
use serde::Deserialize;
use serde::de::value::StringDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use std::fmt;

const ID: &str = "order_id";

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
        d.deserialize_map(ArgsVisitor)
    }
}

struct ArgsVisitor;

impl<'de> Visitor<'de> for ArgsVisitor {
    type Value = UpdateOrderArgs;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct UpdateOrderArgs")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<UpdateOrderArgs, A::Error> {
        let mut order_id = None;
        let patch = OrderPatch::deserialize(de::value::MapAccessDeserializer::new(WithoutId {
            map,
            order_id: &mut order_id,
        }))?;
        let order_id = order_id.ok_or_else(|| de::Error::missing_field(ID))?;
        Ok(UpdateOrderArgs { order_id, patch })
    }
}

/// The arguments without `order_id`, which it keeps aside.
struct WithoutId<'a, A> {
    map: A,
    order_id: &'a mut Option<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithoutId<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut seed = Some(seed);
        loop {
            match self.map.next_key_seed(KeySeed(&mut seed))? {
                None => return Ok(None),
                Some(Key::Field(field)) => return Ok(Some(field)),
                Some(Key::Id) if self.order_id.is_some() => {
                    return Err(de::Error::duplicate_field(ID));
                }
                Some(Key::Id) => *self.order_id = Some(self.map.next_value()?),
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

/// Reads one key: `order_id`, or a field of the patch (named through the
/// patch's own seed, which it uses only then). The key is read inside the
/// map's own call, so a mistake in it is reported at that key's path.
struct KeySeed<'a, K>(&'a mut Option<K>);

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = Key<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let key = String::deserialize(d)?;
        if key == ID {
            return Ok(Key::Id);
        }
        let seed = self
            .0
            .take()
            .ok_or_else(|| de::Error::custom("a field name was read twice"))?;
        let key: StringDeserializer<KeyError> = key.into_deserializer();
        seed.deserialize(key)
            .map(Key::Field)
            .map_err(|KeyError(message)| de::Error::custom(message))
    }
}

/// A field name's error: an unknown field lists `order_id` first, as the
/// patch does not know it.
#[derive(Debug)]
struct KeyError(String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

impl de::Error for KeyError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        KeyError(msg.to_string())
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let names: Vec<String> = std::iter::once(ID)
            .chain(expected.iter().copied())
            .map(|name| format!("`{name}`"))
            .collect();
        KeyError(format!(
            "unknown field `{field}`, expected one of {}",
            names.join(", ")
        ))
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
