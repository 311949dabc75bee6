import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { Cl } from "@stacks/transactions";
import {
  CONTRACT,
  ERR,
  PROXY,
  TIMEOUT,
  acceptOwner,
  alice,
  balances,
  bob,
  carol,
  claimPayment,
  createPayment,
  dave,
  deployer,
  escrowId,
  getPayment,
  memo,
  mineUntilNextTxAt,
  nextTxHeight,
  pause,
  paymentEvent,
  paymentId,
  paymentRecord,
  printEvents,
  proposeOwner,
  proxyId,
  readOnly,
  refundExpired,
  stxBalance,
  stxTransfers,
  unpause,
} from "./helpers";

const AMOUNT = 1_000_000n; // 1 STX
const ID = paymentId("payment-1");
const MEMO = memo("invoice-42");

/** Creates alice -> bob for AMOUNT and returns the height it was mined at. */
function createDefault(id = ID, amount = AMOUNT): bigint {
  const height = nextTxHeight();
  const { result } = createPayment(alice, id, bob, amount, MEMO);
  expect(result).toBeOk(Cl.bool(true));
  return height;
}

function expectTotalLocked(expected: bigint) {
  expect(readOnly("get-total-locked")).toBeUint(expected);
  expect(stxBalance(escrowId)).toBe(expected);
}

describe("create-payment", () => {
  it("locks the amount, records the payment and prints payment-created", () => {
    const before = balances(alice, bob, escrowId);
    const height = nextTxHeight();

    const res = createPayment(alice, ID, bob, AMOUNT, MEMO);

    expect(res.result).toBeOk(Cl.bool(true));
    expect(printEvents(res)).toStrictEqual([
      paymentEvent({
        event: "payment-created",
        id: ID,
        sender: alice,
        recipient: bob,
        amount: AMOUNT,
        memo: MEMO,
        expiresAt: height + TIMEOUT,
        blockHeight: height,
      }),
    ]);
    expect(stxTransfers(res)).toStrictEqual([
      { sender: alice, recipient: escrowId, amount: AMOUNT.toString() },
    ]);
    expect(getPayment(ID)).toBeSome(
      paymentRecord({
        sender: alice,
        recipient: bob,
        amount: AMOUNT,
        memo: MEMO,
        createdAt: height,
        status: "pending",
      }),
    );
    expect(stxBalance(alice)).toBe(before[alice] - AMOUNT);
    expect(stxBalance(bob)).toBe(before[bob]);
    expect(stxBalance(escrowId)).toBe(before[escrowId] + AMOUNT);
    expectTotalLocked(AMOUNT);
  });

  it("accepts an empty memo and a full 34-byte memo", () => {
    const empty = new Uint8Array(0);
    const full = new Uint8Array(34).fill(0xab);
    expect(createPayment(alice, paymentId("empty"), bob, 1n, empty).result).toBeOk(
      Cl.bool(true),
    );
    expect(createPayment(alice, paymentId("full"), bob, 1n, full).result).toBeOk(Cl.bool(true));
    expect(readOnly("get-payment", [Cl.buffer(paymentId("full"))])).toBeSome(
      expect.objectContaining({ type: "tuple" }),
    );
    expectTotalLocked(2n);
  });

  it("sums several pending payments into total-locked", () => {
    createDefault(paymentId("a"), 10n);
    expect(createPayment(dave, paymentId("b"), carol, 20n).result).toBeOk(Cl.bool(true));
    expect(createPayment(bob, paymentId("c"), alice, 30n).result).toBeOk(Cl.bool(true));
    expectTotalLocked(60n);
  });

  it("rejects a zero amount with ERR-ZERO-AMOUNT", () => {
    const before = balances(alice, escrowId);
    const res = createPayment(alice, ID, bob, 0n);
    expect(res.result).toBeErr(Cl.uint(ERR.ZERO_AMOUNT));
    expect(res.events).toStrictEqual([]);
    expect(balances(alice, escrowId)).toStrictEqual(before);
    expect(getPayment(ID)).toBeNone();
  });

  it("rejects paying yourself with ERR-SELF-PAYMENT", () => {
    const res = createPayment(alice, ID, alice, AMOUNT);
    expect(res.result).toBeErr(Cl.uint(ERR.SELF_PAYMENT));
    expect(res.events).toStrictEqual([]);
    expectTotalLocked(0n);
  });

  it("rejects a pending payment id with ERR-ID-USED, whoever reuses it", () => {
    createDefault();
    const before = balances(alice, dave, escrowId);
    const res = createPayment(dave, ID, carol, 5n);
    expect(res.result).toBeErr(Cl.uint(ERR.ID_USED));
    expect(res.events).toStrictEqual([]);
    expect(balances(alice, dave, escrowId)).toStrictEqual(before);
    // The original record is untouched.
    expect(getPayment(ID)).toBeSome(
      paymentRecord({
        sender: alice,
        recipient: bob,
        amount: AMOUNT,
        memo: MEMO,
        createdAt: 3n,
        status: "pending",
      }),
    );
  });

  it("rejects a claimed payment id with ERR-ID-USED (ids are single-use forever)", () => {
    createDefault();
    expect(claimPayment(bob, ID).result).toBeOk(Cl.bool(true));
    expect(createPayment(alice, ID, bob, AMOUNT, MEMO).result).toBeErr(Cl.uint(ERR.ID_USED));
    expect(readOnly("get-status", [Cl.buffer(ID)])).toBeSome(Cl.stringAscii("claimed"));
  });

  it("rejects a refunded payment id with ERR-ID-USED", () => {
    const created = createDefault();
    mineUntilNextTxAt(created + TIMEOUT);
    expect(refundExpired(carol, ID).result).toBeOk(Cl.bool(true));
    expect(createPayment(alice, ID, bob, AMOUNT, MEMO).result).toBeErr(Cl.uint(ERR.ID_USED));
    expect(readOnly("get-status", [Cl.buffer(ID)])).toBeSome(Cl.stringAscii("refunded"));
  });

  it("rejects while paused with ERR-PAUSED, and works again after unpause", () => {
    expect(pause(deployer).result).toBeOk(Cl.bool(true));
    const res = createPayment(alice, ID, bob, AMOUNT);
    expect(res.result).toBeErr(Cl.uint(ERR.PAUSED));
    expect(res.events).toStrictEqual([]);
    expect(getPayment(ID)).toBeNone();
    expect(unpause(deployer).result).toBeOk(Cl.bool(true));
    createDefault();
    expectTotalLocked(AMOUNT);
  });

  it("maps a failing STX transfer (insufficient balance) to ERR-TRANSFER-FAILED", () => {
    const tooMuch = stxBalance(alice) + 1n;
    const res = createPayment(alice, ID, bob, tooMuch);
    expect(res.result).toBeErr(Cl.uint(ERR.TRANSFER_FAILED));
    expect(res.events).toStrictEqual([]);
    // The whole call aborted: no record, nothing locked.
    expect(getPayment(ID)).toBeNone();
    expectTotalLocked(0n);
  });
});

describe("claim-payment", () => {
  it("pays the recipient, marks the payment claimed and prints payment-claimed", () => {
    const created = createDefault();
    const before = balances(alice, bob, escrowId);
    const height = nextTxHeight();

    const res = claimPayment(bob, ID);

    expect(res.result).toBeOk(Cl.bool(true));
    expect(printEvents(res)).toStrictEqual([
      paymentEvent({
        event: "payment-claimed",
        id: ID,
        sender: alice,
        recipient: bob,
        amount: AMOUNT,
        memo: MEMO,
        expiresAt: created + TIMEOUT,
        blockHeight: height,
      }),
    ]);
    expect(stxTransfers(res)).toStrictEqual([
      { sender: escrowId, recipient: bob, amount: AMOUNT.toString() },
    ]);
    expect(stxBalance(alice)).toBe(before[alice]);
    expect(stxBalance(bob)).toBe(before[bob] + AMOUNT);
    expect(stxBalance(escrowId)).toBe(before[escrowId] - AMOUNT);
    expect(getPayment(ID)).toBeSome(
      paymentRecord({
        sender: alice,
        recipient: bob,
        amount: AMOUNT,
        memo: MEMO,
        createdAt: created,
        status: "claimed",
      }),
    );
    expectTotalLocked(0n);
  });

  it("succeeds at expires-at - 1", () => {
    const created = createDefault();
    mineUntilNextTxAt(created + TIMEOUT - 1n);
    const res = claimPayment(bob, ID);
    expect(res.result).toBeOk(Cl.bool(true));
    expect(printEvents(res)[0]).toBeTuple(
      expect.objectContaining({ "block-height": Cl.uint(created + TIMEOUT - 1n) }),
    );
  });

  it("fails at expires-at with ERR-EXPIRED", () => {
    const created = createDefault();
    mineUntilNextTxAt(created + TIMEOUT);
    const before = balances(bob, escrowId);
    const res = claimPayment(bob, ID);
    expect(res.result).toBeErr(Cl.uint(ERR.EXPIRED));
    expect(res.events).toStrictEqual([]);
    expect(balances(bob, escrowId)).toStrictEqual(before);
    expect(readOnly("get-status", [Cl.buffer(ID)])).toBeSome(Cl.stringAscii("pending"));
  });

  it("rejects an unknown id with ERR-NOT-FOUND", () => {
    expect(claimPayment(bob, paymentId("nope")).result).toBeErr(Cl.uint(ERR.NOT_FOUND));
  });

  it("rejects a third party with ERR-NOT-RECIPIENT and no print", () => {
    createDefault();
    const before = balances(alice, bob, carol, escrowId);
    const res = claimPayment(carol, ID);
    expect(res.result).toBeErr(Cl.uint(ERR.NOT_RECIPIENT));
    expect(res.events).toStrictEqual([]);
    expect(balances(alice, bob, carol, escrowId)).toStrictEqual(before);
  });

  it("rejects the sender claiming back with ERR-NOT-RECIPIENT", () => {
    createDefault();
    expect(claimPayment(alice, ID).result).toBeErr(Cl.uint(ERR.NOT_RECIPIENT));
  });

  it("rejects a double claim with ERR-NOT-PENDING", () => {
    createDefault();
    expect(claimPayment(bob, ID).result).toBeOk(Cl.bool(true));
    const before = balances(bob, escrowId);
    const res = claimPayment(bob, ID);
    expect(res.result).toBeErr(Cl.uint(ERR.NOT_PENDING));
    expect(res.events).toStrictEqual([]);
    expect(balances(bob, escrowId)).toStrictEqual(before);
  });

  it("rejects a claim after refund with ERR-NOT-PENDING", () => {
    const created = createDefault();
    mineUntilNextTxAt(created + TIMEOUT);
    expect(refundExpired(alice, ID).result).toBeOk(Cl.bool(true));
    expect(claimPayment(bob, ID).result).toBeErr(Cl.uint(ERR.NOT_PENDING));
  });

  it("rejects while paused with ERR-PAUSED; the payment stays claimable after unpause", () => {
    createDefault();
    expect(pause(deployer).result).toBeOk(Cl.bool(true));
    const res = claimPayment(bob, ID);
    expect(res.result).toBeErr(Cl.uint(ERR.PAUSED));
    expect(res.events).toStrictEqual([]);
    expect(unpause(deployer).result).toBeOk(Cl.bool(true));
    expect(claimPayment(bob, ID).result).toBeOk(Cl.bool(true));
    expectTotalLocked(0n);
  });
});

describe("payout allowance", () => {
  it("an allowance short of the amount fails the payout with ERR-TRANSFER-FAILED, not a raw code", () => {
    // A copy of the contract whose as-contract? allows one uSTX less than it
    // sends: shows the allowance is enforced and its error is mapped.
    const source = readFileSync("contracts/x402-nexus-escrow.clar", "utf8");
    const mutant = source.replace("((with-stx amount))", "((with-stx (- amount u1)))");
    expect(mutant).not.toBe(source);
    const deployed = simnet.deployContract(
      "escrow-short-allowance",
      mutant,
      { clarityVersion: 4 },
      deployer,
    );
    expect(deployed.result).toBeBool(true);
    const args = [Cl.buffer(ID), Cl.principal(bob), Cl.uint(AMOUNT), Cl.buffer(MEMO)];
    expect(
      simnet.callPublicFn("escrow-short-allowance", "create-payment", args, alice).result,
    ).toBeOk(Cl.bool(true));
    const before = balances(bob);
    const res = simnet.callPublicFn("escrow-short-allowance", "claim-payment", [Cl.buffer(ID)], bob);
    expect(res.result).toBeErr(Cl.uint(ERR.TRANSFER_FAILED));
    expect(res.events).toStrictEqual([]);
    expect(balances(bob)).toStrictEqual(before);
  });
});

describe("refund-expired", () => {
  it("fails at expires-at - 1 with ERR-NOT-EXPIRED", () => {
    const created = createDefault();
    mineUntilNextTxAt(created + TIMEOUT - 1n);
    expect(readOnly("is-refundable", [Cl.buffer(ID)])).toBeBool(false);
    const res = refundExpired(alice, ID);
    expect(res.result).toBeErr(Cl.uint(ERR.NOT_EXPIRED));
    expect(res.events).toStrictEqual([]);
    expectTotalLocked(AMOUNT);
  });

  it("succeeds at expires-at for a third party and pays the original sender", () => {
    const created = createDefault();
    mineUntilNextTxAt(created + TIMEOUT);
    const before = balances(alice, bob, carol, escrowId);

    const res = refundExpired(carol, ID);

    expect(res.result).toBeOk(Cl.bool(true));
    expect(printEvents(res)).toStrictEqual([
      paymentEvent({
        event: "payment-refunded",
        id: ID,
        sender: alice,
        recipient: bob,
        amount: AMOUNT,
        memo: MEMO,
        expiresAt: created + TIMEOUT,
        blockHeight: created + TIMEOUT,
      }),
    ]);
    expect(stxTransfers(res)).toStrictEqual([
      { sender: escrowId, recipient: alice, amount: AMOUNT.toString() },
    ]);
    expect(stxBalance(alice)).toBe(before[alice] + AMOUNT);
    expect(stxBalance(bob)).toBe(before[bob]);
    expect(stxBalance(carol)).toBe(before[carol]);
    expect(stxBalance(escrowId)).toBe(before[escrowId] - AMOUNT);
    expect(getPayment(ID)).toBeSome(
      paymentRecord({
        sender: alice,
        recipient: bob,
        amount: AMOUNT,
        memo: MEMO,
        createdAt: created,
        status: "refunded",
      }),
    );
    expect(readOnly("is-refundable", [Cl.buffer(ID)])).toBeBool(false);
    expectTotalLocked(0n);
  });

  it("lets the sender refund too", () => {
    const created = createDefault();
    mineUntilNextTxAt(created + TIMEOUT + 5n);
    expect(refundExpired(alice, ID).result).toBeOk(Cl.bool(true));
  });

  it("rejects an unknown id with ERR-NOT-FOUND", () => {
    expect(refundExpired(carol, paymentId("nope")).result).toBeErr(Cl.uint(ERR.NOT_FOUND));
  });

  it("rejects a refund after claim with ERR-NOT-PENDING", () => {
    const created = createDefault();
    expect(claimPayment(bob, ID).result).toBeOk(Cl.bool(true));
    mineUntilNextTxAt(created + TIMEOUT);
    const before = balances(alice, escrowId);
    const res = refundExpired(carol, ID);
    expect(res.result).toBeErr(Cl.uint(ERR.NOT_PENDING));
    expect(res.events).toStrictEqual([]);
    expect(balances(alice, escrowId)).toStrictEqual(before);
  });

  it("rejects a double refund with ERR-NOT-PENDING", () => {
    const created = createDefault();
    mineUntilNextTxAt(created + TIMEOUT);
    expect(refundExpired(carol, ID).result).toBeOk(Cl.bool(true));
    expect(refundExpired(carol, ID).result).toBeErr(Cl.uint(ERR.NOT_PENDING));
  });

  it("works while paused: a pause never traps funds", () => {
    const created = createDefault();
    expect(pause(deployer).result).toBeOk(Cl.bool(true));
    mineUntilNextTxAt(created + TIMEOUT);
    const before = stxBalance(alice);
    const res = refundExpired(carol, ID);
    expect(res.result).toBeOk(Cl.bool(true));
    expect(stxBalance(alice)).toBe(before + AMOUNT);
    expect(readOnly("is-paused")).toBeBool(true);
    expectTotalLocked(0n);
  });

  it("only returns the expired payment's amount, leaving other payments locked", () => {
    const first = createDefault(paymentId("old"), 100n);
    mineUntilNextTxAt(first + 50n);
    createDefault(paymentId("new"), 200n);
    mineUntilNextTxAt(first + TIMEOUT);
    expect(refundExpired(carol, paymentId("new")).result).toBeErr(Cl.uint(ERR.NOT_EXPIRED));
    expect(refundExpired(carol, paymentId("old")).result).toBeOk(Cl.bool(true));
    expectTotalLocked(200n);
  });
});

describe("pause / unpause", () => {
  it("lets the owner pause and unpause, printing each change", () => {
    let height = nextTxHeight();
    const paused = pause(deployer);
    expect(paused.result).toBeOk(Cl.bool(true));
    expect(printEvents(paused)).toStrictEqual([
      Cl.tuple({
        event: Cl.stringAscii("paused"),
        sender: Cl.principal(deployer),
        "block-height": Cl.uint(height),
      }),
    ]);
    expect(readOnly("is-paused")).toBeBool(true);

    height = nextTxHeight();
    const unpaused = unpause(deployer);
    expect(unpaused.result).toBeOk(Cl.bool(true));
    expect(printEvents(unpaused)).toStrictEqual([
      Cl.tuple({
        event: Cl.stringAscii("unpaused"),
        sender: Cl.principal(deployer),
        "block-height": Cl.uint(height),
      }),
    ]);
    expect(readOnly("is-paused")).toBeBool(false);
  });

  it("rejects non-owners with ERR-NOT-OWNER", () => {
    expect(pause(alice).result).toBeErr(Cl.uint(ERR.NOT_OWNER));
    expect(pause(deployer).result).toBeOk(Cl.bool(true));
    expect(unpause(alice).result).toBeErr(Cl.uint(ERR.NOT_OWNER));
  });

  it("rejects redundant changes with ERR-ALREADY-PAUSED / ERR-NOT-PAUSED", () => {
    expect(unpause(deployer).result).toBeErr(Cl.uint(ERR.NOT_PAUSED));
    expect(pause(deployer).result).toBeOk(Cl.bool(true));
    const again = pause(deployer);
    expect(again.result).toBeErr(Cl.uint(ERR.ALREADY_PAUSED));
    expect(again.events).toStrictEqual([]);
  });

  it("checks contract-caller: the owner calling through an intermediary is refused", () => {
    // tx-sender is the owner here, contract-caller is the proxy.
    const res = simnet.callPublicFn(PROXY, "pause-escrow", [], deployer);
    expect(res.result).toBeErr(Cl.uint(ERR.NOT_OWNER));
    expect(readOnly("is-paused")).toBeBool(false);

    expect(pause(deployer).result).toBeOk(Cl.bool(true));
    expect(simnet.callPublicFn(PROXY, "unpause-escrow", [], deployer).result).toBeErr(
      Cl.uint(ERR.NOT_OWNER),
    );
    expect(
      simnet.callPublicFn(PROXY, "propose-owner-escrow", [Cl.principal(alice)], deployer).result,
    ).toBeErr(Cl.uint(ERR.NOT_OWNER));
    expect(readOnly("is-paused")).toBeBool(true);
  });

  it("a contract that owns the escrow acts through contract-caller, whoever signs", () => {
    expect(proposeOwner(deployer, proxyId).result).toBeOk(Cl.bool(true));
    expect(simnet.callPublicFn(PROXY, "accept-owner-escrow", [], carol).result).toBeOk(
      Cl.bool(true),
    );
    expect(readOnly("get-owner")).toBePrincipal(proxyId);
    // The former owner, signing directly, is no longer the owner.
    expect(pause(deployer).result).toBeErr(Cl.uint(ERR.NOT_OWNER));
    const res = simnet.callPublicFn(PROXY, "pause-escrow", [], carol);
    expect(res.result).toBeOk(Cl.bool(true));
    expect(printEvents(res)[0]).toBeTuple(
      expect.objectContaining({ sender: Cl.principal(proxyId) }),
    );
  });
});

describe("two-step ownership", () => {
  it("moves ownership only when the proposed owner accepts", () => {
    expect(readOnly("get-owner")).toBePrincipal(deployer);

    let height = nextTxHeight();
    const proposed = proposeOwner(deployer, dave);
    expect(proposed.result).toBeOk(Cl.bool(true));
    expect(printEvents(proposed)).toStrictEqual([
      Cl.tuple({
        event: Cl.stringAscii("owner-proposed"),
        sender: Cl.principal(deployer),
        recipient: Cl.principal(dave),
        "block-height": Cl.uint(height),
      }),
    ]);
    // Proposal alone changes nothing.
    expect(readOnly("get-owner")).toBePrincipal(deployer);
    expect(readOnly("get-proposed-owner")).toBeSome(Cl.principal(dave));

    height = nextTxHeight();
    const accepted = acceptOwner(dave);
    expect(accepted.result).toBeOk(Cl.bool(true));
    expect(printEvents(accepted)).toStrictEqual([
      Cl.tuple({
        event: Cl.stringAscii("owner-changed"),
        sender: Cl.principal(deployer),
        recipient: Cl.principal(dave),
        "block-height": Cl.uint(height),
      }),
    ]);
    expect(readOnly("get-owner")).toBePrincipal(dave);
    expect(readOnly("get-proposed-owner")).toBeNone();

    expect(pause(deployer).result).toBeErr(Cl.uint(ERR.NOT_OWNER));
    expect(proposeOwner(deployer, alice).result).toBeErr(Cl.uint(ERR.NOT_OWNER));
    expect(pause(dave).result).toBeOk(Cl.bool(true));
  });

  it("rejects proposals from non-owners with ERR-NOT-OWNER", () => {
    const res = proposeOwner(alice, alice);
    expect(res.result).toBeErr(Cl.uint(ERR.NOT_OWNER));
    expect(res.events).toStrictEqual([]);
  });

  it("rejects accept without a proposal, or by someone else, with ERR-NOT-PROPOSED-OWNER", () => {
    expect(acceptOwner(dave).result).toBeErr(Cl.uint(ERR.NOT_PROPOSED_OWNER));
    expect(proposeOwner(deployer, dave).result).toBeOk(Cl.bool(true));
    const res = acceptOwner(alice);
    expect(res.result).toBeErr(Cl.uint(ERR.NOT_PROPOSED_OWNER));
    expect(res.events).toStrictEqual([]);
    expect(readOnly("get-owner")).toBePrincipal(deployer);
  });

  it("a new proposal replaces the old one, and a proposal is single-use", () => {
    expect(proposeOwner(deployer, dave).result).toBeOk(Cl.bool(true));
    expect(proposeOwner(deployer, alice).result).toBeOk(Cl.bool(true));
    expect(acceptOwner(dave).result).toBeErr(Cl.uint(ERR.NOT_PROPOSED_OWNER));
    expect(acceptOwner(alice).result).toBeOk(Cl.bool(true));
    expect(acceptOwner(alice).result).toBeErr(Cl.uint(ERR.NOT_PROPOSED_OWNER));
  });
});

describe("read-only functions", () => {
  it("report the timeout, owner, pause flag and an unknown id", () => {
    expect(readOnly("get-timeout")).toBeUint(TIMEOUT);
    expect(readOnly("get-owner")).toBePrincipal(deployer);
    expect(readOnly("is-paused")).toBeBool(false);
    expect(readOnly("get-total-locked")).toBeUint(0n);
    expect(readOnly("get-proposed-owner")).toBeNone();
    const unknown = Cl.buffer(paymentId("unknown"));
    expect(readOnly("get-payment", [unknown])).toBeNone();
    expect(readOnly("get-status", [unknown])).toBeNone();
    expect(readOnly("is-refundable", [unknown])).toBeBool(false);
  });

  it("is-refundable follows the payment through its life", () => {
    const created = createDefault();
    const id = Cl.buffer(ID);
    expect(readOnly("get-status", [id])).toBeSome(Cl.stringAscii("pending"));
    expect(readOnly("is-refundable", [id])).toBeBool(false);
    mineUntilNextTxAt(created + TIMEOUT + 1n);
    // simnet.blockHeight is now created + TIMEOUT: read-only calls see it.
    expect(readOnly("is-refundable", [id])).toBeBool(true);
  });
});

describe("contract surface", () => {
  it("exposes exactly the documented public functions (no admin withdrawal)", () => {
    const iface = simnet.getContractsInterfaces().get(escrowId);
    expect(iface).toBeDefined();
    const publicFns = iface!.functions
      .filter((f) => f.access === "public")
      .map((f) => f.name)
      .sort();
    expect(publicFns).toStrictEqual([
      "accept-owner",
      "allow-token",
      "claim-payment",
      "claim-payment-ft",
      "create-payment",
      "create-payment-ft",
      "disallow-token",
      "pause",
      "propose-owner",
      "refund-expired",
      "refund-expired-ft",
      "unpause",
    ]);
    expect(CONTRACT).toBe("x402-nexus-escrow");
  });
});
