/**
 * Shared vocabulary for the escrow contract tests: named accounts, the
 * contract's error codes and constants, call wrappers, and decoders for the
 * print events documented in contracts/EVENTS.md.
 */
import { Cl, type ClarityValue } from "@stacks/transactions";
import type { ParsedTransactionResult } from "@stacks/clarinet-sdk";
import { createHash } from "node:crypto";

export const CONTRACT = "x402-nexus-escrow";
export const PROXY = "x402-nexus-pause-proxy";

const accounts = simnet.getAccounts();
function account(name: string): string {
  const address = accounts.get(name);
  if (!address) throw new Error(`account ${name} missing from settings/Devnet.toml`);
  return address;
}

/** Deploys the escrow, so it is the initial owner. */
export const deployer = account("deployer");
/** Payer in most tests. */
export const alice = account("wallet_1");
/** Payee in most tests. */
export const bob = account("wallet_2");
/** Third party: neither sender nor recipient. */
export const carol = account("wallet_3");
/** Second payer / candidate owner. */
export const dave = account("wallet_4");

export const escrowId = `${deployer}.${CONTRACT}`;
/** The plain SIP-010 test token, and the one whose transfer can lie. */
export const testToken = `${deployer}.test-sbtc`;
export const badToken = `${deployer}.test-bad-token`;
export const proxyId = `${deployer}.${PROXY}`;

/** Blocks between creation and expiry (PAYMENT-TIMEOUT). */
export const TIMEOUT = 100n;

/** The contract's error codes; contracts/EVENTS.md is the reference. */
export const ERR = {
  NOT_OWNER: 100n,
  PAUSED: 101n,
  ZERO_AMOUNT: 102n,
  SELF_PAYMENT: 103n,
  ID_USED: 104n,
  NOT_FOUND: 105n,
  NOT_RECIPIENT: 106n,
  NOT_PENDING: 107n,
  EXPIRED: 108n,
  NOT_EXPIRED: 109n,
  TRANSFER_FAILED: 110n,
  NOT_PROPOSED_OWNER: 111n,
  ALREADY_PAUSED: 112n,
  NOT_PAUSED: 113n,
  TOKEN_NOT_ALLOWED: 114n,
  WRONG_TOKEN: 115n,
} as const;

/** A deterministic 32-byte payment id: sha256 of a label. */
export function paymentId(label: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(label).digest());
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

/** A memo as the contract stores it: up to 34 bytes of UTF-8. */
export function memo(text: string): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > 34) throw new Error(`memo too long: ${text}`);
  return bytes;
}

// ---------------------------------------------------------------------------
// Calls

export function createPayment(
  sender: string,
  id: Uint8Array,
  recipient: string,
  amount: bigint,
  memoBytes: Uint8Array = memo("x402"),
): ParsedTransactionResult {
  return simnet.callPublicFn(
    CONTRACT,
    "create-payment",
    [Cl.buffer(id), Cl.principal(recipient), Cl.uint(amount), Cl.buffer(memoBytes)],
    sender,
  );
}

export function claimPayment(caller: string, id: Uint8Array): ParsedTransactionResult {
  return simnet.callPublicFn(CONTRACT, "claim-payment", [Cl.buffer(id)], caller);
}

export function refundExpired(caller: string, id: Uint8Array): ParsedTransactionResult {
  return simnet.callPublicFn(CONTRACT, "refund-expired", [Cl.buffer(id)], caller);
}

// Token payments: `token` is a contract id (`ADDR.name`).

export function createPaymentFt(
  sender: string,
  id: Uint8Array,
  recipient: string,
  amount: bigint,
  token: string,
  memoBytes: Uint8Array = memo("x402"),
): ParsedTransactionResult {
  return simnet.callPublicFn(
    CONTRACT,
    "create-payment-ft",
    [Cl.buffer(id), Cl.principal(recipient), Cl.uint(amount), Cl.buffer(memoBytes), Cl.principal(token)],
    sender,
  );
}

export function claimPaymentFt(caller: string, id: Uint8Array, token: string): ParsedTransactionResult {
  return simnet.callPublicFn(CONTRACT, "claim-payment-ft", [Cl.buffer(id), Cl.principal(token)], caller);
}

export function refundExpiredFt(caller: string, id: Uint8Array, token: string): ParsedTransactionResult {
  return simnet.callPublicFn(CONTRACT, "refund-expired-ft", [Cl.buffer(id), Cl.principal(token)], caller);
}

export function allowToken(caller: string, token: string, assetName: string): ParsedTransactionResult {
  return simnet.callPublicFn(CONTRACT, "allow-token", [Cl.principal(token), Cl.stringAscii(assetName)], caller);
}

export function disallowToken(caller: string, token: string): ParsedTransactionResult {
  return simnet.callPublicFn(CONTRACT, "disallow-token", [Cl.principal(token)], caller);
}

/** `token`'s balance of `who`, as the token's own get-balance reports it. */
export function tokenBalance(token: string, who: string): bigint {
  const r = simnet.callReadOnlyFn(token, "get-balance", [Cl.principal(who)], deployer).result;
  if (r.type !== "ok" || r.value.type !== "uint") throw new Error(`get-balance of ${who}: ${r.type}`);
  return BigInt(r.value.value);
}

/** The FT transfer events of a result, in order, as plain data. */
export function ftTransfers(
  result: ParsedTransactionResult,
): { asset: string; sender: string; recipient: string; amount: string }[] {
  return result.events
    .filter((e) => e.event === "ft_transfer_event")
    .map((e) => ({
      asset: e.data.asset_identifier as string,
      sender: e.data.sender as string,
      recipient: e.data.recipient as string,
      amount: e.data.amount as string,
    }));
}

export function pause(caller: string): ParsedTransactionResult {
  return simnet.callPublicFn(CONTRACT, "pause", [], caller);
}

export function unpause(caller: string): ParsedTransactionResult {
  return simnet.callPublicFn(CONTRACT, "unpause", [], caller);
}

export function proposeOwner(caller: string, newOwner: string): ParsedTransactionResult {
  return simnet.callPublicFn(CONTRACT, "propose-owner", [Cl.principal(newOwner)], caller);
}

export function acceptOwner(caller: string): ParsedTransactionResult {
  return simnet.callPublicFn(CONTRACT, "accept-owner", [], caller);
}

export function readOnly(fn: string, args: ClarityValue[] = []): ClarityValue {
  return simnet.callReadOnlyFn(CONTRACT, fn, args, deployer).result;
}

export function getPayment(id: Uint8Array): ClarityValue {
  return readOnly("get-payment", [Cl.buffer(id)]);
}

// ---------------------------------------------------------------------------
// Chain state

/** uSTX balance of a standard or contract principal. */
export function stxBalance(principal: string): bigint {
  return simnet.getAssetsMap().get("STX")?.get(principal) ?? 0n;
}

/** Balances of the given principals, for before/after comparisons. */
export function balances(...principals: string[]): Record<string, bigint> {
  return Object.fromEntries(principals.map((p) => [p, stxBalance(p)]));
}

/**
 * Mine empty blocks so that the NEXT transaction is mined at `height`.
 * (Each `callPublicFn` is mined in block `simnet.blockHeight + 1`.)
 */
export function mineUntilNextTxAt(height: bigint): void {
  const current = BigInt(simnet.blockHeight);
  const toMine = height - 1n - current;
  if (toMine < 0n) throw new Error(`already past height ${height} (at ${current})`);
  if (toMine > 0n) simnet.mineEmptyStacksBlocks(Number(toMine));
}

/** The stacks block height the next transaction will be mined at. */
export function nextTxHeight(): bigint {
  return BigInt(simnet.blockHeight) + 1n;
}

// ---------------------------------------------------------------------------
// Events

/** The `value`s of a result's print events, in order. */
export function printEvents(result: ParsedTransactionResult): ClarityValue[] {
  return result.events
    .filter((e) => e.event === "print_event")
    .map((e) => e.data.value as ClarityValue);
}

/** The STX transfer events of a result, in order, as plain data. */
export function stxTransfers(
  result: ParsedTransactionResult,
): { sender: string; recipient: string; amount: string }[] {
  return result.events
    .filter((e) => e.event === "stx_transfer_event")
    .map((e) => ({
      sender: e.data.sender as string,
      recipient: e.data.recipient as string,
      amount: e.data.amount as string,
    }));
}

/** The expected print tuple of a payment event (see EVENTS.md). */
export function paymentEvent(fields: {
  event: "payment-created" | "payment-claimed" | "payment-refunded";
  id: Uint8Array;
  sender: string;
  recipient: string;
  amount: bigint;
  memo: Uint8Array;
  expiresAt: bigint;
  blockHeight: bigint;
  /** The token contract; absent for STX. */
  token?: string;
}): ClarityValue {
  return Cl.tuple({
    event: Cl.stringAscii(fields.event),
    "payment-id": Cl.buffer(fields.id),
    sender: Cl.principal(fields.sender),
    recipient: Cl.principal(fields.recipient),
    amount: Cl.uint(fields.amount),
    memo: Cl.buffer(fields.memo),
    "expires-at": Cl.uint(fields.expiresAt),
    token: tokenField(fields.token),
    "block-height": Cl.uint(fields.blockHeight),
  });
}

/** The `token` field of prints and records: none for STX. */
function tokenField(token?: string): ClarityValue {
  return token ? Cl.some(Cl.principal(token)) : Cl.none();
}

/** The expected stored record of a payment (get-payment's `some` value). */
export function paymentRecord(fields: {
  sender: string;
  recipient: string;
  amount: bigint;
  memo: Uint8Array;
  createdAt: bigint;
  status: "pending" | "claimed" | "refunded";
  token?: string;
}): ClarityValue {
  return Cl.tuple({
    sender: Cl.principal(fields.sender),
    recipient: Cl.principal(fields.recipient),
    amount: Cl.uint(fields.amount),
    memo: Cl.buffer(fields.memo),
    "created-at": Cl.uint(fields.createdAt),
    "expires-at": Cl.uint(fields.createdAt + TIMEOUT),
    status: Cl.stringAscii(fields.status),
    token: tokenField(fields.token),
  });
}
