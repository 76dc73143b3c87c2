//! The ids of things the storefront and the fleet name (categories, products, devices): checked
//! once where they come in, then carried typed. Their own module, so the services that use them
//! (catalog, usage, sessions, jobs) need not import each other.

use serde::{Deserialize, Serialize};

use crate::domain::error::{CoreError, CoreResult};

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks an id from the outside: 1 to 64 characters of `A-Z a-z 0-9 . _ -`
            /// (embedded slugs, uStore GUIDs and device names all fit).
            pub fn parse(raw: &str) -> CoreResult<Self> {
                let ok = !raw.is_empty()
                    && raw.len() <= 64
                    && raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                if !ok {
                    return Err(CoreError::InvalidArgument(format!(
                        "{} must be 1 to 64 characters of letters, digits, '.', '_' or '-'",
                        $what
                    )));
                }
                Ok($name(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = CoreError;
            fn try_from(raw: String) -> CoreResult<Self> {
                $name::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

name_id!(
    /// A category's id in its storefront.
    CategoryId,
    "category_id"
);
name_id!(
    /// A product's id in its storefront.
    ProductId,
    "product_id"
);
name_id!(
    /// The id of a device (the printer a session runs on), as registered.
    DeviceId,
    "device_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_once_and_survive_storage() {
        assert!(DeviceId::parse("mfd-1.front_desk").is_ok());
        for bad in ["", "a b", "ä", &"x".repeat(65)] {
            let err = DeviceId::parse(bad).unwrap_err();
            assert!(err.to_string().starts_with("device_id must be"), "{bad:?}: {err}");
        }
        let id = ProductId::parse("classic-business-card").unwrap();
        let bytes = postcard::to_allocvec(&id).unwrap();
        assert_eq!(postcard::from_bytes::<ProductId>(&bytes).unwrap(), id);
        let forged = postcard::to_allocvec(&"no spaces allowed".to_string()).unwrap();
        assert!(postcard::from_bytes::<ProductId>(&forged).is_err(), "a stored id is checked again");
    }
}
