//! What a subscription (WebSocket or webhook) wants to see. Pure.

use nexus_core::domain::{token_contract_of, EventType, PaymentEvent, PaymentId};

/// Which events a subscription matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every event of one payment.
    Payment(PaymentId),
    /// Every event whose sender or recipient is this principal.
    Principal(String),
    /// Every event of payments in one asset, by [`asset_key`]: `STX`, or a
    /// SIP-010 token's contract. Build it with [`Filter::asset`].
    Asset(String),
    /// Every event.
    All,
}

/// The asset an event is about, as [`Filter::Asset`] keys it: `STX` (escrow
/// STX payments carry no asset), or the token's contract (`ADDR.contract`,
/// whether the event names the asset in it or not).
pub fn asset_key(event: &PaymentEvent) -> &str {
    event
        .asset
        .as_deref()
        .and_then(token_contract_of)
        .unwrap_or("STX")
}

impl Filter {
    /// The filter of `asset` (`STX`, `ADDR.contract` or `ADDR.contract::name`).
    pub fn asset(asset: &str) -> Filter {
        Filter::Asset(token_contract_of(asset).unwrap_or("STX").to_string())
    }

    /// Does `event` match?
    pub fn matches(&self, event: &PaymentEvent) -> bool {
        match self {
            Filter::All => true,
            Filter::Payment(id) => event.payment_id == *id,
            Filter::Principal(p) => {
                event.sender.as_deref() == Some(p.as_str())
                    || event.recipient.as_deref() == Some(p.as_str())
            }
            Filter::Asset(a) => asset_key(event) == a,
        }
    }
}

/// A webhook endpoint's filter: a [`Filter`] narrowed to some event types
/// (empty = every type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedFilter {
    pub filter: Filter,
    pub types: Vec<EventType>,
}

impl TypedFilter {
    pub fn matches(&self, event: &PaymentEvent) -> bool {
        (self.types.is_empty() || self.types.contains(&event.event_type))
            && self.filter.matches(event)
    }
}

/// A valid asset name for a filter ([`nexus_core::domain::is_asset_name`]).
pub use nexus_core::domain::is_asset_name as valid_asset;

/// A valid Stacks principal (standard `S…` address or `S….contract-name`),
/// checked with the c32check checksum, not just the shape.
pub fn valid_principal(s: &str) -> bool {
    s.len() <= 200 && clarity::vm::types::PrincipalData::parse(s).is_ok()
}

/// Events for the unit tests of the delivery modules.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use nexus_core::domain::{EventSource, PaymentStatus};

    /// A confirmed event of payment `[1; 32]` between two fixed principals.
    pub(crate) fn event(seq: u64) -> PaymentEvent {
        event_of(seq, 1, "SP_A", "SP_B")
    }

    pub(crate) fn event_of(seq: u64, id: u8, sender: &str, recipient: &str) -> PaymentEvent {
        PaymentEvent {
            seq,
            event_type: EventType::Confirmed,
            payment_id: PaymentId([id; 32]),
            status: PaymentStatus::Confirmed,
            sender: Some(sender.into()),
            recipient: Some(recipient.into()),
            amount: Some("1000".into()),
            scheme: None,
            asset: None,
            txid: Some(format!("0x{}", "ab".repeat(32))),
            block_height: Some(5),
            index_block_hash: Some(format!("0x{}", "cd".repeat(32))),
            burn_block_height: Some(105),
            confirmations: 1,
            is_final: false,
            source: EventSource::Observer,
            reason: None,
            reverted: None,
            at: "2026-01-01T00:00:00Z".into(),
            reason_data: None,
            retry: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::event_of as event;
    use super::*;

    #[test]
    fn filters_match_what_they_name() {
        let e = event(1, 7, "SP_A", "SP_B");
        assert!(Filter::All.matches(&e));
        assert!(Filter::Payment(PaymentId([7; 32])).matches(&e));
        assert!(!Filter::Payment(PaymentId([8; 32])).matches(&e));
        assert!(Filter::Principal("SP_A".into()).matches(&e), "as sender");
        assert!(Filter::Principal("SP_B".into()).matches(&e), "as recipient");
        assert!(!Filter::Principal("SP_C".into()).matches(&e));
    }

    #[test]
    fn asset_filters_key_stx_and_each_token_by_contract() {
        const TOKEN: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.test-sbtc";
        let with = |asset: Option<&str>| PaymentEvent {
            asset: asset.map(str::to_string),
            ..event(1, 7, "SP_A", "SP_B")
        };
        let escrow_stx = with(None);
        let exact_stx = with(Some("STX"));
        let token = with(Some(&format!("{TOKEN}::test-sbtc")));
        let pending_token = with(Some(TOKEN));
        for f in [Filter::asset("STX"), Filter::asset("stx")] {
            assert!(f.matches(&escrow_stx) && f.matches(&exact_stx));
            assert!(!f.matches(&token) && !f.matches(&pending_token));
        }
        for f in [
            Filter::asset(TOKEN),
            Filter::asset(&format!("{TOKEN}::test-sbtc")),
        ] {
            assert_eq!(f, Filter::Asset(TOKEN.into()));
            assert!(f.matches(&token) && f.matches(&pending_token));
            assert!(!f.matches(&escrow_stx));
        }
        assert!(valid_asset("STX") && valid_asset(TOKEN));
        assert!(valid_asset(&format!("{TOKEN}::test-sbtc")));
        assert!(
            !valid_asset("ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM"),
            "not a contract"
        );
        assert!(!valid_asset(&format!("{TOKEN}::")));
        assert!(!valid_asset("garbage.x"));
    }

    #[test]
    fn typed_filter_narrows_by_type() {
        let e = event(1, 7, "SP_A", "SP_B");
        let any = TypedFilter {
            filter: Filter::All,
            types: vec![],
        };
        let confirmed = TypedFilter {
            filter: Filter::All,
            types: vec![EventType::Confirmed],
        };
        let failed = TypedFilter {
            filter: Filter::All,
            types: vec![EventType::Failed],
        };
        assert!(any.matches(&e) && confirmed.matches(&e) && !failed.matches(&e));
    }

    #[test]
    fn principals_are_checksummed() {
        assert!(valid_principal("SP2J6ZY48GV1EZ5V2V5RB9MP66SW86PYKKNRV9EJ7"));
        assert!(valid_principal(
            "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.x402-nexus-escrow"
        ));
        // Last character changed: the checksum fails.
        assert!(!valid_principal(
            "SP2J6ZY48GV1EZ5V2V5RB9MP66SW86PYKKNRV9EJ8"
        ));
        assert!(!valid_principal("not-a-principal"));
        assert!(!valid_principal(""));
    }
}
