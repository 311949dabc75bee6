import { beforeEach, describe, expect, it } from "vitest";
import { Cl } from "@stacks/transactions";
import {
  ERR,
  TIMEOUT,
  alice,
  allowToken,
  badToken,
  bob,
  carol,
  claimPayment,
  claimPaymentFt,
  createPayment,
  createPaymentFt,
  deployer,
  disallowToken,
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
  readOnly,
  refundExpired,
  refundExpiredFt,
  stxBalance,
  testToken,
  tokenBalance,
  ftTransfers,
  unpause,
} from "./helpers";

// Token payments: the STX rules, for allowed SIP-010 tokens.
const AMOUNT = 50_000n;
const ID = paymentId("token-payment-1");
const MEMO = memo("invoice-7");
const ASSET = `${testToken}::test-sbtc`;

function mint(token: string, amount: bigint, to: string) {
  expect(simnet.callPublicFn(token, "mint", [Cl.uint(amount), Cl.principal(to)], to).result).toBeOk(
    Cl.bool(true),
  );
}

function setMode(mode: number) {
  expect(simnet.callPublicFn(badToken, "set-mode", [Cl.uint(mode)], deployer).result).toBeOk(Cl.bool(true));
}

/** Token balances of alice, bob, carol and the escrow, plus the escrow's uSTX. */
function books(token = testToken) {
  return {
    alice: tokenBalance(token, alice),
    bob: tokenBalance(token, bob),
    carol: tokenBalance(token, carol),
    escrow: tokenBalance(token, escrowId),
    escrowStx: stxBalance(escrowId),
  };
}

function expectLocked(token: string, amount: bigint) {
  expect(readOnly("get-token-locked", [Cl.principal(token)])).toBeUint(amount);
  expect(tokenBalance(token, escrowId)).toBe(amount);
}

/** alice -> bob in the test token; returns the height it was mined at. */
function createDefault(id = ID, amount = AMOUNT): bigint {
  const height = nextTxHeight();
  expect(createPaymentFt(alice, id, bob, amount, testToken, MEMO).result).toBeOk(Cl.bool(true));
  return height;
}

beforeEach(() => {
  expect(allowToken(deployer, testToken, "test-sbtc").result).toBeOk(Cl.bool(true));
  mint(testToken, 1_000_000n, alice);
});

describe("token allowlist", () => {
  it("the owner allows and disallows a token, printing each change", () => {
    const other = `${deployer}.test-bad-token`;
    const height = nextTxHeight();
    const allowed = allowToken(deployer, other, "bad-token");
    expect(allowed.result).toBeOk(Cl.bool(true));
    expect(printEvents(allowed)).toStrictEqual([
      Cl.tuple({
        event: Cl.stringAscii("token-allowed"),
        token: Cl.principal(other),
        "asset-name": Cl.stringAscii("bad-token"),
        sender: Cl.principal(deployer),
        "block-height": Cl.uint(height),
      }),
    ]);
    expect(readOnly("is-token-allowed", [Cl.principal(other)])).toBeBool(true);
    expect(readOnly("get-token-asset-name", [Cl.principal(other)])).toBeSome(Cl.stringAscii("bad-token"));

    const off = disallowToken(deployer, other);
    expect(off.result).toBeOk(Cl.bool(true));
    expect(printEvents(off)).toStrictEqual([
      Cl.tuple({
        event: Cl.stringAscii("token-disallowed"),
        token: Cl.principal(other),
        sender: Cl.principal(deployer),
        "block-height": Cl.uint(height + 1n),
      }),
    ]);
    expect(readOnly("is-token-allowed", [Cl.principal(other)])).toBeBool(false);
    // The asset name stays, for payouts of payments already made.
    expect(readOnly("get-token-asset-name", [Cl.principal(other)])).toBeSome(Cl.stringAscii("bad-token"));
    expect(disallowToken(deployer, other).result).toBeErr(Cl.uint(ERR.TOKEN_NOT_ALLOWED));
  });

  it("refuses anyone but the owner with ERR-NOT-OWNER", () => {
    expect(allowToken(alice, badToken, "bad-token").result).toBeErr(Cl.uint(ERR.NOT_OWNER));
    expect(disallowToken(alice, testToken).result).toBeErr(Cl.uint(ERR.NOT_OWNER));
    expect(readOnly("is-token-allowed", [Cl.principal(badToken)])).toBeBool(false);
    expect(disallowToken(deployer, badToken).result).toBeErr(Cl.uint(ERR.TOKEN_NOT_ALLOWED));
  });

  it("is managed while paused; creates and claims wait, refunds go on", () => {
    createDefault();
    const late = paymentId("late");
    createDefault(late);
    expect(pause(deployer).result).toBeOk(Cl.bool(true));
    expect(allowToken(deployer, badToken, "bad-token").result).toBeOk(Cl.bool(true));
    expect(disallowToken(deployer, badToken).result).toBeOk(Cl.bool(true));
    expect(createPaymentFt(alice, paymentId("x"), bob, 1n, testToken).result).toBeErr(Cl.uint(ERR.PAUSED));
    expect(claimPaymentFt(bob, ID, testToken).result).toBeErr(Cl.uint(ERR.PAUSED));
    mineUntilNextTxAt(BigInt(simnet.blockHeight) + TIMEOUT + 1n);
    expect(refundExpiredFt(carol, late, testToken).result).toBeOk(Cl.bool(true));
    expectLocked(testToken, AMOUNT);
    expect(unpause(deployer).result).toBeOk(Cl.bool(true));
  });
});

describe("create-payment-ft", () => {
  it("locks the tokens, records the token and prints it", () => {
    const before = books();
    const height = nextTxHeight();
    const res = createPaymentFt(alice, ID, bob, AMOUNT, testToken, MEMO);
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
        token: testToken,
      }),
    ]);
    expect(ftTransfers(res)).toStrictEqual([
      { asset: ASSET, sender: alice, recipient: escrowId, amount: AMOUNT.toString() },
    ]);
    expect(getPayment(ID)).toBeSome(
      paymentRecord({ sender: alice, recipient: bob, amount: AMOUNT, memo: MEMO, createdAt: height, status: "pending", token: testToken }),
    );
    expect(books()).toStrictEqual({ ...before, alice: before.alice - AMOUNT, escrow: before.escrow + AMOUNT });
    expectLocked(testToken, AMOUNT);
    // STX books untouched.
    expect(readOnly("get-total-locked")).toBeUint(0n);
  });

  it("refuses a token never allowed, and one disallowed, with ERR-TOKEN-NOT-ALLOWED", () => {
    mint(badToken, 1_000n, alice);
    const before = books(badToken);
    expect(createPaymentFt(alice, ID, bob, 10n, badToken).result).toBeErr(Cl.uint(ERR.TOKEN_NOT_ALLOWED));
    expect(disallowToken(deployer, testToken).result).toBeOk(Cl.bool(true));
    expect(createPaymentFt(alice, ID, bob, 10n, testToken).result).toBeErr(Cl.uint(ERR.TOKEN_NOT_ALLOWED));
    expect(getPayment(ID)).toBeNone();
    expect(books(badToken)).toStrictEqual(before);
    expectLocked(testToken, 0n);
  });

  it("shares one id space with STX payments: ERR-ID-USED either way", () => {
    expect(createPayment(alice, ID, bob, 5n).result).toBeOk(Cl.bool(true));
    expect(createPaymentFt(alice, ID, bob, 5n, testToken).result).toBeErr(Cl.uint(ERR.ID_USED));
    const other = paymentId("token-first");
    createDefault(other);
    expect(createPayment(alice, other, bob, 5n).result).toBeErr(Cl.uint(ERR.ID_USED));
    expectLocked(testToken, AMOUNT);
    expect(readOnly("get-total-locked")).toBeUint(5n);
  });

  it("applies the STX rules: zero, self-payment, too little balance", () => {
    expect(createPaymentFt(alice, ID, bob, 0n, testToken).result).toBeErr(Cl.uint(ERR.ZERO_AMOUNT));
    expect(createPaymentFt(alice, ID, alice, 1n, testToken).result).toBeErr(Cl.uint(ERR.SELF_PAYMENT));
    expect(createPaymentFt(carol, ID, bob, 1n, testToken).result).toBeErr(Cl.uint(ERR.TRANSFER_FAILED));
    expect(getPayment(ID)).toBeNone();
  });
});

describe("claim-payment-ft", () => {
  it("pays the recipient in the token, marks it claimed and prints the token", () => {
    const created = createDefault();
    const before = books();
    const height = nextTxHeight();
    const res = claimPaymentFt(bob, ID, testToken);
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
        token: testToken,
      }),
    ]);
    expect(ftTransfers(res)).toStrictEqual([
      { asset: ASSET, sender: escrowId, recipient: bob, amount: AMOUNT.toString() },
    ]);
    expect(getPayment(ID)).toBeSome(
      paymentRecord({ sender: alice, recipient: bob, amount: AMOUNT, memo: MEMO, createdAt: created, status: "claimed", token: testToken }),
    );
    expect(books()).toStrictEqual({ ...before, bob: before.bob + AMOUNT, escrow: before.escrow - AMOUNT });
    expectLocked(testToken, 0n);
  });

  it("must name the payment's own token: ERR-WRONG-TOKEN, and STX calls cannot touch it", () => {
    createDefault();
    expect(allowToken(deployer, badToken, "bad-token").result).toBeOk(Cl.bool(true));
    expect(claimPaymentFt(bob, ID, badToken).result).toBeErr(Cl.uint(ERR.WRONG_TOKEN));
    expect(claimPayment(bob, ID).result).toBeErr(Cl.uint(ERR.WRONG_TOKEN));
    // ... nor can a token call touch an STX payment.
    const stx = paymentId("stx");
    expect(createPayment(alice, stx, bob, 5n).result).toBeOk(Cl.bool(true));
    expect(claimPaymentFt(bob, stx, testToken).result).toBeErr(Cl.uint(ERR.WRONG_TOKEN));
    expectLocked(testToken, AMOUNT);
    expect(readOnly("get-total-locked")).toBeUint(5n);
  });

  it("succeeds at expires-at - 1 and fails at expires-at with ERR-EXPIRED", () => {
    const a = paymentId("a");
    const created = createDefault(a);
    const b = paymentId("b");
    const createdB = createDefault(b);
    mineUntilNextTxAt(created + TIMEOUT - 1n);
    expect(claimPaymentFt(bob, a, testToken).result).toBeOk(Cl.bool(true));
    mineUntilNextTxAt(createdB + TIMEOUT);
    expect(claimPaymentFt(bob, b, testToken).result).toBeErr(Cl.uint(ERR.EXPIRED));
    expectLocked(testToken, AMOUNT);
  });

  it("rejects a third party and a double claim; pays out once the token is disallowed", () => {
    createDefault();
    expect(claimPaymentFt(carol, ID, testToken).result).toBeErr(Cl.uint(ERR.NOT_RECIPIENT));
    expect(disallowToken(deployer, testToken).result).toBeOk(Cl.bool(true));
    expect(claimPaymentFt(bob, ID, testToken).result).toBeOk(Cl.bool(true));
    expect(claimPaymentFt(bob, ID, testToken).result).toBeErr(Cl.uint(ERR.NOT_PENDING));
    expect(claimPaymentFt(bob, paymentId("none"), testToken).result).toBeErr(Cl.uint(ERR.NOT_FOUND));
    expect(tokenBalance(testToken, bob)).toBe(AMOUNT);
  });
});

describe("refund-expired-ft", () => {
  it("refunds the sender at expires-at, whoever calls, and prints the token", () => {
    const created = createDefault();
    mineUntilNextTxAt(created + TIMEOUT - 1n);
    expect(refundExpiredFt(carol, ID, testToken).result).toBeErr(Cl.uint(ERR.NOT_EXPIRED));
    const before = books();
    const res = refundExpiredFt(carol, ID, testToken);
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
        token: testToken,
      }),
    ]);
    expect(ftTransfers(res)).toStrictEqual([
      { asset: ASSET, sender: escrowId, recipient: alice, amount: AMOUNT.toString() },
    ]);
    expect(books()).toStrictEqual({ ...before, alice: before.alice + AMOUNT, escrow: before.escrow - AMOUNT });
    expectLocked(testToken, 0n);
    expect(refundExpiredFt(carol, ID, testToken).result).toBeErr(Cl.uint(ERR.NOT_PENDING));
  });

  it("must name the payment's own token, and STX refunds cannot touch it", () => {
    const created = createDefault();
    expect(allowToken(deployer, badToken, "bad-token").result).toBeOk(Cl.bool(true));
    mineUntilNextTxAt(created + TIMEOUT);
    expect(refundExpiredFt(carol, ID, badToken).result).toBeErr(Cl.uint(ERR.WRONG_TOKEN));
    expect(refundExpired(carol, ID).result).toBeErr(Cl.uint(ERR.WRONG_TOKEN));
    expect(disallowToken(deployer, testToken).result).toBeOk(Cl.bool(true));
    expect(refundExpiredFt(carol, ID, testToken).result).toBeOk(Cl.bool(true));
    expect(tokenBalance(testToken, alice)).toBe(1_000_000n);
  });
});

describe("a token whose transfer lies", () => {
  beforeEach(() => {
    expect(allowToken(deployer, badToken, "bad-token").result).toBeOk(Cl.bool(true));
    mint(badToken, 1_000n, alice);
  });

  it("cannot lock less than the payment says: ok-without-moving and a short transfer fail the create", () => {
    for (const mode of [1, 2]) {
      setMode(mode);
      const before = books(badToken);
      expect(createPaymentFt(alice, ID, bob, 100n, badToken).result).toBeErr(Cl.uint(ERR.TRANSFER_FAILED));
      expect(getPayment(ID)).toBeNone();
      expect(books(badToken)).toStrictEqual(before);
      expectLocked(badToken, 0n);
    }
  });

  it("cannot pay out less than the payment says: the claim fails and the books stay whole", () => {
    createPaymentFt(alice, ID, bob, 100n, badToken);
    expectLocked(badToken, 100n);
    for (const mode of [1, 2]) {
      setMode(mode);
      expect(claimPaymentFt(bob, ID, badToken).result).toBeErr(Cl.uint(ERR.TRANSFER_FAILED));
      expect(readOnly("get-status", [Cl.buffer(ID)])).toBeSome(Cl.stringAscii("pending"));
      expectLocked(badToken, 100n);
    }
    setMode(0);
    expect(claimPaymentFt(bob, ID, badToken).result).toBeOk(Cl.bool(true));
    expect(tokenBalance(badToken, bob)).toBe(100n);
    expectLocked(badToken, 0n);
  });

  it("a wrong asset name on the allowlist blocks payouts instead of letting more out", () => {
    createPaymentFt(alice, ID, bob, 100n, badToken);
    expect(allowToken(deployer, badToken, "not-its-name").result).toBeOk(Cl.bool(true));
    expect(claimPaymentFt(bob, ID, badToken).result).toBeErr(Cl.uint(ERR.TRANSFER_FAILED));
    expect(allowToken(deployer, badToken, "bad-token").result).toBeOk(Cl.bool(true));
    expect(claimPaymentFt(bob, ID, badToken).result).toBeOk(Cl.bool(true));
  });
});
