//! Column conversions both SQL backends share: integers that must fit an
//! `i64` column and JSON bodies, each failure classified for its backend
//! (a value we cannot write is `rejected`, a row we cannot read `corrupt`).

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

/// The conversions for one backend (its name goes into every error).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Codec(pub &'static str);

impl Codec {
    /// SQL integers are i64; a u64 past that is refused, not wrapped.
    pub fn write_int(self, v: u64) -> Result<i64, StoreError> {
        i64::try_from(v).map_err(|e| StoreError::rejected(self.0, e))
    }

    pub fn read_int(self, v: i64) -> Result<u64, StoreError> {
        u64::try_from(v).map_err(|e| StoreError::corrupt(self.0, e))
    }

    /// Bodies are TEXT: serde_json escapes control characters (`\u0000`),
    /// so they never carry a raw NUL.
    pub fn write_json<T: Serialize>(self, v: &T) -> Result<String, StoreError> {
        serde_json::to_string(v).map_err(|e| StoreError::rejected(self.0, e))
    }

    pub fn read_json<T: DeserializeOwned>(self, s: &str) -> Result<T, StoreError> {
        serde_json::from_str(s).map_err(|e| StoreError::corrupt(self.0, e))
    }
}
