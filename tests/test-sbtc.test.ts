import { describe, expect, it } from "vitest";
import { Cl } from "@stacks/transactions";

// The SIP-010 test token the x402 tests pay with (contracts/test/test-sbtc.clar).
const accounts = simnet.getAccounts();
const w1 = accounts.get("wallet_1")!;
const w2 = accounts.get("wallet_2")!;
const w3 = accounts.get("wallet_3")!;

describe("test-sbtc (SIP-010 test token)", () => {
  it("moves tokens from the signer, prints the memo, and refuses anyone else's", () => {
    simnet.callPublicFn("test-sbtc", "mint", [Cl.uint(1000), Cl.principal(w1)], w1);
    const memo = Cl.some(Cl.bufferFromUtf8("x402:order-1"));
    const ok = simnet.callPublicFn("test-sbtc", "transfer", [Cl.uint(400), Cl.principal(w1), Cl.principal(w2), memo], w1);
    expect(ok.result).toBeOk(Cl.bool(true));
    expect(ok.events.map((e) => e.event)).toEqual(["ft_transfer_event", "print_event"]);
    expect(simnet.callReadOnlyFn("test-sbtc", "get-balance", [Cl.principal(w2)], w2).result).toBeOk(Cl.uint(400));
    // w3 cannot move w1's tokens.
    const theft = simnet.callPublicFn("test-sbtc", "transfer", [Cl.uint(1), Cl.principal(w1), Cl.principal(w3), Cl.none()], w3);
    expect(theft.result).toBeErr(Cl.uint(4));
    // More than the balance: the ft-transfer? error.
    const over = simnet.callPublicFn("test-sbtc", "transfer", [Cl.uint(601), Cl.principal(w1), Cl.principal(w2), Cl.none()], w1);
    expect(over.result).toBeErr(Cl.uint(1));
  });
});
