/**
 * Records tests/fixtures/escrow-simnet.json (STX payments) and
 * tests/fixtures/escrow-ft-simnet.json (token payments): scripted escrow
 * scenarios run in the Clarinet simnet, with every call's arguments, result
 * and events exactly as the SDK returns them, plus a real signed transaction
 * for the same call. The Rust decoders are tested against these files.
 *
 *   npm run fixtures          # (re)write the fixtures
 *   npm run fixtures:check    # regenerate into temp files, diff, exit 1 on drift
 *
 * Output is deterministic: simnet block heights are fixed, payment ids are
 * sha256 of labels, and transaction signatures use RFC 6979 nonces.
 */
import { createHash } from "node:crypto";
import { initSimnet, type ParsedTransactionResult, type Simnet } from "@stacks/clarinet-sdk";
import {
  Cl,
  ClarityType,
  Pc,
  cvToString,
  makeContractCall,
  serializeCV,
  type ClarityValue,
  type PostCondition,
} from "@stacks/transactions";
import { loadDevnetAccounts, type DevnetAccount } from "./devnet-keys";
import { writeOrCheck } from "./fixture-file";

export const FIXTURE_PATH = "tests/fixtures/escrow-simnet.json";
export const FT_FIXTURE_PATH = "tests/fixtures/escrow-ft-simnet.json";
const TOKEN_NAME = "test-sbtc";
const CONTRACT_NAME = "x402-nexus-escrow";
const TIMEOUT = 100;
/** Fixed fee (uSTX) of every recorded signed transaction. */
const FEE = 2000;

type FixtureEvent =
  | { type: "print_event"; contract_identifier: string; raw_value: string }
  | { type: "stx_transfer_event"; sender: string; recipient: string; amount: string }
  | { type: "ft_transfer_event"; asset_identifier: string; sender: string; recipient: string; amount: string };

type FixtureTx = {
  step: string;
  function: string;
  sender: string;
  args: { repr: string; hex: string }[];
  nonce: number;
  block_height: number;
  success: boolean;
  result_hex: string;
  result_repr: string;
  events: FixtureEvent[];
  tx_hex: string;
  txid: string;
};

type Fixture = { contract_id: string; timeout: number; token?: string; transactions: FixtureTx[] };

function hex0x(value: string): string {
  const lower = value.toLowerCase();
  return lower.startsWith("0x") ? lower : `0x${lower}`;
}

/**
 * Clarity repr as stacks-core's `Value` Display writes it (and the Stacks API
 * `repr` fields): like @stacks/transactions' cvToString, except that
 * principals carry a leading quote ('ST...). Only top-level principals occur
 * in this scenario's arguments and results.
 */
function clarityRepr(value: ClarityValue): string {
  if (value.type === ClarityType.PrincipalStandard || value.type === ClarityType.PrincipalContract) {
    return `'${cvToString(value)}`;
  }
  return cvToString(value);
}

function paymentId(label: string): ClarityValue {
  return Cl.buffer(createHash("sha256").update(`x402-nexus fixture ${label}`).digest());
}

function memo(text: string): ClarityValue {
  return Cl.buffer(new TextEncoder().encode(text));
}

function fixtureEvents(result: ParsedTransactionResult): FixtureEvent[] {
  return result.events.map((e): FixtureEvent => {
    switch (e.event) {
      case "print_event":
        return {
          type: "print_event",
          contract_identifier: e.data.contract_identifier,
          raw_value: hex0x(e.data.raw_value as string),
        };
      case "stx_transfer_event":
        return {
          type: "stx_transfer_event",
          sender: e.data.sender,
          recipient: e.data.recipient,
          amount: String(e.data.amount),
        };
      case "ft_transfer_event":
        return {
          type: "ft_transfer_event",
          asset_identifier: e.data.asset_identifier,
          sender: e.data.sender,
          recipient: e.data.recipient,
          amount: String(e.data.amount),
        };
      default:
        throw new Error(`unexpected event type ${e.event}: extend the fixture format first`);
    }
  });
}

/** A fresh simnet and a recorder of escrow calls in it. */
async function recorder() {
  const simnet: Simnet = await initSimnet("./Clarinet.toml");
  const devnet = loadDevnetAccounts();
  const simnetAccounts = simnet.getAccounts();

  function account(name: string): DevnetAccount {
    const acct = devnet.get(name);
    if (!acct || simnetAccounts.get(name) !== acct.address) {
      throw new Error(`${name}: derived key does not match the simnet address`);
    }
    return acct;
  }
  const deployer = account("deployer");
  const w1 = account("wallet_1");
  const w2 = account("wallet_2");
  const w3 = account("wallet_3");
  const contractId = `${deployer.address}.${CONTRACT_NAME}`;
  const tokenId: `${string}.${string}` = `${deployer.address}.${TOKEN_NAME}`;

  const nonces = new Map<string, number>();
  const transactions: FixtureTx[] = [];

  /** The post-conditions a careful wallet would attach to this call. */
  function postConditions(fn: string, caller: string, amount: bigint): PostCondition[] {
    switch (fn) {
      case "create-payment":
        return [Pc.principal(caller).willSendEq(amount).ustx()];
      case "claim-payment":
      case "refund-expired":
        return [Pc.principal(contractId).willSendEq(amount).ustx()];
      case "create-payment-ft":
        return [Pc.principal(caller).willSendEq(amount).ft(tokenId, TOKEN_NAME)];
      case "claim-payment-ft":
      case "refund-expired-ft":
        return [Pc.principal(contractId).willSendEq(amount).ft(tokenId, TOKEN_NAME)];
      default:
        return [];
    }
  }

  async function call(
    step: string,
    fn: string,
    from: DevnetAccount,
    args: ClarityValue[],
    amount: bigint,
  ): Promise<FixtureTx> {
    const nonce = nonces.get(from.address) ?? 0;
    nonces.set(from.address, nonce + 1);

    const result = simnet.callPublicFn(CONTRACT_NAME, fn, args, from.address);
    const signed = await makeContractCall({
      contractAddress: deployer.address,
      contractName: CONTRACT_NAME,
      functionName: fn,
      functionArgs: args,
      senderKey: from.privateKey,
      network: "devnet",
      nonce,
      fee: FEE,
      postConditionMode: "deny",
      postConditions: postConditions(fn, from.address, amount),
    });

    const tx: FixtureTx = {
      step,
      function: fn,
      sender: from.address,
      args: args.map((a) => ({ repr: clarityRepr(a), hex: hex0x(serializeCV(a)) })),
      nonce,
      block_height: simnet.blockHeight,
      success: result.result.type === "ok",
      result_hex: hex0x(serializeCV(result.result)),
      result_repr: clarityRepr(result.result),
      events: fixtureEvents(result),
      tx_hex: hex0x(signed.serialize()),
      txid: hex0x(signed.txid()),
    };
    transactions.push(tx);
    return tx;
  }

  function expectResult(tx: FixtureTx, repr: string): void {
    if (tx.result_repr !== repr) {
      throw new Error(`step "${tx.step}": expected ${repr}, got ${tx.result_repr}`);
    }
  }

  return { simnet, deployer, w1, w2, w3, contractId, tokenId, transactions, call, expectResult };
}

/** The STX scenario, as pretty-printed JSON. */
export async function generateFixture(): Promise<string> {
  const { simnet, deployer, w1, w2, w3, contractId, transactions, call, expectResult } = await recorder();
  const create = (step: string, from: DevnetAccount, label: string, to: DevnetAccount, amount: bigint, note: string) =>
    call(step, "create-payment", from, [paymentId(label), Cl.principal(to.address), Cl.uint(amount), memo(note)], amount);
  const claim = (step: string, from: DevnetAccount, label: string, amount: bigint) =>
    call(step, "claim-payment", from, [paymentId(label)], amount);
  const refund = (step: string, from: DevnetAccount, label: string, amount: bigint) =>
    call(step, "refund-expired", from, [paymentId(label)], amount);

  expectResult(await create("wallet_1 pays wallet_2 (p1)", w1, "p1", w2, 1_000_000n, "invoice-1"), "(ok true)");
  expectResult(await create("wallet_2 pays wallet_3 (p2)", w2, "p2", w3, 2_500_000n, "invoice-2"), "(ok true)");
  expectResult(await create("wallet_3 pays wallet_1 (p3, will expire)", w3, "p3", w1, 750_000n, "invoice-3"), "(ok true)");
  expectResult(await create("wallet_1 pays wallet_3 (p4, will expire)", w1, "p4", w3, 300_000n, ""), "(ok true)");
  expectResult(await claim("wallet_2 claims p1", w2, "p1", 1_000_000n), "(ok true)");
  expectResult(await claim("wallet_1 tries to claim p2 (not recipient)", w1, "p2", 2_500_000n), "(err u106)");
  expectResult(await claim("wallet_3 claims p2", w3, "p2", 2_500_000n), "(ok true)");
  expectResult(await create("wallet_1 creates a zero-amount payment", w1, "p5", w2, 0n, "zero"), "(err u102)");

  // p3 and p4 expire at (their creation height + TIMEOUT).
  simnet.mineEmptyStacksBlocks(TIMEOUT);

  expectResult(await refund("wallet_2 refunds expired p3 to wallet_3", w2, "p3", 750_000n), "(ok true)");
  expectResult(await call("deployer pauses", "pause", deployer, [], 0n), "(ok true)");
  expectResult(await create("wallet_1 creates while paused", w1, "p6", w2, 500_000n, "paused"), "(err u101)");
  expectResult(await refund("wallet_2 refunds expired p4 while paused", w2, "p4", 300_000n), "(ok true)");
  expectResult(await call("deployer unpauses", "unpause", deployer, [], 0n), "(ok true)");
  expectResult(await create("wallet_3 pays wallet_2 (p7)", w3, "p7", w2, 42_000n, "invoice-7"), "(ok true)");
  expectResult(await claim("wallet_2 claims p7", w2, "p7", 42_000n), "(ok true)");

  const fixture: Fixture = { contract_id: contractId, timeout: TIMEOUT, transactions };
  return JSON.stringify(fixture, null, 2) + "\n";
}

/** The token scenario (test-sbtc), as pretty-printed JSON. */
export async function generateFtFixture(): Promise<string> {
  const { simnet, deployer, w1, w2, w3, contractId, tokenId, transactions, call, expectResult } = await recorder();
  // Funding is setup, not escrow traffic: minted unrecorded.
  for (const w of [w1, w2, w3]) {
    simnet.callPublicFn(TOKEN_NAME, "mint", [Cl.uint(10_000_000n), Cl.principal(w.address)], w.address);
  }
  const token = Cl.principal(tokenId);
  const create = (step: string, from: DevnetAccount, label: string, to: DevnetAccount, amount: bigint, note: string) =>
    call(step, "create-payment-ft", from, [paymentId(label), Cl.principal(to.address), Cl.uint(amount), memo(note), token], amount);
  const claim = (step: string, from: DevnetAccount, label: string, amount: bigint) =>
    call(step, "claim-payment-ft", from, [paymentId(label), token], amount);
  const refund = (step: string, from: DevnetAccount, label: string, amount: bigint) =>
    call(step, "refund-expired-ft", from, [paymentId(label), token], amount);

  expectResult(await create("wallet_1 pays in a token not yet allowed", w1, "t0", w2, 100n, "early"), "(err u114)");
  expectResult(
    await call("deployer allows test-sbtc", "allow-token", deployer, [token, Cl.stringAscii(TOKEN_NAME)], 0n),
    "(ok true)",
  );
  expectResult(await create("wallet_1 pays wallet_2 in test-sbtc (t1)", w1, "t1", w2, 250_000n, "invoice-t1"), "(ok true)");
  expectResult(await create("wallet_3 pays wallet_1 in test-sbtc (t2, will expire)", w3, "t2", w1, 40_000n, "invoice-t2"), "(ok true)");
  expectResult(await call("wallet_2 claims t1 as STX (wrong token)", "claim-payment", w2, [paymentId("t1")], 0n), "(err u115)");
  expectResult(await claim("wallet_2 claims t1", w2, "t1", 250_000n), "(ok true)");

  simnet.mineEmptyStacksBlocks(TIMEOUT);

  expectResult(await refund("wallet_2 refunds expired t2 to wallet_3", w2, "t2", 40_000n), "(ok true)");
  expectResult(await call("deployer disallows test-sbtc", "disallow-token", deployer, [token], 0n), "(ok true)");
  expectResult(await create("wallet_1 pays in a disallowed token", w1, "t3", w2, 100n, "late"), "(err u114)");

  const fixture: Fixture = { contract_id: contractId, timeout: TIMEOUT, token: `${tokenId}::${TOKEN_NAME}`, transactions };
  return JSON.stringify(fixture, null, 2) + "\n";
}

writeOrCheck(FIXTURE_PATH, await generateFixture(), "fixtures");
writeOrCheck(FT_FIXTURE_PATH, await generateFtFixture(), "fixtures");
