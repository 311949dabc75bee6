//! The payer's funds at the node's tip, read through the RPC, then checked
//! by the pure `nexus_core::x402::funds::check`.

use clarity::vm::types::{PrincipalData, Value};

use nexus_core::x402::funds::{check as check_funds, Funds};
use nexus_core::x402::{Reason, Refusal, Verified};
use nexus_stacks::{ContractRef, StacksRpc};

/// Reads what the payer holds and checks it can pay `v`. An RPC that is
/// missing or failing is `unexpected_verify_error`: nothing about the payment
/// is concluded from it.
pub async fn check(rpc: Option<&dyn StacksRpc>, v: &Verified) -> Result<(), Refusal> {
    let Some(rpc) = rpc else {
        return Err(unexpected(
            "this node has no stacks-node RPC configured (rpc_url), so it cannot check the \
             payer's balance",
        ));
    };
    let funds = read(rpc, v).await.map_err(|e| unexpected(&e))?;
    check_funds(v, &funds).map_err(|mut r| {
        r.payer = Some(v.payer.clone());
        r
    })
}

fn unexpected(message: &str) -> Refusal {
    Refusal::new(Reason::UnexpectedVerifyError, message)
}

async fn read(rpc: &dyn StacksRpc, v: &Verified) -> Result<Funds, String> {
    let tip = rpc
        .info()
        .await
        .map_err(|e| format!("stacks-node /v2/info: {e}"))?
        .tip()
        .map_err(|e| format!("stacks-node /v2/info: {e}"))?;
    let account = rpc
        .account(&v.payer, &tip)
        .await
        .map_err(|e| format!("stacks-node /v2/accounts/{}: {e}", v.payer))?;
    let token = match v.paid.token() {
        Some(t) => {
            let who = PrincipalData::parse(&v.payer).map_err(|e| e.to_string())?;
            let answer = rpc
                .call_read(
                    &ContractRef::from(&t.contract),
                    "get-balance",
                    &[Value::Principal(who)],
                    &v.payer,
                    &tip,
                )
                .await
                .map_err(|e| format!("{}'s get-balance: {e}", t.contract))?;
            Some(balance_of(&answer).ok_or_else(|| {
                format!(
                    "{}'s get-balance answered {answer}, not (ok uint): is it a SIP-010 token?",
                    t.contract
                )
            })?)
        }
        _ => None,
    };
    Ok(Funds {
        stx: account.balance,
        nonce: account.nonce,
        token,
    })
}

/// SIP-010's `get-balance` answer, `(ok uint)`.
fn balance_of(v: &Value) -> Option<u128> {
    match v {
        Value::Response(r) if r.committed => match &*r.data {
            Value::UInt(n) => Some(*n),
            _ => None,
        },
        _ => None,
    }
}
