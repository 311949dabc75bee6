//! Webhook signatures: `x402-nexus-signature` is the hex HMAC-SHA256, keyed
//! with the endpoint's secret, of `{timestamp}.{body}`, where `timestamp` is
//! the `x402-nexus-timestamp` header (unix seconds). Signing the timestamp
//! with the body lets a receiver refuse replays older than its tolerance.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Header carrying the hex signature.
pub const SIGNATURE_HEADER: &str = "x402-nexus-signature";
/// Header carrying the unix-seconds timestamp that was signed.
pub const TIMESTAMP_HEADER: &str = "x402-nexus-timestamp";
/// Header carrying the event id (the same on every retry of one event to one endpoint).
pub const EVENT_ID_HEADER: &str = "x402-nexus-event-id";
/// How far a timestamp may be from the receiver's clock by default.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The hex signature of `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp.to_string().as_bytes(), body))
}

fn mac(secret: &[u8], timestamp: &[u8], body: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    m.update(timestamp);
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// Why a webhook was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the timestamp is not unix seconds")]
    BadTimestamp,
    #[error("the timestamp is {0} s away from now, beyond the tolerance")]
    Expired(u64),
    #[error("the signature is not 64 hex digits")]
    Malformed,
    #[error("the signature does not match")]
    Mismatch,
}

/// Check a webhook as a receiver: `payload` is the raw request body,
/// `signature` and `timestamp` the `x402-nexus-signature` and
/// `x402-nexus-timestamp` headers, `secret` the endpoint's secret, and
/// `tolerance` how far the timestamp may be from now
/// ([`DEFAULT_TOLERANCE`], 5 minutes, unless you have a reason). The
/// comparison is constant-time.
///
/// ```
/// use nexus_delivery::webhook::{sign, verify_webhook_signature, DEFAULT_TOLERANCE};
/// let body = br#"{"seq":1,"type":"payment:confirmed"}"#;
/// let ts = std::time::SystemTime::now()
///     .duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
/// let sig = sign(b"whsec", ts, body);
/// assert!(verify_webhook_signature(body, &sig, &ts.to_string(), "whsec", DEFAULT_TOLERANCE).is_ok());
/// assert!(verify_webhook_signature(body, &sig, &ts.to_string(), "other", DEFAULT_TOLERANCE).is_err());
/// ```
pub fn verify_webhook_signature(
    payload: &[u8],
    signature: &str,
    timestamp: &str,
    secret: &str,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    verify_at(payload, signature, timestamp, secret, tolerance, now)
}

/// [`verify_webhook_signature`] with `now` (unix seconds) given.
pub fn verify_at(
    payload: &[u8],
    signature: &str,
    timestamp: &str,
    secret: &str,
    tolerance: Duration,
    now: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = now.abs_diff(ts);
    if skew > tolerance.as_secs() {
        return Err(SignatureError::Expired(skew));
    }
    let given = hex::decode(signature.trim()).map_err(|_| SignatureError::Malformed)?;
    if given.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let expected = mac(secret.as_bytes(), timestamp.trim().as_bytes(), payload);
    if bool::from(expected.ct_eq(given.as_slice())) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_hmac() {
        // RFC 4231 test case 2 shape: key "Jefe"; message "{ts}.{body}".
        let sig = sign(b"Jefe", 1_700_000_000, b"what do ya want for nothing?");
        let mut m = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        m.update(b"1700000000.what do ya want for nothing?");
        assert_eq!(sig, hex::encode(m.finalize().into_bytes()));
        assert_eq!(sig.len(), 64);
    }

    #[test]
    fn verifies_and_refuses() {
        let body = b"{\"seq\":1}";
        let ts = 1_700_000_000;
        let sig = sign(b"s3cret", ts, body);
        let t = DEFAULT_TOLERANCE;
        assert_eq!(
            verify_at(body, &sig, "1700000000", "s3cret", t, ts + 10),
            Ok(())
        );
        assert_eq!(
            verify_at(body, &sig, "1700000000", "wrong", t, ts),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_at(b"{\"seq\":2}", &sig, "1700000000", "s3cret", t, ts),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_at(body, &sig, "1700000001", "s3cret", t, ts),
            Err(SignatureError::Mismatch),
            "the timestamp is signed"
        );
        assert_eq!(
            verify_at(body, &sig, "1700000000", "s3cret", t, ts + 301),
            Err(SignatureError::Expired(301))
        );
        assert_eq!(
            verify_at(body, "zz", "1700000000", "s3cret", t, ts),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_at(body, &sig, "soon", "s3cret", t, ts),
            Err(SignatureError::BadTimestamp)
        );
    }
}
