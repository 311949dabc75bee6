/**
 * An agent paying the example API: x402-stacks' `wrapAxiosWithPayment` for
 * the `exact` routes, the escrow helper for `/report`.
 *
 *   AGENT_KEY=<hex private key> API=http://127.0.0.1:3000 CORE_API=http://127.0.0.1:20443 \
 *     npx tsx examples/x402/agent.ts
 */
import axios from "axios";
import { decodePaymentResponse, privateKeyToAccount, wrapAxiosWithPayment } from "x402-stacks";
import { fetchWithEscrow, paymentResponse } from "../../clients/typescript/escrow";

/** The API x402-stacks' client reads nonces and fees from on testnet. */
export const HIRO_TESTNET = "https://api.testnet.hiro.so";

/**
 * x402-stacks' client reads nonce and fee from the public Hiro API
 * (`new StacksTestnet()` inside `wrapAxiosWithPayment`, not configurable):
 * send those requests to `coreApiUrl` (a devnet node, or the test suite's
 * chain double) instead. Returns the undo.
 */
export function routeHiroTo(coreApiUrl: string): () => void {
  const real = globalThis.fetch;
  globalThis.fetch = ((input: string | URL | Request, init?: RequestInit) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (url.startsWith(HIRO_TESTNET)) return real(coreApiUrl + url.slice(HIRO_TESTNET.length), init);
    return real(input, init);
  }) as typeof fetch;
  return () => {
    globalThis.fetch = real;
  };
}

/** GETs `path` of `api`, paying with an `exact` transfer; answers the body and the txid. */
export async function payExact(api: string, path: string, privateKey: string) {
  const client = wrapAxiosWithPayment(axios.create({ baseURL: api }), privateKeyToAccount(privateKey, "testnet"));
  const r = await client.get(path);
  return { status: r.status, body: r.data, txid: decodePaymentResponse(r.headers["payment-response"])?.transaction };
}

/** GETs `path` of `api`, paying into the escrow; answers the body, the txid and the payment id. */
export async function payEscrow(api: string, path: string, privateKey: string, coreApiUrl: string) {
  const { response, paymentId } = await fetchWithEscrow(`${api}${path}`, { privateKey, coreApiUrl });
  return { status: response.status, body: await response.json(), txid: paymentResponse(response)?.transaction, paymentId };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const key = process.env.AGENT_KEY;
  if (!key) throw new Error("set AGENT_KEY to the agent's hex private key");
  const api = process.env.API ?? "http://127.0.0.1:3000";
  const coreApi = process.env.CORE_API ?? "http://127.0.0.1:20443";
  // Against devnet, the nonce and fee must come from the devnet node.
  if (process.env.CORE_API) routeHiroTo(coreApi);
  console.log("weather:", await payExact(api, "/weather", key));
  console.log("report:", await payEscrow(api, "/report", key, coreApi));
}
