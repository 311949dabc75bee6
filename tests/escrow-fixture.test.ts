/**
 * Self-consistency of the recorded fixtures the Rust decoders are tested
 * against (tests/fixtures/escrow-simnet.json for STX payments,
 * escrow-ft-simnet.json for token payments). Drift against a fresh run is
 * `npm run fixtures:check`; this checks that what was recorded is coherent:
 * signed transactions decode to the recorded call, and every print event has
 * the fixed shape documented in contracts/EVENTS.md.
 */
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import {
  ClarityType,
  PayloadType,
  PostConditionMode,
  deserializeCV,
  deserializeTransaction,
  serializeCV,
  type ContractCallPayload,
} from "@stacks/transactions";
import { escrowId } from "./helpers";

type Fixture = {
  contract_id: string;
  timeout: number;
  transactions: {
    step: string;
    function: string;
    sender: string;
    args: { repr: string; hex: string }[];
    nonce: number;
    block_height: number;
    success: boolean;
    result_hex: string;
    events: Record<string, string>[];
    tx_hex: string;
    txid: string;
  }[];
};

const FIXTURES: [string, Fixture][] = ["escrow-simnet.json", "escrow-ft-simnet.json"].map((f) => [
  f,
  JSON.parse(readFileSync(`tests/fixtures/${f}`, "utf8")),
]);

const PAYMENT_KEYS = [
  "amount",
  "block-height",
  "event",
  "expires-at",
  "memo",
  "payment-id",
  "recipient",
  "sender",
  "token",
];
const EVENT_KEYS: Record<string, string[]> = {
  "payment-created": PAYMENT_KEYS,
  "payment-claimed": PAYMENT_KEYS,
  "payment-refunded": PAYMENT_KEYS,
  paused: ["block-height", "event", "sender"],
  unpaused: ["block-height", "event", "sender"],
  "owner-proposed": ["block-height", "event", "recipient", "sender"],
  "owner-changed": ["block-height", "event", "recipient", "sender"],
  "token-allowed": ["asset-name", "block-height", "event", "sender", "token"],
  "token-disallowed": ["block-height", "event", "sender", "token"],
};

/** Every event name the two scenarios print, between them. */
const seen = new Set<string>();

describe.each(FIXTURES)("recorded fixture %s", (_file, fixture) => {
  it("names the deployed contract and the timeout", () => {
    expect(fixture.contract_id).toBe(escrowId);
    expect(fixture.timeout).toBe(100);
  });

  it.each(fixture.transactions.map((t) => [t.step, t] as const))(
    "%s: signed tx decodes to the recorded call",
    (_step, t) => {
      const tx = deserializeTransaction(t.tx_hex.slice(2));
      expect(tx.chainId).toBe(0x80000000);
      expect(tx.txid()).toBe(t.txid.slice(2));
      expect(tx.auth.spendingCondition.nonce).toBe(BigInt(t.nonce));
      expect(tx.auth.spendingCondition.fee).toBe(2000n);
      expect(tx.postConditionMode).toBe(PostConditionMode.Deny);
      expect(tx.payload.payloadType).toBe(PayloadType.ContractCall);
      const payload = tx.payload as ContractCallPayload;
      expect(payload.functionName.content).toBe(t.function);
      expect(payload.functionArgs.map((a) => `0x${serializeCV(a)}`)).toStrictEqual(
        t.args.map((a) => a.hex),
      );
      expect(deserializeCV(t.result_hex.slice(2)).type).toBe(
        t.success ? ClarityType.ResponseOk : ClarityType.ResponseErr,
      );
    },
  );

  it("every print event has its documented shape and the tx's block height", () => {
    for (const t of fixture.transactions) {
      const prints = t.events.filter((e) => e.type === "print_event");
      expect(prints.length).toBe(t.success ? 1 : 0);
      for (const p of prints) {
        expect(p.contract_identifier).toBe(escrowId);
        expect(p.raw_value).toMatch(/^0x[0-9a-f]+$/);
        const value = deserializeCV(p.raw_value.slice(2));
        if (value.type !== ClarityType.Tuple) throw new Error("print is not a tuple");
        const event = value.value.event;
        if (event.type !== ClarityType.StringASCII) throw new Error("event is not ascii");
        expect(Object.keys(value.value).sort()).toStrictEqual(EVENT_KEYS[event.value]);
        expect(value.value["block-height"]).toStrictEqual({
          type: ClarityType.UInt,
          value: BigInt(t.block_height),
        });
        seen.add(event.value);
      }
    }
  });
});

describe("recorded fixtures together", () => {
  it("cover every payment event and the admin events they script", () => {
    expect([...seen].sort()).toStrictEqual([
      "paused",
      "payment-claimed",
      "payment-created",
      "payment-refunded",
      "token-allowed",
      "token-disallowed",
      "unpaused",
    ]);
  });
});
