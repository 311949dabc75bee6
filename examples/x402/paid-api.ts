/**
 * A paid API whose facilitator is nexus-node: three routes, each behind
 * x402-stacks' own `paymentMiddleware`.
 *
 *   GET /weather   1,000 uSTX, `exact` STX transfer to the merchant
 *   GET /premium     500 units of an sBTC-like token, `exact` token transfer
 *   GET /report    5,000 uSTX locked in the escrow (`escrow` scheme): the
 *                  merchant claims it, or the payer is refunded after expiry
 *   GET /report-sbtc  the same, 700 units of the token locked in the escrow
 *
 * Run (nexus-node on :8402 with an rpc_url, a devnet or testnet chain):
 *   MERCHANT=ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG npx tsx examples/x402/paid-api.ts
 */
import express from "express";
import { paymentMiddleware } from "x402-stacks";
import { escrowMiddlewareConfig } from "../../clients/typescript/escrow";

export type PaidApiOptions = {
  /** nexus-node's facilitator, `http://HOST:8402/x402`. */
  facilitatorUrl: string;
  /** Who is paid. */
  merchant: string;
  /** The escrow contract (`/x402/supported` names it). */
  escrow: string;
  /** The token contract for /premium, `{address, name}` (its name must contain "sbtc" for x402-stacks' client). */
  token: { address: string; name: string };
  network?: "testnet" | "mainnet";
};

export function paidApi(o: PaidApiOptions): express.Express {
  const network = o.network ?? "testnet";
  const app = express();
  const common = { network, payTo: o.merchant, facilitatorUrl: o.facilitatorUrl, maxTimeoutSeconds: 45 };
  app.get("/weather", paymentMiddleware({ ...common, amount: 1000n, description: "today's weather" } as never), (_q, r) => {
    r.json({ forecast: "sunny" });
  });
  app.get(
    "/premium",
    paymentMiddleware({ ...common, amount: 500n, tokenType: "sBTC", tokenContract: o.token } as never),
    (_q, r) => {
      r.json({ premium: true });
    },
  );
  app.get(
    "/report",
    paymentMiddleware(
      escrowMiddlewareConfig({ network, amount: 5000n, payTo: o.merchant, contract: o.escrow, facilitatorUrl: o.facilitatorUrl }) as never,
    ),
    (_q, r) => {
      r.json({ report: "quarterly" });
    },
  );
  app.get(
    "/report-sbtc",
    paymentMiddleware(
      escrowMiddlewareConfig({
        network,
        amount: 700n,
        payTo: o.merchant,
        contract: o.escrow,
        facilitatorUrl: o.facilitatorUrl,
        token: o.token,
      }) as never,
    ),
    (_q, r) => {
      r.json({ report: "quarterly, paid in sBTC" });
    },
  );
  // Expired requirements, to show the refusal a late payer gets.
  app.get(
    "/expired",
    paymentMiddleware({ ...common, amount: 1000n, extra: { expiresAt: "2026-01-01T00:00:00Z" } } as never),
    (_q, r) => {
      r.json({ never: true });
    },
  );
  return app;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const facilitatorUrl = process.env.FACILITATOR_URL ?? "http://127.0.0.1:8402/x402";
  const supported = (await (await fetch(`${facilitatorUrl}/supported`)).json()) as {
    kinds: Array<{ scheme: string; extra?: { contract: string } }>;
  };
  const escrow = supported.kinds.find((k) => k.scheme === "escrow")?.extra?.contract ?? "";
  const [address] = escrow.split(".");
  const port = Number(process.env.PORT ?? 3000);
  paidApi({
    facilitatorUrl,
    merchant: process.env.MERCHANT ?? "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG",
    escrow,
    token: { address, name: process.env.TOKEN_NAME ?? "test-sbtc" },
  }).listen(port, () => console.log(`paid API on http://127.0.0.1:${port} (facilitator ${facilitatorUrl})`));
}
