/**
 * The facilitator with the real x402 ecosystem: x402-stacks@2.0.3's Express
 * `paymentMiddleware` protects a resource, its `wrapAxiosWithPayment`
 * client pays, nexus-node (the real binary, embedded default) is the
 * facilitator, and the chain double mines exactly the transaction the
 * client signed. Run with `npm run test:e2e` (after `cargo build -p nexus-node`).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import axios from "axios";
import WebSocket from "ws";
import { Cl, Pc, makeContractCall, makeSTXTokenTransfer } from "@stacks/transactions";
import { privateKeyToAccount, wrapAxiosWithPayment, decodePaymentResponse } from "x402-stacks";
import { payEscrow, payExact } from "../../examples/x402/agent";
import { paymentsOf, routeHiroTo, startWorld, type World } from "./harness";

let w: World;
let unroute: () => void;

beforeAll(async () => {
  w = await startWorld();
  unroute = routeHiroTo(w.chain.url);
});

afterAll(async () => {
  unroute?.();
  await w?.stop();
});

/** Collects the node's WebSocket notifications about `principal`. */
async function watch(principal: string): Promise<{ events: Array<Record<string, unknown>>; close: () => void }> {
  const ws = new WebSocket(`${w.node.api.replace("http", "ws")}/ws`);
  const events: Array<Record<string, unknown>> = [];
  await new Promise<void>((ok, fail) => {
    ws.once("error", fail);
    ws.once("open", () => {
      ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscribe", params: { event: "principal", principal } }));
    });
    ws.on("message", (m) => {
      const msg = JSON.parse(m.toString());
      if (msg.id === 1) ok();
      else if (msg.params) events.push(msg.params);
    });
  });
  return { events, close: () => ws.close() };
}

/** Resolves once `events` holds an event matching `pred` (checked on each message). */
function until(events: Array<Record<string, unknown>>, pred: (e: Record<string, unknown>) => boolean): Promise<void> {
  return new Promise((ok) => {
    const check = () => (events.some(pred) ? ok() : setImmediate(check));
    check();
  });
}

/** Sends a hand-made payment straight through the middleware (no client). */
async function payDirect(path: string, tx: string, accepted?: Record<string, unknown>) {
  const required = await fetch(`${w.api}${path}`);
  expect(required.status).toBe(402);
  const body = (await required.json()) as { accepts: Array<Record<string, unknown>> };
  const payload = { x402Version: 2, accepted: accepted ?? body.accepts[0], payload: { transaction: tx } };
  const header = Buffer.from(JSON.stringify(payload)).toString("base64");
  const r = await fetch(`${w.api}${path}`, { headers: { "payment-signature": header } });
  return { status: r.status, body: (await r.json()) as Record<string, unknown>, header };
}

describe("x402-stacks client and middleware, nexus-node as facilitator", () => {
  it("pays STX exact: 200, the payment-response txid, the record and the WebSocket events", async () => {
    const feed = await watch(w.payer.address);
    const r = await payExact(w.api, "/weather", w.payer.privateKey);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ forecast: "sunny" });
    const client = wrapAxiosWithPayment(axios.create({ baseURL: w.api }), privateKeyToAccount(w.payer.privateKey, "testnet"));
    const again = await client.get("/weather");
    const settled = decodePaymentResponse(again.headers["payment-response"]);
    expect(settled?.success).toBe(true);
    expect(settled?.payer).toBe(w.payer.address);
    const txid = settled!.transaction;
    expect(w.chain.mined.map((m) => m.txid)).toContain(txid);

    const [p] = (await paymentsOf(w.node, w.payer.address)).filter((x) => x.create_txid === txid);
    expect(p).toMatchObject({ status: "confirmed", scheme: "exact", asset: "STX", amount: "1000", recipient: w.merchant.address });

    await until(feed.events, (e) => e.type === "payment:confirmed" && e.txid === txid);
    const mine = feed.events.filter((e) => e.txid === txid);
    expect(mine[0]).toMatchObject({ type: "payment:created", source: "x402", scheme: "exact" });
    expect(mine.map((e) => e.type)).toContain("payment:confirmed");
    feed.close();
  });

  it("pays a SIP-010 token exact with the token's transfer", async () => {
    w.chain.tokens.set(`${w.token}|${w.payer.address}`, 10_000n);
    const client = wrapAxiosWithPayment(axios.create({ baseURL: w.api }), privateKeyToAccount(w.payer.privateKey, "testnet"));
    const r = await client.get("/premium");
    expect(r.status).toBe(200);
    const txid = decodePaymentResponse(r.headers["payment-response"])!.transaction;
    const [p] = (await paymentsOf(w.node, w.payer.address)).filter((x) => x.create_txid === txid);
    expect(p).toMatchObject({ status: "confirmed", asset: `${w.token}::test-sbtc`, amount: "500" });
  });

  it("settles the same payment once when the middleware sees it twice", async () => {
    const nonce = w.chain.account(w.payer.address).nonce;
    const tx = await makeSTXTokenTransfer({
      recipient: w.merchant.address, amount: 1000n, network: "testnet", nonce, fee: 2000n, senderKey: w.payer.privateKey,
    });
    const before = w.chain.broadcasts.length;
    const first = await payDirect("/weather", tx.serialize());
    const again = await payDirect("/weather", tx.serialize());
    expect([first.status, again.status]).toEqual([200, 200]);
    expect(w.chain.broadcasts.length).toBe(before + 1);
  });

  it("refuses bad payments with a 402 carrying the reason, and stores nothing", async () => {
    const nonce = w.chain.account(w.payer.address).nonce;
    const stx = (o: { to?: string; amount?: bigint; network?: "testnet" | "mainnet" }) =>
      makeSTXTokenTransfer({
        recipient: o.to ?? w.merchant.address, amount: o.amount ?? 1000n, network: o.network ?? "testnet",
        nonce, fee: 2000n, senderKey: w.payer.privateKey,
      }).then((t) => t.serialize());
    const before = await paymentsOf(w.node, w.payer.address);
    const broadcasts = w.chain.broadcasts.length;
    const cases: Array<[string, string, string]> = [
      ["wrong recipient", "/weather", await stx({ to: w.other.address })],
      ["too little", "/weather", await stx({ amount: 999n })],
      ["wrong network", "/weather", await stx({ network: "mainnet" })],
      ["expired", "/expired", await stx({})],
      ["garbage payload", "/weather", "deadbeef"],
    ];
    const reasons = [];
    for (const [, path, tx] of cases) {
      const r = await payDirect(path, tx);
      expect(r.status).toBe(402);
      reasons.push(r.body.error);
    }
    expect(reasons).toEqual([
      "recipient_mismatch",
      "amount_insufficient",
      "invalid_network",
      "invalid_payment_requirements",
      "invalid_payload",
    ]);
    // Insufficient funds. (Sent by hand: x402-stacks' client answers every
    // 402 after its payment with a new payment, so it would loop here.)
    const rich = w.chain.account(w.payer.address);
    w.chain.accounts.set(w.payer.address, { ...rich, balance: 100n });
    const poor = await payDirect("/weather", await stx({}));
    w.chain.accounts.set(w.payer.address, rich);
    expect([poor.status, poor.body.error]).toEqual([402, "insufficient_funds"]);

    expect(await paymentsOf(w.node, w.payer.address)).toEqual(before);
    expect(w.chain.broadcasts.length).toBe(broadcasts);
  });

  it("pays the escrow scheme with the TypeScript helper and the node confirms the lock", async () => {
    const { status, body, txid, paymentId } = await payEscrow(w.api, "/report", w.payer.privateKey, w.chain.url);
    expect(status).toBe(200);
    expect(body).toEqual({ report: "quarterly" });
    const r = await fetch(`${w.node.api}/api/payments/${paymentId}`);
    const { payment } = (await r.json()) as { payment: Record<string, unknown> };
    expect(payment).toMatchObject({ status: "confirmed", amount: "5000", recipient: w.merchant.address, create_txid: txid });
  });

  it("pays the escrow scheme in a token with the TypeScript helper: create-payment-ft, confirmed with its asset", async () => {
    w.chain.tokens.set(`${w.token}|${w.payer.address}`, 10_000n);
    const { status, body, txid, paymentId } = await payEscrow(w.api, "/report-sbtc", w.payer.privateKey, w.chain.url);
    expect(status).toBe(200);
    expect(body).toEqual({ report: "quarterly, paid in sBTC" });
    const r = await fetch(`${w.node.api}/api/payments/${paymentId}`);
    const { payment } = (await r.json()) as { payment: Record<string, unknown> };
    expect(payment).toMatchObject({
      status: "confirmed",
      amount: "700",
      recipient: w.merchant.address,
      create_txid: txid,
      asset: `${w.token}::test-sbtc`,
    });
    const listed = await fetch(`${w.node.api}/api/payments?asset=${w.token}&status=confirmed`);
    const ids = ((await listed.json()) as { payments: Array<{ payment_id: string }> }).payments.map((p) => p.payment_id);
    expect(ids).toContain(paymentId);
  });

  it("refuses a create-payment to someone else for the escrow scheme", async () => {
    const nonce = w.chain.account(w.payer.address).nonce;
    const tx = await makeContractCall({
      contractAddress: w.deployer.address, contractName: "x402-nexus-escrow", functionName: "create-payment",
      functionArgs: [Cl.buffer(new Uint8Array(32).fill(9)), Cl.principal(w.other.address), Cl.uint(5000), Cl.bufferFromUtf8("x")],
      postConditionMode: "deny", postConditions: [Pc.principal(w.payer.address).willSendEq(5000).ustx()],
      network: "testnet", nonce, fee: 3000n, senderKey: w.payer.privateKey,
    });
    const r = await payDirect("/report", tx.serialize());
    expect(r.status).toBe(402);
    expect(r.body.error).toBe("recipient_mismatch");
  });
});
