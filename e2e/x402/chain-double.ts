/**
 * A stacks-node (and the slice of the Hiro API that @stacks/transactions
 * reads) for the x402 end-to-end suite. No stacks-node runs in CI, so this
 * stands in for one, with the real codec (@stacks/transactions):
 *
 * - RPC the node reads: `GET /v2/info`, `GET /v2/accounts/{p}`,
 *   `POST /v2/contracts/call-read/.../get-balance`, `POST /v2/transactions`.
 * - What the x402-stacks client reads to build a transaction:
 *   `GET /extended/v1/address/{p}/nonces`, `POST /v2/fees/transaction`,
 *   `GET /v2/fees/transfer`.
 * - A broadcast is decoded, then mined: the double POSTs to the node's
 *   observer a `/new_block` carrying exactly the signed bytes and the event
 *   the transfer emits (`stx_transfer_event`, or the token's
 *   `ft_transfer_event`; a `create-payment` gets the escrow's STX transfer
 *   and `payment-created` print, a `create-payment-ft` the token's transfer
 *   and the print naming the token), and it records the block's time so the
 *   suite can measure settle overhead.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createHash } from "node:crypto";
import {
  Address,
  AddressVersion,
  Cl,
  PayloadType,
  cvToString,
  deserializeCV,
  deserializeTransaction,
  serializeCV,
  type ClarityValue,
} from "@stacks/transactions";

export type Account = { balance: bigint; nonce: number };

export type Mined = {
  txid: string;
  height: number;
  /** performance.now() when the block's delivery to the observer started. */
  deliveredAt: number;
};

export type DoubleOptions = {
  /** The node's observer, e.g. http://127.0.0.1:8403. Set before the first broadcast. */
  observer?: string;
  /** The escrow contract (`ADDR.name`): its create-payment gets a print. */
  escrow: string;
  /** When false, broadcasts are accepted but not mined (for pending tests). */
  mine?: boolean;
};

const sha512_256 = (b: Uint8Array) => createHash("sha512-256").update(b).digest("hex");
const hash = (label: string) => `0x${createHash("sha256").update(label).digest("hex")}`;

export class ChainDouble {
  readonly accounts = new Map<string, Account>();
  /** `${contract}|${principal}` -> balance */
  readonly tokens = new Map<string, bigint>();
  readonly broadcasts: string[] = [];
  readonly mined: Mined[] = [];
  /** The tip's height: 0 until [`genesis`] delivers block 1. */
  height = 0;
  fork = "main";
  private server?: Server;
  url = "";

  constructor(readonly opts: DoubleOptions) {}

  account(p: string): Account {
    return this.accounts.get(p) ?? { balance: 1_000_000_000n, nonce: 0 };
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e) => {
        res.writeHead(500);
        res.end(String(e));
      });
    });
    await new Promise<void>((ok) => this.server!.listen(0, "127.0.0.1", ok));
    const addr = this.server.address();
    if (!addr || typeof addr === "string") throw new Error("no address");
    this.url = `http://127.0.0.1:${addr.port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((ok) => this.server?.close(() => ok()) ?? ok());
  }

  /** The empty block the chain starts from, so later blocks have a known parent. */
  async genesis(): Promise<void> {
    await this.deliver([], []);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const body = await read(req);
    const json = (status: number, v: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(v, (_, x) => (typeof x === "bigint" ? x.toString() : x)));
    };
    const path = url.pathname;
    if (path === "/v2/info") {
      const block = hash(`block:${this.fork}:${this.height}`).slice(2);
      return json(200, {
        stacks_tip_height: this.height,
        stacks_tip: block,
        stacks_tip_consensus_hash: block.slice(0, 40),
        burn_block_height: this.height + 100,
        is_fully_synced: true,
        network_id: 2147483648,
      });
    }
    let m = path.match(/^\/v2\/accounts\/([^/]+)$/);
    if (m) {
      const a = this.account(m[1]);
      return json(200, {
        balance: `0x${a.balance.toString(16).padStart(32, "0")}`,
        locked: `0x${"0".repeat(32)}`,
        unlock_height: 0,
        nonce: a.nonce,
      });
    }
    m = path.match(/^\/extended\/v1\/address\/([^/]+)\/nonces$/);
    if (m) {
      const n = this.account(m[1]).nonce;
      return json(200, { possible_next_nonce: n, last_executed_tx_nonce: n - 1, detected_missing_nonces: [] });
    }
    if (path === "/v2/fees/transaction") {
      return json(200, { estimations: [{ fee: 1800 }, { fee: 2000 }, { fee: 2200 }] });
    }
    if (path === "/v2/fees/transfer") return json(200, 1);
    m = path.match(/^\/v2\/contracts\/call-read\/([^/]+)\/([^/]+)\/get-balance$/);
    if (m) {
      const who = cvToString(deserializeCV(JSON.parse(body.toString()).arguments[0]));
      const bal = this.tokens.get(`${m[1]}.${m[2]}|${who}`) ?? 0n;
      return json(200, { okay: true, result: `0x${serializeCV(Cl.ok(Cl.uint(bal)))}` });
    }
    if (path === "/v2/transactions" && req.method === "POST") {
      const hex = Buffer.from(body).toString("hex");
      const txid = sha512_256(body);
      this.broadcasts.push(txid);
      json(200, txid);
      if (this.opts.mine !== false) {
        // Mined after the answer, as a node's next block would be.
        setImmediate(() => this.mine(hex, txid).catch((e) => console.error("chain double:", e)));
      }
      return;
    }
    json(404, { error: `chain double: no route ${req.method} ${path}` });
  }

  /** A block holding exactly this transaction, with the events it emits. */
  async mine(hex: string, txid: string): Promise<void> {
    const tx = deserializeTransaction(hex);
    const spending = tx.auth.spendingCondition;
    const sender = Address.stringify({ version: AddressVersion.TestnetSingleSig, hash160: spending.signer });
    const events: unknown[] = [];
    const ev = (type: string, data: Record<string, unknown>) =>
      events.push({ txid: `0x${txid}`, event_index: events.length, committed: true, type, ...data });
    const payload = tx.payload;
    let moved = 0n;
    if (payload.payloadType === PayloadType.TokenTransfer) {
      moved = BigInt(payload.amount);
      ev("stx_transfer_event", {
        stx_transfer_event: { sender, recipient: cvToString(payload.recipient), amount: moved.toString(), memo: "" },
      });
    } else if (payload.payloadType === PayloadType.ContractCall) {
      const contract = `${Address.stringify(payload.contractAddress)}.${payload.contractName.content}`;
      const fn = payload.functionName.content;
      const args = payload.functionArgs as ClarityValue[];
      if (fn === "transfer") {
        moved = (args[0] as { value: bigint }).value;
        ev("ft_transfer_event", {
          ft_transfer_event: {
            asset_identifier: `${contract}::${payload.contractName.content}`,
            sender,
            recipient: cvToString(args[2]),
            amount: moved.toString(),
          },
        });
        // The test token prints the memo, as contracts/test/test-sbtc.clar
        // does (tests/fixtures/x402-txs.json has its simnet events).
        const memo = args[3] as { type: string; value?: ClarityValue };
        if (memo.value) {
          ev("contract_event", {
            contract_event: { contract_identifier: contract, topic: "print", raw_value: `0x${serializeCV(memo.value)}` },
          });
        }
        const key = `${contract}|${sender}`;
        this.tokens.set(key, (this.tokens.get(key) ?? 0n) - moved);
        moved = 0n;
      } else if ((fn === "create-payment" || fn === "create-payment-ft") && contract === this.opts.escrow) {
        const amount = (args[2] as { value: bigint }).value;
        const token = fn === "create-payment-ft" ? cvToString(args[4]) : null;
        if (token) {
          // The token's transfer into escrow; its asset is named like the contract.
          ev("ft_transfer_event", {
            ft_transfer_event: { asset_identifier: `${token}::${token.split(".")[1]}`, sender, recipient: contract, amount: amount.toString() },
          });
          const key = `${token}|${sender}`;
          this.tokens.set(key, (this.tokens.get(key) ?? 0n) - amount);
        } else {
          moved = amount;
          ev("stx_transfer_event", {
            stx_transfer_event: { sender, recipient: contract, amount: amount.toString(), memo: "" },
          });
        }
        const print = Cl.tuple({
          event: Cl.stringAscii("payment-created"),
          "payment-id": args[0],
          sender: Cl.principal(sender),
          recipient: args[1],
          amount: args[2],
          memo: args[3],
          "expires-at": Cl.uint(this.height + 1 + 100),
          token: token ? Cl.some(Cl.principal(token)) : Cl.none(),
          "block-height": Cl.uint(this.height + 1),
        });
        ev("contract_event", {
          contract_event: { contract_identifier: contract, topic: "print", raw_value: `0x${serializeCV(print)}` },
        });
      }
    }
    const a = this.account(sender);
    this.accounts.set(sender, { balance: a.balance - moved - BigInt(spending.fee), nonce: a.nonce + 1 });
    const entry = {
      txid: `0x${txid}`,
      tx_index: 0,
      status: "success",
      raw_result: "0x0703",
      raw_tx: `0x${hex}`,
      vm_error: null,
    };
    // Noted before the POST: the node may answer the settle (after its
    // commit) before the observer's 200 gets back here.
    this.mined.push({ txid: `0x${txid}`, height: this.height + 1, deliveredAt: performance.now() });
    await this.deliver([entry], events);
  }

  /** POSTs the next block (on `this.fork`) to the observer. */
  async deliver(txs: unknown[], events: unknown[], parentFork = this.fork): Promise<void> {
    const height = this.height + 1;
    const block = {
      block_hash: hash(`block:${this.fork}:${height}`),
      block_height: height,
      block_time: null,
      burn_block_hash: hash(`burn:${height}`),
      burn_block_height: height + 100,
      burn_block_time: 1_795_354_800 + height * 5,
      index_block_hash: hash(`index:${this.fork}:${height}`),
      parent_block_hash: hash(`block:${parentFork}:${height - 1}`),
      parent_index_block_hash: hash(`index:${parentFork}:${height - 1}`),
      parent_microblock: `0x${"0".repeat(64)}`,
      parent_microblock_sequence: 0,
      miner_txid: hash(`miner:${height}`),
      matured_miner_rewards: [],
      transactions: txs,
      events,
    };
    const res = await fetch(`${this.opts.observer}/new_block`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(block),
    });
    if (!res.ok) throw new Error(`observer answered ${res.status}: ${await res.text()}`);
    this.height = height;
  }
}

function read(req: IncomingMessage): Promise<Buffer> {
  return new Promise((ok, fail) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => ok(Buffer.concat(chunks)));
    req.on("error", fail);
  });
}

