/**
 * Writing a recorded fixture, or checking it has not drifted: the one
 * `main` of every fixture recorder (`npm run <name>` writes, `npm run
 * <name>:check` regenerates into a temp file, diffs, and exits 1 on drift).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

export function writeOrCheck(path: string, json: string, script: string): void {
  if (!process.argv.includes("--check")) {
    writeFileSync(path, json);
    console.error(`wrote ${path}`);
    return;
  }
  if (readFileSync(path, "utf8") === json) {
    console.error(`${path} is up to date`);
    return;
  }
  const fresh = join(mkdtempSync(join(tmpdir(), "fixture-")), basename(path));
  writeFileSync(fresh, json);
  spawnSync("diff", ["-u", path, fresh], { stdio: "inherit" });
  console.error(`${path} drifted: run \`npm run ${script}\` and review the diff`);
  process.exit(1);
}
