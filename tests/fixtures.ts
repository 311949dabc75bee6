/**
 * Records tests/fixtures/escrow-simnet.json: a scripted escrow scenario run
 * in the Clarinet simnet, with every call's arguments, result and events
 * exactly as the SDK returns them, plus a real signed transaction for the
 * same call. The Rust decoders are tested against this file.
 *
 *   npm run fixtures          # (re)write the fixture
 *   npm run fixtures:check    # regenerate into a temp file, diff, exit 1 on drift
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
const CONTRACT_NAME = "x402-nexus-escrow";
const TIMEOUT = 100;
/** Fixed fee (uSTX) of every recorded signed transaction. */
const FEE = 2000;

type FixtureEvent =
  | { type: "print_event"; contract_identifier: string; raw_value: string }
  | { type: "stx_transfer_event"; sender: string; recipient: string; amount: string };

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

type Fixture = { contract_id: string; timeout: number; transactions: FixtureTx[] };

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
      default:
        throw new Error(`unexpected event type ${e.event}: extend the fixture format first`);
    }
  });
}

/** Runs the scenario and returns the fixture as pretty-printed JSON. */
export async function generateFixture(): Promise<string> {
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

  const nonces = new Map<string, number>();
  const transactions: FixtureTx[] = [];

  /** The STX post-conditions a careful wallet would attach to this call. */
  function postConditions(fn: string, caller: string, amount: bigint): PostCondition[] {
    switch (fn) {
      case "create-payment":
        return [Pc.principal(caller).willSendEq(amount).ustx()];
      case "claim-payment":
      case "refund-expired":
        return [Pc.principal(contractId).willSendEq(amount).ustx()];
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

writeOrCheck(FIXTURE_PATH, await generateFixture(), "fixtures");
