/**
 * One end-to-end world: the chain double, a real nexus-node (embedded
 * default) beside it, and the example paid API (`examples/x402/paid-api.ts`),
 * whose routes x402-stacks' real `paymentMiddleware` protects, pointed at
 * the node.
 */
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { devnetAccount, loadDevnetAccounts, type DevnetAccount } from "../../tests/devnet-keys";
import { paidApi } from "../../examples/x402/paid-api";

export { routeHiroTo } from "../../examples/x402/agent";
import { ChainDouble } from "./chain-double";
import { Node } from "./node";

export type World = {
  chain: ChainDouble;
  node: Node;
  server: Server;
  /** The resource server, e.g. http://127.0.0.1:PORT. */
  api: string;
  deployer: DevnetAccount;
  payer: DevnetAccount;
  merchant: DevnetAccount;
  other: DevnetAccount;
  escrow: string;
  token: string;
  stop(): Promise<void>;
};

export async function startWorld(): Promise<World> {
  const accounts = loadDevnetAccounts();
  const get = (n: string) => devnetAccount(accounts, n);
  const deployer = get("deployer");
  const escrow = `${deployer.address}.x402-nexus-escrow`;
  // A devnet stand-in for sBTC: x402-stacks picks its token kind by name.
  const token = `${deployer.address}.test-sbtc`;
  const chain = new ChainDouble({ escrow });
  await chain.start();
  const node = new Node({
    NEXUS_RPC_URL: chain.url,
    NEXUS_X402_TOKENS: `["${token}::test-sbtc"]`,
    NEXUS_X402_SETTLE_WAIT_SECS: "20",
    NEXUS_RELAY_INITIAL_BACKOFF_MS: "20",
  });
  await node.start();
  chain.opts.observer = node.observer;
  await chain.genesis();
  const merchant = get("wallet_2");
  // The paid API of examples/x402, as a user would run it.
  const app = paidApi({
    facilitatorUrl: `${node.api}/x402`,
    merchant: merchant.address,
    escrow,
    token: { address: deployer.address, name: "test-sbtc" },
  });
  const server = await new Promise<Server>((ok) => {
    const s = app.listen(0, "127.0.0.1", () => ok(s));
  });
  const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    chain, node, deployer, payer: get("wallet_1"), merchant, other: get("wallet_3"), escrow, token,
    server,
    api,
    async stop() {
      await new Promise((ok) => server.close(ok));
      await node.stop();
      await chain.stop();
    },
  };
}

/** Payments of `principal` as the node's API lists them. */
export async function paymentsOf(node: Node, principal: string): Promise<Array<Record<string, unknown>>> {
  const r = await fetch(`${node.api}/api/payments?sender=${principal}`);
  const body = (await r.json()) as { payments: Array<Record<string, unknown>> };
  return body.payments;
}
