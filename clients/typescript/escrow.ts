/**
 * The x402 `escrow` scheme for TypeScript: x402-stacks (2.0.3) cannot build
 * an escrow payment, so this helper does.
 *
 * Resource server: advertise `escrow` requirements with x402-stacks' own
 * `paymentMiddleware` ({@link escrowMiddlewareConfig}); it settles them
 * through nexus-node like any other scheme.
 *
 * Agent: {@link fetchWithEscrow} answers a 402 that accepts `escrow` with a
 * signed `create-payment` on the escrow contract (the amount locked for
 * `payTo`; the contract refunds it after `timeoutBlocks` if the merchant
 * never claims), and retries the request with the `payment-signature`
 * header. When the requirements' `asset` is a SIP-010 token, it signs a
 * `create-payment-ft` naming that token instead.
 */
import { randomBytes } from "node:crypto";
import { Cl, Pc, getAddressFromPrivateKey, makeContractCall } from "@stacks/transactions";

/** One entry of a 402's `accepts` (x402 v2 `PaymentRequirements`). */
export type Requirements = {
  scheme: string;
  network: string;
  amount: string;
  asset: string;
  payTo: string;
  maxTimeoutSeconds: number;
  extra?: Record<string, unknown>;
};

export type EscrowTerms = {
  /** `testnet` (devnet too) or `mainnet`. */
  network: "testnet" | "mainnet";
  /** uSTX. */
  amount: bigint | number | string;
  /** The merchant, who claims the payment. */
  payTo: string;
  /** The escrow contract, `ADDR.x402-nexus-escrow` (from nexus-node's `/x402/supported`). */
  contract: string;
  /** nexus-node's facilitator, `http://HOST:8402/x402`. */
  facilitatorUrl: string;
  maxTimeoutSeconds?: number;
  description?: string;
  /**
   * Lock a SIP-010 token instead of uSTX (`amount` in its base unit). `asset`
   * is its `define-fungible-token` name (default: the contract name), which
   * the agent's post-condition needs.
   */
  token?: { address: string; name: string; asset?: string };
};

/** A config for x402-stacks' `paymentMiddleware` that asks for an escrow payment. */
export function escrowMiddlewareConfig(t: EscrowTerms) {
  return {
    scheme: "escrow",
    network: t.network,
    amount: BigInt(t.amount),
    payTo: t.payTo,
    facilitatorUrl: t.facilitatorUrl,
    maxTimeoutSeconds: t.maxTimeoutSeconds ?? 60,
    description: t.description,
    // x402-stacks turns these into the requirements' `asset` (ADDR.contract).
    ...(t.token ? { tokenType: "sBTC", tokenContract: { address: t.token.address, name: t.token.name } } : {}),
    extra: { contract: t.contract, ...(t.token ? { assetName: t.token.asset ?? t.token.name } : {}) },
  };
}

/** The token an escrow requirement locks: its contract and asset name; null for STX. */
export function escrowToken(req: Requirements): { contract: string; asset: string } | null {
  if (req.asset.toUpperCase() === "STX") return null;
  const [contract, named] = req.asset.split("::");
  const asset = named ?? String(req.extra?.assetName ?? contract.split(".")[1] ?? "");
  if (!contract.includes(".") || !asset) throw new Error(`escrow: cannot read token asset ${req.asset}`);
  return { contract, asset };
}

export type Agent = {
  /** Hex private key (with the 01 compression suffix). */
  privateKey: string;
  /** A stacks-node RPC (`http://HOST:20443`) to read the nonce from. */
  coreApiUrl: string;
  /** uSTX; default 3000. */
  fee?: bigint;
};

const CAIP2 = { "stacks:1": "mainnet", "stacks:2147483648": "testnet" } as const;

/** A signed `create-payment` paying `req`, as hex, and its payment id. */
export async function signEscrowPayment(req: Requirements, agent: Agent): Promise<{ tx: string; paymentId: string }> {
  const network = CAIP2[req.network as keyof typeof CAIP2];
  if (!network) throw new Error(`escrow: unsupported network ${req.network}`);
  const contract = String(req.extra?.contract ?? "");
  const [address, name] = contract.split(".");
  if (!address || !name) throw new Error("escrow: requirements carry no extra.contract");
  const sender = getAddressFromPrivateKey(agent.privateKey, network);
  const account = await fetch(`${agent.coreApiUrl}/v2/accounts/${sender}?proof=0`);
  if (!account.ok) throw new Error(`escrow: nonce of ${sender}: ${account.status}`);
  const { nonce } = (await account.json()) as { nonce: number };
  const amount = BigInt(req.amount);
  const id = randomBytes(32);
  const token = escrowToken(req);
  const args = [Cl.buffer(id), Cl.principal(req.payTo), Cl.uint(amount), Cl.bufferFromUtf8("x402")];
  const tx = await makeContractCall({
    contractAddress: address,
    contractName: name,
    functionName: token ? "create-payment-ft" : "create-payment",
    functionArgs: token ? [...args, Cl.principal(token.contract)] : args,
    // The wallet, not the contract, bounds what leaves the account.
    postConditionMode: "deny",
    postConditions: [
      token
        ? Pc.principal(sender).willSendEq(amount).ft(token.contract as `${string}.${string}`, token.asset)
        : Pc.principal(sender).willSendEq(amount).ustx(),
    ],
    network,
    nonce,
    fee: agent.fee ?? 3000n,
    senderKey: agent.privateKey,
  });
  return { tx: tx.serialize(), paymentId: `0x${id.toString("hex")}` };
}

/** The `payment-signature` header value for a signed transaction. */
export function paymentSignature(req: Requirements, tx: string, resource?: unknown): string {
  const payload = { x402Version: 2, resource, accepted: req, payload: { transaction: tx } };
  return Buffer.from(JSON.stringify(payload)).toString("base64");
}

/**
 * `fetch(url)`, paying a 402 that accepts `escrow` once. Answers the final
 * response and the escrow payment id (undefined when no payment was needed).
 */
export async function fetchWithEscrow(
  url: string,
  agent: Agent,
  init: RequestInit = {},
): Promise<{ response: Response; paymentId?: string }> {
  const first = await fetch(url, init);
  if (first.status !== 402) return { response: first };
  const required = (await first.json()) as { accepts?: Requirements[]; resource?: unknown };
  const req = required.accepts?.find((a) => a.scheme === "escrow");
  if (!req) throw new Error("escrow: the 402 accepts no escrow payment");
  const { tx, paymentId } = await signEscrowPayment(req, agent);
  const headers = new Headers(init.headers);
  headers.set("payment-signature", paymentSignature(req, tx, required.resource));
  return { response: await fetch(url, { ...init, headers }), paymentId };
}

/** The `payment-response` header, decoded. */
export function paymentResponse(r: Response): { success: boolean; transaction: string; payer?: string } | null {
  const h = r.headers.get("payment-response");
  return h ? JSON.parse(Buffer.from(h, "base64").toString("utf8")) : null;
}
