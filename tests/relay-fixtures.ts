/**
 * Records tests/fixtures/relay-txs.json: real signed transactions, valid and
 * invalid, that a client could POST to the relay. The Rust validator
 * (core/src/validate.rs) must accept every "valid" case with the recorded
 * fields and reject every other case on the recorded field with a message
 * containing the recorded text.
 *
 *   npm run relay-fixtures          # (re)write the fixture
 *   npm run relay-fixtures:check    # regenerate into a temp file, diff, exit 1 on drift
 *
 * Output is deterministic: fixed nonces and fees, payment ids are sha256 of
 * labels, and signatures use RFC 6979 nonces. Cases that @stacks/transactions
 * will not build directly (another anchor mode, another chain id) are built
 * unsigned, altered, then signed, so their signatures are still valid.
 *
 * Post-condition rule the cases pin down: a post-condition limits what a
 * principal may send, and create-payment makes the sender send exactly
 * `amount` uSTX (nothing else moves). So a create succeeds only if every
 * post-condition admits that movement: willSendEq(amount), willSendLte(x >=
 * amount), willSendGte(x <= amount), willSendGt(x < amount) and
 * willSendLt(x > amount) on the sender all do. The relay requires Deny mode
 * plus at least one such STX condition on the sender, so the client's wallet,
 * not the contract, bounds what leaves the account. The `-ft` functions
 * follow the same rule with the token (an FT condition on the token the
 * call names) in place of STX.
 */
import { createHash } from "node:crypto";
import {
  AnchorMode,
  Cl,
  Pc,
  PostConditionMode,
  TransactionSigner,
  getAddressFromPrivateKey,
  makeContractCall,
  makeSTXTokenTransfer,
  makeUnsignedContractCall,
  privateKeyToPublic,
  sponsorTransaction,
  type ClarityValue,
  type PostCondition,
  type StacksTransactionWire,
} from "@stacks/transactions";
import { devnetAccount, loadDevnetAccounts, type DevnetAccount } from "./devnet-keys";
import { writeOrCheck } from "./fixture-file";

export const FIXTURE_PATH = "tests/fixtures/relay-txs.json";
const CONTRACT_NAME = "x402-nexus-escrow";
/** Chain id of testnet and devnet (the relay's default policy). */
const TESTNET_CHAIN_ID = 0x80000000;
/** Fixed fee (uSTX) of every transaction. */
const FEE = 2000;
const AMOUNT = 1_000_000n;

type Expect = "valid" | { field: string; contains: string };

type RelayCase = {
  label: string;
  tx_hex: string;
  /** null for byte strings edited after serialization (garbage, truncated, altered). */
  txid: string | null;
  expect: Expect;
  /** The decoded call, for valid cases. */
  function?: string;
  payment_id?: string;
  sender?: string;
  recipient?: string;
  amount?: string;
  memo?: string;
  /** The `-ft` functions: the token contract named. */
  token?: string;
  nonce?: number;
  fee?: number;
};

type Fixture = { contract_id: string; chain_id: number; cases: RelayCase[] };

function hex0x(bytes: string | Uint8Array): string {
  const h = typeof bytes === "string" ? bytes.toLowerCase() : Buffer.from(bytes).toString("hex");
  return h.startsWith("0x") ? h : `0x${h}`;
}

function paymentIdBytes(label: string): Buffer {
  return createHash("sha256").update(`x402-nexus relay fixture ${label}`).digest();
}

function memo(text: string): ClarityValue {
  return Cl.buffer(new TextEncoder().encode(text));
}

/** Generates the fixture and returns it as pretty-printed JSON. */
export async function generateFixture(): Promise<string> {
  const devnet = loadDevnetAccounts();
  const account = (name: string) => devnetAccount(devnet, name);
  const deployer = account("deployer");
  const w1 = account("wallet_1");
  const w2 = account("wallet_2");
  const w3 = account("wallet_3");
  const contractId = `${deployer.address}.${CONTRACT_NAME}`;
  const cases: RelayCase[] = [];

  const createArgs = (label: string, to: string, amount: bigint, note = "invoice") => [
    Cl.buffer(paymentIdBytes(label)),
    Cl.principal(to),
    Cl.uint(amount),
    memo(note),
  ];
  const senderEq = (from: DevnetAccount, amount: bigint) => [Pc.principal(from.address).willSendEq(amount).ustx()];
  const contractEq = (amount: bigint) => [Pc.principal(contractId).willSendEq(amount).ustx()];

  type CallOpts = {
    from?: DevnetAccount;
    fn?: string;
    args: ClarityValue[];
    pcs?: PostCondition[];
    mode?: "allow" | "deny";
    contractAddress?: string;
    contractName?: string;
    network?: "devnet" | "mainnet";
    nonce?: number;
    sponsored?: boolean;
  };
  function callOptions(o: CallOpts) {
    return {
      contractAddress: o.contractAddress ?? deployer.address,
      contractName: o.contractName ?? CONTRACT_NAME,
      functionName: o.fn ?? "create-payment",
      functionArgs: o.args,
      network: o.network ?? "devnet",
      nonce: o.nonce ?? 7,
      fee: FEE,
      postConditionMode: o.mode ?? "deny",
      postConditions: o.pcs ?? [],
      sponsored: o.sponsored,
    } as const;
  }
  const signedCall = (o: CallOpts) => makeContractCall({ ...callOptions(o), senderKey: (o.from ?? w1).privateKey });

  /** Builds unsigned, lets `alter` change a signed field, then signs as the origin. */
  async function alteredCall(o: CallOpts, alter: (tx: StacksTransactionWire) => void): Promise<StacksTransactionWire> {
    const from = o.from ?? w1;
    const tx = await makeUnsignedContractCall({ ...callOptions(o), publicKey: privateKeyToPublic(from.privateKey) });
    alter(tx);
    new TransactionSigner(tx).signOrigin(from.privateKey);
    return tx;
  }

  function push(label: string, tx: StacksTransactionWire | string, expect: Expect, decoded?: Partial<RelayCase>): void {
    const isTx = typeof tx !== "string";
    cases.push({
      label,
      tx_hex: hex0x(isTx ? tx.serialize() : tx),
      txid: isTx ? hex0x(tx.txid()) : null,
      expect,
      ...decoded,
    });
  }
  /** Records a create-payment from wallet_1 to wallet_2 that the relay must accept. */
  function pushValidCreate(label: string, tx: StacksTransactionWire, id: string, amount: bigint, note = "invoice", nonce = 7, fee = FEE): void {
    push(label, tx, "valid", {
      function: "create-payment",
      payment_id: hex0x(paymentIdBytes(id)),
      sender: w1.address,
      recipient: w2.address,
      amount: String(amount),
      memo: hex0x(new TextEncoder().encode(note)),
      nonce,
      fee,
    });
  }
  const reject = (field: string, contains: string): Expect => ({ field, contains });

  // ---- valid -------------------------------------------------------------
  const createEq = await signedCall({ args: createArgs("eq", w2.address, AMOUNT), pcs: senderEq(w1, AMOUNT) });
  pushValidCreate("create: Deny, sender willSendEq(amount)", createEq, "eq", AMOUNT);
  pushValidCreate(
    "create: Deny, sender willSendLte(2 x amount)",
    await signedCall({ args: createArgs("lte", w2.address, AMOUNT), pcs: [Pc.principal(w1.address).willSendLte(2n * AMOUNT).ustx()] }),
    "lte",
    AMOUNT,
  );
  pushValidCreate(
    "create: Deny, sender willSendGte(amount)",
    await signedCall({ args: createArgs("gte", w2.address, AMOUNT), pcs: [Pc.principal(w1.address).willSendGte(AMOUNT).ustx()] }),
    "gte",
    AMOUNT,
  );
  pushValidCreate(
    "create: Deny, origin willSendGt(amount - 1) and willSendLt(amount + 1)",
    await signedCall({
      args: createArgs("origin", w2.address, AMOUNT),
      pcs: [Pc.origin().willSendGt(AMOUNT - 1n).ustx(), Pc.origin().willSendLt(AMOUNT + 1n).ustx()],
    }),
    "origin",
    AMOUNT,
  );
  pushValidCreate(
    "create: empty memo, contract willSendEq(0)",
    await signedCall({ args: createArgs("empty-memo", w2.address, 1n, ""), pcs: [...senderEq(w1, 1n), ...contractEq(0n)] }),
    "empty-memo",
    1n,
    "",
  );
  pushValidCreate(
    "create: 34-byte memo",
    await signedCall({ args: createArgs("memo34", w2.address, AMOUNT, "m".repeat(34)), pcs: senderEq(w1, AMOUNT) }),
    "memo34",
    AMOUNT,
    "m".repeat(34),
  );
  const unsponsored = await signedCall({ args: createArgs("sponsored", w2.address, AMOUNT), pcs: senderEq(w1, AMOUNT), sponsored: true });
  pushValidCreate(
    "create: sponsored by wallet_3 (sender is the origin, fee is the sponsor's)",
    await sponsorTransaction({ transaction: unsponsored, sponsorPrivateKey: w3.privateKey, fee: 3000, sponsorNonce: 4, network: "devnet" }),
    "sponsored",
    AMOUNT,
    "invoice",
    7,
    3000,
  );
  const oneId = (label: string) => [Cl.buffer(paymentIdBytes(label))];
  push("claim-payment: Deny, contract willSendEq(amount)", await signedCall({ from: w2, fn: "claim-payment", args: oneId("eq"), pcs: contractEq(AMOUNT), nonce: 3 }), "valid", {
    function: "claim-payment",
    payment_id: hex0x(paymentIdBytes("eq")),
    sender: w2.address,
    nonce: 3,
    fee: FEE,
  });
  push("refund-expired: Deny, contract willSendGte(1)", await signedCall({ from: w3, fn: "refund-expired", args: oneId("lte"), pcs: [Pc.principal(contractId).willSendGte(1n).ustx()], nonce: 5 }), "valid", {
    function: "refund-expired",
    payment_id: hex0x(paymentIdBytes("lte")),
    sender: w3.address,
    nonce: 5,
    fee: FEE,
  });
  push("refund-expired: Allow, no post-conditions", await signedCall({ from: w3, fn: "refund-expired", args: oneId("gte"), mode: "allow", nonce: 6 }), "valid", {
    function: "refund-expired",
    payment_id: hex0x(paymentIdBytes("gte")),
    sender: w3.address,
    nonce: 6,
    fee: FEE,
  });

  // ---- token payments (the -ft functions) --------------------------------
  const tokenId = `${deployer.address}.test-sbtc` as const;
  const token = Cl.principal(tokenId);
  const tokenEq = (who: string, amount: bigint) => [Pc.principal(who).willSendEq(amount).ft(tokenId, "test-sbtc")];
  const ftCreate = (label: string, pcs: PostCondition[], mode: "allow" | "deny" = "deny", tokenArg: ClarityValue = token) =>
    signedCall({ fn: "create-payment-ft", args: [...createArgs(label, w2.address, AMOUNT), tokenArg], pcs, mode });
  push("create-payment-ft: Deny, sender willSendEq(amount) of the token", await ftCreate("ft-eq", tokenEq(w1.address, AMOUNT)), "valid", {
    function: "create-payment-ft",
    payment_id: hex0x(paymentIdBytes("ft-eq")),
    sender: w1.address,
    recipient: w2.address,
    amount: String(AMOUNT),
    memo: hex0x(new TextEncoder().encode("invoice")),
    token: tokenId,
    nonce: 7,
    fee: FEE,
  });
  push(
    "claim-payment-ft: Deny, contract willSendEq(amount) of the token",
    await signedCall({ from: w2, fn: "claim-payment-ft", args: [...oneId("ft-eq"), token], pcs: tokenEq(contractId, AMOUNT), nonce: 3 }),
    "valid",
    { function: "claim-payment-ft", payment_id: hex0x(paymentIdBytes("ft-eq")), sender: w2.address, token: tokenId, nonce: 3, fee: FEE },
  );
  push(
    "refund-expired-ft: Allow, no post-conditions",
    await signedCall({ from: w3, fn: "refund-expired-ft", args: [...oneId("ft-eq"), token], mode: "allow", nonce: 6 }),
    "valid",
    { function: "refund-expired-ft", payment_id: hex0x(paymentIdBytes("ft-eq")), sender: w3.address, token: tokenId, nonce: 6, fee: FEE },
  );
  push("create-payment-ft in Allow mode", await ftCreate("ft-allow", tokenEq(w1.address, AMOUNT), "allow"), reject("post_condition_mode", "Deny"));
  push(
    "create-payment-ft without post-conditions",
    await ftCreate("ft-none", []),
    reject("post_conditions", `Pc.principal("${w1.address}").willSendEq(${AMOUNT}).ft("${tokenId}"`),
  );
  push("create-payment-ft with an STX condition instead of the token's", await ftCreate("ft-stx", senderEq(w1, AMOUNT)), reject("post_conditions", "sends nothing"));
  push("create-payment-ft, token willSendEq(amount - 1)", await ftCreate("ft-short", tokenEq(w1.address, AMOUNT - 1n)), reject("post_conditions", "does not admit"));
  push(
    "create-payment-ft, a condition on another token",
    await ftCreate("ft-other", [...tokenEq(w1.address, AMOUNT), Pc.principal(w1.address).willSendEq(5n).ft(`${deployer.address}.test-bad-token`, "bad-token")]),
    reject("post_conditions", "does not move that token"),
  );
  push("create-payment-ft, token given as a standard principal", await ftCreate("ft-std", tokenEq(w1.address, AMOUNT), "deny", Cl.principal(w3.address)), reject("args", "token"));
  push(
    "claim-payment-ft in Deny mode without post-conditions",
    await signedCall({ from: w2, fn: "claim-payment-ft", args: [...oneId("ft-eq"), token] }),
    reject("post_conditions", "post-condition for the token"),
  );

  // ---- invalid: bytes ------------------------------------------------------
  const createHex = createEq.serialize();
  push("garbage bytes", "0xdeadbeef", reject("tx", "not a Stacks transaction"));
  push("truncated transaction", createHex.slice(0, createHex.length - 10), reject("tx", "not a Stacks transaction"));
  push("valid transaction plus a trailing byte", `${createHex}00`, reject("tx", "trailing"));
  // Byte 60 lies inside the origin's 65-byte signature (1 + 4 + 1 + 1 + 20 + 8 + 8 + 1 = 44 bytes precede it).
  const sigBytes = Buffer.from(createHex, "hex");
  sigBytes[60] ^= 0x01;
  push("origin signature altered", sigBytes.toString("hex"), reject("signature", "sign"));
  push("sponsored, sponsor has not signed", unsponsored, reject("signature", "sponsor"));
  push(
    "post-condition mode Originator (0x03)",
    await alteredCall({ args: createArgs("originator", w2.address, AMOUNT), pcs: senderEq(w1, AMOUNT) }, (tx) => {
      tx.postConditionMode = PostConditionMode.Originator;
    }),
    reject("tx", "post-condition mode"),
  );

  // ---- invalid: network ----------------------------------------------------------
  push("mainnet transaction", await signedCall({ args: createArgs("mainnet", w2.address, AMOUNT), pcs: senderEq(w1, AMOUNT), network: "mainnet" }), reject("version", "testnet"));
  push(
    "testnet version, other chain id",
    await alteredCall({ args: createArgs("chain", w2.address, AMOUNT), pcs: senderEq(w1, AMOUNT) }, (tx) => {
      tx.chainId = 0x80000001 as typeof tx.chainId;
    }),
    reject("chain_id", "0x80000000"),
  );
  push(
    "anchor mode OffChainOnly (microblocks only)",
    await alteredCall({ args: createArgs("offchain", w2.address, AMOUNT), pcs: senderEq(w1, AMOUNT) }, (tx) => {
      tx.anchorMode = AnchorMode.OffChainOnly;
    }),
    reject("anchor_mode", "microblock"),
  );

  // ---- invalid: what is called ------------------------------------------------
  push(
    "STX token transfer instead of a contract-call",
    await makeSTXTokenTransfer({ recipient: w2.address, amount: AMOUNT, senderKey: w1.privateKey, network: "devnet", nonce: 7, fee: FEE }),
    reject("payload", "contract-call"),
  );
  push("another contract name", await signedCall({ args: createArgs("other", w2.address, AMOUNT), pcs: senderEq(w1, AMOUNT), contractName: "x402-nexus-escrow-v2" }), reject("contract", contractId));
  push("same name, another deployer", await signedCall({ args: createArgs("other", w2.address, AMOUNT), pcs: senderEq(w1, AMOUNT), contractAddress: w3.address }), reject("contract", contractId));
  push("function pause", await signedCall({ from: deployer, fn: "pause", args: [], nonce: 1 }), reject("function", "create-payment, claim-payment or refund-expired"));

  // ---- invalid: arguments ---------------------------------------------------------
  const args = (id: ClarityValue, to: ClarityValue, amount: ClarityValue, m: ClarityValue) => signedCall({ args: [id, to, amount, m], pcs: senderEq(w1, AMOUNT) });
  const id = Cl.buffer(paymentIdBytes("args"));
  push("payment-id as uint", await args(Cl.uint(1), Cl.principal(w2.address), Cl.uint(AMOUNT), memo("x")), reject("args", "payment-id"));
  push("payment-id of 31 bytes", await args(Cl.buffer(paymentIdBytes("args").subarray(1)), Cl.principal(w2.address), Cl.uint(AMOUNT), memo("x")), reject("args", "(buff 32)"));
  push("recipient as a string", await args(id, Cl.stringAscii(w2.address), Cl.uint(AMOUNT), memo("x")), reject("args", "recipient"));
  push("amount as int", await args(id, Cl.principal(w2.address), Cl.int(AMOUNT), memo("x")), reject("args", "amount"));
  push("memo of 35 bytes", await args(id, Cl.principal(w2.address), Cl.uint(AMOUNT), memo("m".repeat(35))), reject("args", "(buff 34)"));
  push("create with three arguments", await signedCall({ args: createArgs("count", w2.address, AMOUNT).slice(0, 3), pcs: senderEq(w1, AMOUNT) }), reject("args", "4 arguments"));
  push("claim with two arguments", await signedCall({ from: w2, fn: "claim-payment", args: [...oneId("eq"), Cl.uint(1)], pcs: contractEq(AMOUNT) }), reject("args", "1 argument"));
  push("zero amount", await signedCall({ args: createArgs("zero", w2.address, 0n), pcs: senderEq(w1, 0n) }), reject("amount", "greater than 0"));
  push("recipient is the sender", await signedCall({ args: createArgs("self", w1.address, AMOUNT), pcs: senderEq(w1, AMOUNT) }), reject("recipient", "sender"));
  push(
    "recipient is a mainnet address on testnet",
    await signedCall({ args: createArgs("sp", getAddressFromPrivateKey(w2.privateKey, "mainnet"), AMOUNT), pcs: senderEq(w1, AMOUNT) }),
    reject("recipient", "testnet"),
  );

  // ---- invalid: post-conditions ----------------------------------------------------
  push("create in Allow mode", await signedCall({ args: createArgs("allow", w2.address, AMOUNT), pcs: senderEq(w1, AMOUNT), mode: "allow" }), reject("post_condition_mode", "Deny"));
  push("create without post-conditions", await signedCall({ args: createArgs("none", w2.address, AMOUNT) }), reject("post_conditions", `Pc.principal("${w1.address}").willSendEq(${AMOUNT}).ustx()`));
  push("create, sender willSendEq(amount - 1)", await signedCall({ args: createArgs("short", w2.address, AMOUNT), pcs: senderEq(w1, AMOUNT - 1n) }), reject("post_conditions", "does not admit"));
  push(
    "create, sender willSendLte(amount - 1)",
    await signedCall({ args: createArgs("lte-short", w2.address, AMOUNT), pcs: [Pc.principal(w1.address).willSendLte(AMOUNT - 1n).ustx()] }),
    reject("post_conditions", "does not admit"),
  );
  push(
    "create, condition only on another principal",
    await signedCall({ args: createArgs("other-pc", w2.address, AMOUNT), pcs: [Pc.principal(w3.address).willSendEq(0n).ustx()] }),
    reject("post_conditions", "willSendEq"),
  );
  push(
    "create, contract willSendGt(0)",
    await signedCall({ args: createArgs("contract-gt", w2.address, AMOUNT), pcs: [...senderEq(w1, AMOUNT), Pc.principal(contractId).willSendGt(0n).ustx()] }),
    reject("post_conditions", "sends nothing"),
  );
  push("claim in Deny mode without post-conditions", await signedCall({ from: w2, fn: "claim-payment", args: oneId("eq") }), reject("post_conditions", `Pc.principal("${contractId}")`));
  push(
    "claim, contract willSendEq(0)",
    await signedCall({ from: w2, fn: "claim-payment", args: oneId("eq"), pcs: contractEq(0n) }),
    reject("post_conditions", "does not admit"),
  );

  const fixture: Fixture = { contract_id: contractId, chain_id: TESTNET_CHAIN_ID, cases };
  return JSON.stringify(fixture, null, 2) + "\n";
}

writeOrCheck(FIXTURE_PATH, await generateFixture(), "relay-fixtures");
