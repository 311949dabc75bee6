/**
 * Records tests/fixtures/x402-txs.json: real signed transactions that an
 * x402 client could hand the facilitator (core/src/x402/tests.rs checks each
 * rule against them), and the events the test token (contracts/test/
 * test-sbtc.clar) emits for a transfer in the Clarinet simnet (the indexer's
 * decoder and the end-to-end chain double use their shape). Devnet keys,
 * testnet chain id, fixed nonces and fees, RFC 6979 signatures: the output
 * is deterministic.
 *
 *   npm run x402-fixtures          # (re)write the fixture
 *   npm run x402-fixtures:check    # regenerate into a temp file, diff, exit 1 on drift
 */
import { createHash } from "node:crypto";
import { initSimnet } from "@stacks/clarinet-sdk";
import { Cl, Pc, cvToString, makeContractCall, makeSTXTokenTransfer, type ClarityValue, type StacksTransactionWire } from "@stacks/transactions";
import { devnetAccount, loadDevnetAccounts } from "./devnet-keys";
import { writeOrCheck } from "./fixture-file";

export const FIXTURE_PATH = "tests/fixtures/x402-txs.json";
const FEE = 2000;
const NONCE = 3;
const MEMO = "x402:order-7";
/** The token contract the fixture pays with (the Rust tests allow it). */
const TOKEN_NAME = "test-sbtc";

type Tx = { label: string; tx_hex: string; txid: string };

const hex0x = (bytes: Uint8Array | string) =>
  typeof bytes === "string" ? (bytes.startsWith("0x") ? bytes : `0x${bytes}`) : `0x${Buffer.from(bytes).toString("hex")}`;

export async function generateFixture(): Promise<string> {
  const devnet = loadDevnetAccounts();
  const account = (name: string) => devnetAccount(devnet, name);
  const deployer = account("deployer");
  const w1 = account("wallet_1");
  const w2 = account("wallet_2");
  const w3 = account("wallet_3");
  const txs: Tx[] = [];
  const push = (label: string, tx: StacksTransactionWire) =>
    txs.push({ label, tx_hex: hex0x(tx.serialize()), txid: hex0x(tx.txid()) });

  const stx = (network: "devnet" | "mainnet", amount = 1000n) =>
    makeSTXTokenTransfer({ recipient: w2.address, amount, memo: MEMO, network, nonce: NONCE, fee: FEE, senderKey: w1.privateKey });
  push("stx", await stx("devnet"));
  push("stx mainnet", await stx("mainnet"));

  const transfer = (sender: string, contractName = TOKEN_NAME, memo: string | null = MEMO) =>
    makeContractCall({
      contractAddress: deployer.address,
      contractName,
      functionName: "transfer",
      functionArgs: [
        Cl.uint(500),
        Cl.principal(sender),
        Cl.principal(w2.address),
        memo === null ? Cl.none() : Cl.some(Cl.bufferFromUtf8(memo)),
      ],
      postConditionMode: "allow",
      network: "devnet",
      nonce: NONCE,
      fee: FEE,
      senderKey: w1.privateKey,
    });
  push("token", await transfer(w1.address));
  push("token no memo", await transfer(w1.address, TOKEN_NAME, null));
  push("token sender is another", await transfer(w3.address));
  push("token other contract", await transfer(w1.address, "other-token"));

  const escrow = (fn: string, args: ClarityValue[]) =>
    makeContractCall({
      contractAddress: deployer.address,
      contractName: "x402-nexus-escrow",
      functionName: fn,
      functionArgs: args,
      postConditionMode: "deny",
      postConditions:
        fn === "create-payment"
          ? [Pc.principal(w1.address).willSendEq(1000n).ustx()]
          : fn === "create-payment-ft"
            ? [Pc.principal(w1.address).willSendEq(1000n).ft(`${deployer.address}.${TOKEN_NAME}`, TOKEN_NAME)]
            : [],
      network: "devnet",
      nonce: NONCE,
      fee: FEE,
      senderKey: w1.privateKey,
    });
  const id = Cl.buffer(createHash("sha256").update("x402-nexus x402 fixture escrow").digest());
  push("escrow create", await escrow("create-payment", [id, Cl.principal(w2.address), Cl.uint(1000), Cl.bufferFromUtf8(MEMO)]));
  push("escrow claim", await escrow("claim-payment", [id]));
  const tokenArg = Cl.principal(`${deployer.address}.${TOKEN_NAME}`);
  push("escrow token create", await escrow("create-payment-ft", [id, Cl.principal(w2.address), Cl.uint(1000), Cl.bufferFromUtf8(MEMO), tokenArg]));

  // The token's real events for a transfer of 500 with a memo, in the simnet.
  const simnet = await initSimnet("./Clarinet.toml");
  simnet.callPublicFn("test-sbtc", "mint", [Cl.uint(10_000), Cl.principal(w1.address)], w1.address);
  const moved = simnet.callPublicFn(
    "test-sbtc",
    "transfer",
    [Cl.uint(500), Cl.principal(w1.address), Cl.principal(w2.address), Cl.some(Cl.bufferFromUtf8(MEMO))],
    w1.address,
  );
  if (cvToString(moved.result) !== "(ok true)") throw new Error(`test-sbtc transfer: ${cvToString(moved.result)}`);
  const token_transfer_events = moved.events.map((e) => {
    const data = e.data as Record<string, unknown>;
    return e.event === "print_event"
      ? { type: "contract_event", contract_identifier: data.contract_identifier, topic: data.topic, raw_value: data.raw_value }
      : { type: e.event, ...data };
  });

  const fixture = {
    chain_id: 0x80000000,
    escrow: `${deployer.address}.x402-nexus-escrow`,
    token: `${deployer.address}.${TOKEN_NAME}::${TOKEN_NAME}`,
    payer: w1.address,
    pay_to: w2.address,
    other: w3.address,
    memo: MEMO,
    fee: FEE,
    nonce: NONCE,
    txs,
    token_contract: `${deployer.address}.test-sbtc`,
    token_transfer_events,
  };
  return JSON.stringify(fixture, null, 2) + "\n";
}

writeOrCheck(FIXTURE_PATH, await generateFixture(), "x402-fixtures");
