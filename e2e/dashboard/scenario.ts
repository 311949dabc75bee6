/**
 * The recorded escrow scenario (`tests/fixtures/escrow-simnet.json`) as the
 * observer POSTs `nexus-node demo` makes: a TypeScript copy of
 * `Scenario::deliveries` in `core/src/simnet.rs` (keep the two in step).
 * Every recorded transaction is announced with `/new_mempool_tx`, then mined
 * in a `/new_block` at its recorded height; heights in between get empty
 * blocks so the parent links form one chain.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

type RecordedEvent = {
  type: string;
  contract_identifier?: string;
  raw_value?: string;
  sender?: string;
  recipient?: string;
  amount?: string;
  asset_identifier?: string;
};
type RecordedTx = {
  step: string;
  block_height: number;
  success: boolean;
  result_hex: string;
  events: RecordedEvent[];
  tx_hex: string;
  txid: string;
};
type Scenario = { contract_id: string; transactions: RecordedTx[] };

export type Delivery = { path: "/new_mempool_tx" | "/new_block"; body: unknown; height: number };

/** `simnet::fake_hash`: sha256 of the tag and the big-endian u64. */
function fakeHash(tag: string, n: number): string {
  const be = Buffer.alloc(8);
  be.writeBigUInt64BE(BigInt(n));
  return `0x${createHash("sha256").update(tag).update(be).digest("hex")}`;
}

const indexHash = (fork: string, h: number) => (h === 0 ? fakeHash("genesis", 0) : fakeHash(`index:${fork}`, h));

function blockEnvelope(height: number, txs: unknown[], events: unknown[]) {
  const parent = Math.max(0, height - 1);
  return {
    block_hash: fakeHash("block:main", height),
    block_height: height,
    block_time: null,
    burn_block_hash: fakeHash("burn", height + 100),
    burn_block_height: height + 100,
    burn_block_time: 1_795_354_800 + height * 5,
    index_block_hash: indexHash("main", height),
    parent_block_hash: fakeHash("block:main", parent),
    parent_index_block_hash: indexHash("main", parent),
    parent_microblock: `0x${"0".repeat(64)}`,
    parent_microblock_sequence: 0,
    miner_txid: fakeHash("miner", height),
    matured_miner_rewards: [],
    transactions: txs,
    events,
  };
}

function blockEntries(contractId: string, mined: RecordedTx[]) {
  const txs: unknown[] = [];
  const events: unknown[] = [];
  mined.forEach((t, i) => {
    txs.push({
      txid: t.txid,
      tx_index: i,
      status: t.success ? "success" : "abort_by_response",
      raw_result: t.result_hex,
      raw_tx: t.tx_hex,
      contract_interface: null,
      burnchain_op: null,
      execution_cost: { read_count: 0, read_length: 0, runtime: 0, write_count: 0, write_length: 0 },
      microblock_hash: null,
      microblock_parent_hash: null,
      microblock_sequence: null,
      vm_error: null,
    });
    for (const e of t.events) {
      const head = { txid: t.txid, event_index: events.length, committed: true };
      if (e.type === "print_event") {
        events.push({
          ...head,
          type: "contract_event",
          contract_event: { contract_identifier: e.contract_identifier ?? contractId, topic: "print", raw_value: e.raw_value ?? "" },
        });
      } else if (e.type === "ft_transfer_event") {
        events.push({
          ...head,
          type: "ft_transfer_event",
          ft_transfer_event: { asset_identifier: e.asset_identifier, sender: e.sender, recipient: e.recipient, amount: e.amount },
        });
      } else {
        events.push({
          ...head,
          type: "stx_transfer_event",
          stx_transfer_event: { sender: e.sender, recipient: e.recipient, amount: e.amount, memo: "" },
        });
      }
    }
  });
  return { txs, events };
}

/** Every delivery of the scenario, in order. */
export function deliveries(): Delivery[] {
  const file = fileURLToPath(new URL("../../tests/fixtures/escrow-simnet.json", import.meta.url));
  const s = JSON.parse(readFileSync(file, "utf8")) as Scenario;
  const top = Math.max(0, ...s.transactions.map((t) => t.block_height));
  const out: Delivery[] = [];
  for (let h = 1; h <= top; h++) {
    const here = s.transactions.filter((t) => t.block_height === h);
    for (const t of here) out.push({ path: "/new_mempool_tx", body: [t.tx_hex], height: h });
    const { txs, events } = blockEntries(s.contract_id, here);
    out.push({ path: "/new_block", body: blockEnvelope(h, txs, events), height: h });
  }
  return out;
}

/** POST `list` to the observer at `observer` (http://host:port), in order; each must get its 200. */
export async function deliver(observer: string, list: Delivery[]): Promise<void> {
  for (const d of list) {
    const r = await fetch(`${observer}${d.path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(d.body),
    });
    if (r.status !== 200) throw new Error(`${d.path} at height ${d.height}: HTTP ${r.status} ${await r.text()}`);
  }
}
