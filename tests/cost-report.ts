/**
 * Writes docs/contract-costs.md: the execution cost of each escrow function
 * on its success path (one deterministic call each, in a fresh simnet with
 * cost tracking), plus the maximum seen across the whole vitest suite when
 * `npm run test:report` has just written coverage/costs-reports.json.
 *
 *   npm run test:report     # vitest with --coverage --costs, then this script
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { initSimnet, type ParsedTransactionResult } from "@stacks/clarinet-sdk";
import { Cl, cvToString, type ClarityValue } from "@stacks/transactions";

const CONTRACT = "x402-nexus-escrow";
const OUT = "docs/contract-costs.md";
const SUITE_REPORT = "coverage/costs-reports.json";
const LCOV = "coverage/lcov.info";

type Cost = {
  runtime: number;
  read_count: number;
  read_length: number;
  write_count: number;
  write_length: number;
};

type Row = { fn: string; scenario: string; cost: Cost };

function id(label: string): ClarityValue {
  return Cl.buffer(createHash("sha256").update(label).digest());
}

function toCost(result: ParsedTransactionResult, what: string): Cost {
  if (!result.costs) throw new Error(`${what}: no costs (trackCosts off?)`);
  const t = result.costs.total;
  return {
    runtime: t.runtime,
    read_count: t.readCount,
    read_length: t.readLength,
    write_count: t.writeCount,
    write_length: t.writeLength,
  };
}

async function successPathCosts(): Promise<Row[]> {
  const simnet = await initSimnet("./Clarinet.toml", false, {
    trackCosts: true,
    trackCoverage: false,
  });
  const accounts = simnet.getAccounts();
  const deployer = accounts.get("deployer")!;
  const alice = accounts.get("wallet_1")!;
  const bob = accounts.get("wallet_2")!;
  const rows: Row[] = [];

  function pub(fn: string, args: ClarityValue[], sender: string, scenario: string) {
    const res = simnet.callPublicFn(CONTRACT, fn, args, sender);
    if (cvToString(res.result) !== "(ok true)") {
      throw new Error(`${fn}: expected (ok true), got ${cvToString(res.result)}`);
    }
    rows.push({ fn, scenario, cost: toCost(res, fn) });
  }
  function ro(fn: string, args: ClarityValue[], scenario: string) {
    const res = simnet.callReadOnlyFn(CONTRACT, fn, args, deployer);
    rows.push({ fn, scenario, cost: toCost(res, fn) });
  }

  const memo34 = Cl.buffer(new Uint8Array(34).fill(0x61));
  pub("create-payment", [id("a"), Cl.principal(bob), Cl.uint(1_000_000), memo34], alice, "34-byte memo");
  pub("create-payment", [id("b"), Cl.principal(bob), Cl.uint(1_000_000), memo34], alice, "34-byte memo (to be refunded)");
  pub("claim-payment", [id("a")], bob, "recipient, before expiry");
  simnet.mineEmptyStacksBlocks(100);
  pub("refund-expired", [id("b")], bob, "third party, after expiry");
  // Token payments in the test token (a plain SIP-010 token; a real token's
  // transfer and get-balance cost what its own code costs).
  const token = Cl.principal(`${deployer}.test-sbtc`);
  if (cvToString(simnet.callPublicFn("test-sbtc", "mint", [Cl.uint(10_000_000), Cl.principal(alice)], alice).result) !== "(ok true)") {
    throw new Error("mint failed");
  }
  pub("allow-token", [token, Cl.stringAscii("test-sbtc")], deployer, "owner");
  pub("create-payment-ft", [id("t1"), Cl.principal(bob), Cl.uint(1_000_000), memo34, token], alice, "34-byte memo");
  pub("create-payment-ft", [id("t2"), Cl.principal(bob), Cl.uint(1_000_000), memo34, token], alice, "34-byte memo (to be refunded)");
  pub("claim-payment-ft", [id("t1"), token], bob, "recipient, before expiry");
  simnet.mineEmptyStacksBlocks(100);
  pub("refund-expired-ft", [id("t2"), token], bob, "third party, after expiry");
  pub("disallow-token", [token], deployer, "owner");
  pub("pause", [], deployer, "owner");
  pub("unpause", [], deployer, "owner");
  pub("propose-owner", [Cl.principal(alice)], deployer, "owner");
  pub("accept-owner", [], alice, "proposed owner");
  ro("get-payment", [id("a")], "existing payment");
  ro("get-status", [id("a")], "existing payment");
  ro("is-refundable", [id("a")], "existing payment");
  ro("get-total-locked", [], "");
  ro("get-owner", [], "");
  ro("get-proposed-owner", [], "");
  ro("is-paused", [], "");
  ro("get-timeout", [], "");
  ro("get-token-locked", [token], "");
  ro("is-token-allowed", [token], "");
  // The second create-payment row only sets up the refund.
  return rows.filter((r) => !r.scenario.includes("to be refunded"));
}

/** Per-function maximum of each dimension over every call in the suite. */
function suiteMaxima(): Map<string, Cost & { calls: number }> | undefined {
  if (!existsSync(SUITE_REPORT)) return undefined;
  const entries: { contract_id: string; method: string; cost_result: { total: Cost } }[] =
    JSON.parse(readFileSync(SUITE_REPORT, "utf8"));
  const maxima = new Map<string, Cost & { calls: number }>();
  for (const e of entries) {
    if (!e.contract_id.endsWith(`.${CONTRACT}`)) continue;
    const m = maxima.get(e.method) ?? {
      runtime: 0,
      read_count: 0,
      read_length: 0,
      write_count: 0,
      write_length: 0,
      calls: 0,
    };
    const t = e.cost_result.total;
    maxima.set(e.method, {
      runtime: Math.max(m.runtime, t.runtime),
      read_count: Math.max(m.read_count, t.read_count),
      read_length: Math.max(m.read_length, t.read_length),
      write_count: Math.max(m.write_count, t.write_count),
      write_length: Math.max(m.write_length, t.write_length),
      calls: m.calls + 1,
    });
  }
  return maxima;
}

/**
 * Line coverage of the escrow contract from the lcov report, if present.
 * The SDK writes one lcov record per test; a line is covered if any test
 * executed it.
 */
function lineCoverage(): string | undefined {
  if (!existsSync(LCOV)) return undefined;
  const all = new Set<number>();
  const covered = new Set<number>();
  for (const record of readFileSync(LCOV, "utf8").split("end_of_record")) {
    if (!record.includes(`contracts/${CONTRACT}.clar`)) continue;
    for (const line of record.split("\n")) {
      const da = line.match(/^DA:(\d+),(\d+)/);
      if (!da) continue;
      all.add(Number(da[1]));
      if (Number(da[2]) > 0) covered.add(Number(da[1]));
    }
  }
  const uncovered = [...all].filter((l) => !covered.has(l)).sort((a, b) => a - b);
  const pct = all.size === 0 ? 0 : (100 * covered.size) / all.size;
  return (
    `Line coverage of \`contracts/${CONTRACT}.clar\` by the vitest suite: ` +
    `${covered.size}/${all.size} lines (${pct.toFixed(1)}%)` +
    (uncovered.length ? `; not executed: lines ${uncovered.join(", ")}.` : ".")
  );
}

function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

async function main(): Promise<void> {
  const rows = await successPathCosts();
  const maxima = suiteMaxima();
  const coverage = lineCoverage();
  const out: string[] = [];
  out.push("## Contract costs");
  out.push("");
  out.push(
    "Execution costs of `x402-nexus-escrow` (Clarity 4, epoch 3.3, Clarinet SDK 3.13.1 simnet), " +
      "generated by `npm run test:report` (`tests/cost-report.ts`). " +
      "Each row is one success-path call in a fresh simnet; the block limits are " +
      "runtime 5,000,000,000, read count 15,000, read length 100,000,000, " +
      "write count 15,000, write length 15,000,000.",
  );
  out.push("");
  out.push("| function | scenario | runtime | read count | read length | write count | write length |");
  out.push("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const r of rows) {
    const c = r.cost;
    out.push(
      `| \`${r.fn}\` | ${r.scenario} | ${fmt(c.runtime)} | ${fmt(c.read_count)} | ${fmt(c.read_length)} | ${fmt(c.write_count)} | ${fmt(c.write_length)} |`,
    );
  }
  if (maxima) {
    out.push("");
    out.push(
      "Maximum of each dimension over every call of the function in the test suite " +
        "(success and error paths):",
    );
    out.push("");
    out.push("| function | calls | runtime | read count | read length | write count | write length |");
    out.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (const [fn, c] of [...maxima].sort(([a], [b]) => a.localeCompare(b))) {
      out.push(
        `| \`${fn}\` | ${c.calls} | ${fmt(c.runtime)} | ${fmt(c.read_count)} | ${fmt(c.read_length)} | ${fmt(c.write_count)} | ${fmt(c.write_length)} |`,
      );
    }
  }
  if (coverage) {
    out.push("");
    out.push(coverage);
  }
  out.push("");
  writeFileSync(OUT, out.join("\n"));
  console.error(`wrote ${OUT}`);
}

await main();
