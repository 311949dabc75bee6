/**
 * Every metric name the operator pack and the dashboard use is one the node
 * exports: `deploy/prometheus/alerts.yml` (and the series its unit tests
 * feed), `deploy/grafana/nexus-node.json` and `dashboard/app.js`, against
 * the real binary's `GET /metrics`. A rule or panel on a name the node does
 * not export stays silent forever, so a rename must fail here.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Node } from "../x402/node";

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const NAME = /\b(?:nexus|process)_[a-z0-9_]+\b/g;

/**
 * The sample names a scrape offers, from its `# TYPE` lines (a family with
 * no sample yet still declares itself) and its samples: a counter `x` is
 * queried as `x_total`, a histogram as `x_bucket`, `x_sum`, `x_count`.
 */
function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      const [, name, kind] = type;
      const base = kind === "counter" ? name.replace(/_total$/, "") : name;
      const suffixes: Record<string, string[]> = {
        counter: ["_total"],
        histogram: ["", "_bucket", "_sum", "_count"],
        summary: ["", "_sum", "_count"],
        gaugehistogram: ["_bucket", "_gsum", "_gcount"],
        info: ["_info"],
      };
      for (const s of suffixes[kind] ?? [""]) names.add(base + s);
    } else if (line && !line.startsWith("#")) {
      names.add(line.split(/[{\s]/)[0]);
    }
  }
  return names;
}

/** Metric names in a YAML file's content, comments left out. */
function yamlNames(file: string): string[] {
  const text = readFileSync(root(file), "utf8")
    .split("\n")
    .map((l) => l.replace(/(^|\s)#.*$/, ""))
    .join("\n");
  return text.match(NAME) ?? [];
}

/** Metric names in every string of the Grafana board (queries, titles, descriptions). */
function grafanaNames(file: string): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === "string") out.push(...(v.match(NAME) ?? []));
    else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  walk(JSON.parse(readFileSync(root(file), "utf8")));
  return out;
}

/** Metric names the dashboard's script asks for (its string literals). */
function scriptNames(file: string): string[] {
  const literals = readFileSync(root(file), "utf8").match(/"(?:nexus|process)_[a-z0-9_]+"/g) ?? [];
  return literals.map((l) => l.slice(1, -1));
}

describe("metric names", () => {
  const node = new Node({});
  beforeAll(() => node.start());
  afterAll(() => node.stop());

  it("every name the alerts, their tests, the Grafana board and the dashboard use is exported", async () => {
    const r = await fetch(`${node.api}/metrics`);
    expect(r.status).toBe(200);
    const exported = exportedNames(await r.text());
    const users: Record<string, string[]> = {
      "deploy/prometheus/alerts.yml": yamlNames("deploy/prometheus/alerts.yml"),
      "deploy/prometheus/alerts.test.yml": yamlNames("deploy/prometheus/alerts.test.yml"),
      "deploy/grafana/nexus-node.json": grafanaNames("deploy/grafana/nexus-node.json"),
      "dashboard/app.js": scriptNames("dashboard/app.js"),
    };
    const missing = new Map<string, Set<string>>();
    for (const [file, names] of Object.entries(users)) {
      expect(names.length, `${file} names no metric: is the pattern still right?`).toBeGreaterThan(0);
      for (const n of names) if (!exported.has(n)) missing.set(n, (missing.get(n) ?? new Set()).add(file));
    }
    const report = [...missing].map(([n, files]) => `${n} (used by ${[...files].join(", ")})`).sort();
    expect(report, `names used but not exported by nexus-node:\n  ${report.join("\n  ")}`).toEqual([]);
  });

  it("maps the exposition's suffixes", () => {
    const names = exportedNames(
      ["# TYPE a counter", "# TYPE h histogram", "# TYPE g gauge", "# TYPE c_total counter", "x_created 1", "# EOF"].join("\n"),
    );
    expect([...names].sort()).toEqual(["a_total", "c_total", "g", "h", "h_bucket", "h_count", "h_sum", "x_created"]);
  });
});
