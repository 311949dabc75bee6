use std::fmt;
use std::str::FromStr;

/// A fully qualified contract identifier, `ADDRESS.contract-name`.
///
/// Only events and calls of exactly this contract count: anyone can deploy a
/// contract that prints look-alike events (anti-spoofing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractId {
    pub address: String,
    pub name: String,
    /// Hex of the name's bytes: a cheap pre-filter on raw tx hex before decoding.
    name_hex: String,
    full: String,
}

/// A malformed contract identifier.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("contract id must look like ADDRESS.contract-name, got {0:?}")]
pub struct ContractIdError(pub String);

impl ContractId {
    /// Hex of the contract name's bytes: a raw transaction in hex that does
    /// not contain it cannot call this contract (a pre-filter before decoding).
    pub fn name_hex(&self) -> &str {
        &self.name_hex
    }
}

impl ContractId {
    /// The full `ADDRESS.name` string.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl FromStr for ContractId {
    type Err = ContractIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (address, name) = s.split_once('.').ok_or_else(|| ContractIdError(s.into()))?;
        let valid_addr = address.len() >= 28
            && address.starts_with('S')
            && address.chars().all(|c| c.is_ascii_alphanumeric());
        let valid_name = !name.is_empty()
            && name.len() <= 128
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_addr || !valid_name {
            return Err(ContractIdError(s.into()));
        }
        Ok(ContractId {
            address: address.into(),
            name: name.into(),
            name_hex: hex::encode(name),
            full: s.into(),
        })
    }
}

impl fmt::Display for ContractId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let c: ContractId = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.x402-nexus-escrow"
            .parse()
            .unwrap();
        assert_eq!(c.name, "x402-nexus-escrow");
        assert_eq!(c.address, "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM");
        assert!("nodot".parse::<ContractId>().is_err());
        assert!("ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM."
            .parse::<ContractId>()
            .is_err());
        assert!("xx.name".parse::<ContractId>().is_err());
    }
}
