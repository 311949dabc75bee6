//! The whole table: every reason stacks-core's `MemPoolRejection::into_json`
//! can send, the reasons whose `reason_data` decides, unknown reasons, and
//! every transport outcome (real ones for the socket errors).

use std::time::Duration;

use nexus_stacks::{HttpProvider, StacksRpc};
use serde_json::json;

use super::*;
use Disposition::*;

const OURS: &str = "0xcaf6fd60ae05b0c2d19ef14ab6a7670b1095d117fa7c80224c74e76214d0a791";

/// Written out again from stacks-core (`into_json`, in the order it lists
/// them), independently of `KNOWN_REASONS`: the oracle.
const STACKS_CORE: &[(&str, Disposition)] = &[
    ("Serialization", Fail),
    ("Deserialization", Fail),
    ("TooMuchChaining", Retry),
    ("BadTransactionVersion", Fail),
    ("SignatureValidation", Fail),
    ("FeeTooLow", Fail),
    ("TransferRecipientCannotEqualSender", Fail),
    ("TransferAmountMustBePositive", Fail),
    ("BadNonce", Fail), // without readable nonces; see below
    ("NotEnoughFunds", Retry),
    ("EstimatorError", Retry),
    ("NoSuchContract", Fail),
    ("NoSuchPublicFunction", Fail),
    ("BadFunctionArgument", Fail),
    ("ConflictingNonceInMempool", Retry), // without a holder txid; see below
    ("ContractAlreadyExists", Fail),
    ("PoisonMicroblocksDoNotConflict", Fail),
    ("PoisonMicroblockHasUnknownPubKeyHash", Fail),
    ("PoisonMicroblockIsInvalid", Fail),
    ("BadAddressVersionByte", Fail),
    ("NoCoinbaseViaMempool", Fail),
    ("NoTenureChangeViaMempool", Fail),
    ("ServerFailureNoSuchChainTip", Retry),
    ("ServerFailureDatabase", Retry),
    ("TemporarilyBlacklisted", Retry),
    ("ServerFailureOther", Retry),
];

fn rejected(reason: &str, reason_data: Option<Value>) -> Result<BroadcastAnswer, RpcError> {
    Ok(BroadcastAnswer::Rejected {
        reason: reason.into(),
        reason_data,
        txid: Some(OURS.into()),
        message: format!("transaction rejected: {reason}"),
    })
}

fn status(status: u16, retry_after: Option<u64>) -> RpcError {
    RpcError::Status {
        provider: "http://a".into(),
        url: "http://a/v2/transactions".into(),
        status,
        retry_after: retry_after.map(Duration::from_secs),
        body: String::new(),
    }
}

#[test]
fn every_stacks_core_reason_is_in_the_table_with_the_documented_disposition() {
    assert_eq!(KNOWN_REASONS.len(), STACKS_CORE.len());
    for (reason, want) in STACKS_CORE {
        assert!(
            KNOWN_REASONS.iter().any(|(r, _)| r == reason),
            "{reason} missing from KNOWN_REASONS"
        );
        assert_eq!(classify_rejection(reason, None, OURS), *want, "{reason}");
        let c = classify(&rejected(reason, None), OURS);
        assert_eq!(c.disposition, *want, "{reason}");
        assert_eq!(c.reason, *reason);
        assert_eq!(c.retry_after, None);
        assert_eq!(
            c.provider_fault,
            reason.starts_with("ServerFailure") || *reason == "EstimatorError",
            "{reason}"
        );
    }
    // No rejection is ever a success by itself (only a holder txid makes one).
    assert!(KNOWN_REASONS.iter().all(|(_, d)| !d.is_success()));
}

#[test]
fn bad_nonce_below_is_spent_above_is_a_gap() {
    let d = |expected: Value, actual: Value| json!({"expected": expected, "actual": actual, "principal": "ST2ZRX0K27GW0SP3GJCEMHD95TQGJMKB7G9Y0X1MH", "is_origin": true});
    let case = |data: Value| classify_rejection("BadNonce", Some(&data), OURS);
    // The fixture from stacks-core's openapi examples: 4 sent, 0 expected.
    assert_eq!(case(d(json!(0), json!(4))), Retry);
    assert_eq!(case(d(json!(5), json!(3))), Fail);
    assert_eq!(
        case(d(json!(5), json!(5))),
        Fail,
        "not a nonce problem we can wait out"
    );
    assert_eq!(case(d(json!("2"), json!("9"))), Retry, "digits as strings");
    assert_eq!(case(json!({"expected": 1})), Fail, "half the data");
    assert_eq!(
        case(json!({"expected": -1, "actual": 3})),
        Fail,
        "not a nonce"
    );
    assert_eq!(case(json!("garbage")), Fail);
    // The sponsor's nonce reads the same.
    let sponsor = json!({"expected": 1, "actual": 2, "principal": "ST1...", "is_origin": false});
    assert_eq!(case(sponsor), Retry);
}

#[test]
fn conflicting_nonce_is_already_known_only_when_the_holder_is_ours() {
    let case =
        |data: Option<Value>| classify_rejection("ConflictingNonceInMempool", data.as_ref(), OURS);
    assert_eq!(case(None), Retry, "stacks-core names no holder");
    assert_eq!(case(Some(json!({"txid": OURS}))), AlreadyKnown);
    let bare_upper = OURS.trim_start_matches("0x").to_ascii_uppercase();
    assert_eq!(case(Some(json!({ "txid": bare_upper }))), AlreadyKnown);
    assert_eq!(case(Some(json!({"txid": format!("0x{:064x}", 1)}))), Retry);
    assert_eq!(case(Some(json!({"txid": 7}))), Retry);
    let c = classify(
        &rejected("ConflictingNonceInMempool", Some(json!({"txid": OURS}))),
        OURS,
    );
    assert_eq!(c.disposition, AlreadyKnown);
    assert!(c.disposition.is_success() && c.disposition.is_final());
    assert!(!c.provider_fault);
}

#[test]
fn an_unknown_reason_is_retried_and_kept() {
    for reason in ["SomethingNewIn2027", "", "badnonce", "FEETOOLOW"] {
        assert_eq!(classify_rejection(reason, None, OURS), Retry, "{reason:?}");
    }
    let data = json!({"message": "new"});
    let c = classify(&rejected("SomethingNewIn2027", Some(data.clone())), OURS);
    assert_eq!(
        c,
        Classified {
            disposition: Retry,
            reason: "SomethingNewIn2027".into(),
            reason_data: Some(data),
            retry_after: None,
            provider_fault: false,
        }
    );
}

#[test]
fn accepted_is_done_whatever_txid_form_the_node_used() {
    let ok = |txid: &str| Ok(BroadcastAnswer::Accepted { txid: txid.into() });
    let c = classify(&ok(OURS), OURS);
    assert_eq!((c.disposition, c.reason.as_str()), (Accepted, "Accepted"));
    assert!(c.disposition.is_final() && c.disposition.is_success() && !c.provider_fault);
    let c = classify(&ok(OURS), OURS.trim_start_matches("0x"));
    assert_eq!(c.reason, "Accepted");
    let c = classify(&ok(&format!("0x{:064x}", 1)), OURS);
    assert_eq!(
        (c.disposition, c.reason.as_str()),
        (Accepted, "AcceptedOtherTxid")
    );
}

#[test]
fn http_errors_follow_temporary_vs_permanent() {
    let table: &[(RpcError, Disposition, &str, Option<u64>, bool)] = &[
        (status(500, None), Retry, "Http500", None, true),
        (status(502, None), Retry, "Http502", None, true),
        (status(503, Some(4)), Retry, "Http503", Some(4), true),
        (status(504, None), Retry, "Http504", None, true),
        (status(408, None), Retry, "Http408", None, true),
        (status(429, Some(7)), Retry, "RateLimited", Some(7), true),
        (status(429, None), Retry, "RateLimited", None, true),
        (status(400, None), Fail, "Http400", None, false),
        (status(401, None), Fail, "Http401", None, false),
        (status(404, None), Fail, "Http404", None, false),
        (status(413, None), Fail, "Http413", None, false),
        (
            RpcError::AllOpen {
                retry_after: Duration::from_secs(42),
            },
            Retry,
            "AllProvidersOpen",
            Some(42),
            true,
        ),
        (
            RpcError::Exhausted {
                tried: 2,
                last: Box::new(status(429, Some(9))),
            },
            Retry,
            "RateLimited",
            Some(9),
            true,
        ),
        (
            RpcError::Exhausted {
                tried: 3,
                last: Box::new(status(503, None)),
            },
            Retry,
            "Http503",
            None,
            true,
        ),
        (
            RpcError::Decode {
                provider: "http://a".into(),
                url: "http://a/v2/transactions".into(),
                detail: "expected a txid".into(),
            },
            Retry,
            "UnreadableAnswer",
            None,
            true,
        ),
        (
            RpcError::Config("no RPC provider configured".into()),
            Fail,
            "Config",
            None,
            false,
        ),
        (
            RpcError::CallRefused {
                provider: "http://a".into(),
                cause: "x".into(),
            },
            Fail,
            "CallRefused",
            None,
            false,
        ),
    ];
    for (err, disposition, reason, retry_after, fault) in table {
        let c = classify(&Err(dummy_clone(err)), OURS);
        assert_eq!(c.disposition, *disposition, "{err}");
        assert_eq!(c.reason, *reason, "{err}");
        assert_eq!(c.retry_after, retry_after.map(Duration::from_secs), "{err}");
        assert_eq!(c.provider_fault, *fault, "{err}");
        assert_eq!(c.reason_data, None);
    }
}

/// `RpcError` is not `Clone` (it holds a `reqwest::Error`); these are not.
fn dummy_clone(e: &RpcError) -> RpcError {
    match e {
        RpcError::Status {
            provider,
            url,
            status,
            retry_after,
            body,
        } => RpcError::Status {
            provider: provider.clone(),
            url: url.clone(),
            status: *status,
            retry_after: *retry_after,
            body: body.clone(),
        },
        RpcError::AllOpen { retry_after } => RpcError::AllOpen {
            retry_after: *retry_after,
        },
        RpcError::Exhausted { tried, last } => RpcError::Exhausted {
            tried: *tried,
            last: Box::new(dummy_clone(last)),
        },
        RpcError::Decode {
            provider,
            url,
            detail,
        } => RpcError::Decode {
            provider: provider.clone(),
            url: url.clone(),
            detail: detail.clone(),
        },
        RpcError::Config(s) => RpcError::Config(s.clone()),
        RpcError::CallRefused { provider, cause } => RpcError::CallRefused {
            provider: provider.clone(),
            cause: cause.clone(),
        },
        RpcError::Transport { .. } => unreachable!("built from real sockets below"),
    }
}

/// Real socket failures, through the real client.
#[tokio::test]
async fn refused_and_timed_out_are_retried() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let p = HttpProvider::new(&format!("http://{addr}"), None, Duration::from_secs(2)).unwrap();
    let c = classify(&Err(p.info().await.unwrap_err()), OURS);
    assert_eq!((c.disposition, c.reason.as_str()), (Retry, "ConnectFailed"));
    assert!(c.provider_fault);

    // Accepts the connection, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let p = HttpProvider::new(&format!("http://{addr}"), None, Duration::from_millis(200)).unwrap();
    let c = classify(&Err(p.info().await.unwrap_err()), OURS);
    assert_eq!((c.disposition, c.reason.as_str()), (Retry, "Timeout"));
    assert!(c.provider_fault && c.retry_after.is_none());
    hold.abort();
}
