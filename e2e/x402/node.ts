/**
 * Starts the real `nexus-node` binary on the embedded default (memory +
 * SQLite, no services) for the end-to-end suite, configured through its
 * `NEXUS_*` environment variables, and stops it.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The binary `cargo build -p nexus-node` made (whatever the target directory). */
export function nodeBinary(): string {
  if (process.env.NEXUS_NODE_BIN) return process.env.NEXUS_NODE_BIN;
  const meta = JSON.parse(
    execFileSync("cargo", ["metadata", "--format-version", "1", "--no-deps"], { encoding: "utf8" }),
  ) as { target_directory: string };
  return join(meta.target_directory, "debug", "nexus-node");
}

export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => ok(port));
    });
  });
}

export class Node {
  private child?: ChildProcess;
  private dir = mkdtempSync(join(tmpdir(), "nexus-e2e-"));
  api = "";
  observer = "";
  log = "";

  constructor(private env: Record<string, string>) {}

  /** Starts the node and waits until `/health` answers. */
  async start(): Promise<void> {
    const [api, observer] = [await freePort(), await freePort()];
    this.api = `http://127.0.0.1:${api}`;
    this.observer = `http://127.0.0.1:${observer}`;
    this.child = spawn(nodeBinary(), ["run"], {
      env: {
        ...process.env,
        RUST_LOG: process.env.RUST_LOG ?? "warn,nexus_node=info",
        NEXUS_API_ADDR: `127.0.0.1:${api}`,
        NEXUS_OBSERVER_ADDR: `127.0.0.1:${observer}`,
        NEXUS_SQLITE_PATH: join(this.dir, "nexus.sqlite"),
        ...this.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    // Ready when it logs that both listeners are bound (a signal, not a poll).
    const ready = new Promise<void>((ok, fail) => {
      const seen = (d: Buffer) => {
        this.log += d;
        if (this.log.includes("nexus-node listening")) ok();
      };
      this.child!.stdout?.on("data", seen);
      this.child!.stderr?.on("data", seen);
      this.child!.once("exit", (code) => fail(new Error(`nexus-node exited (${code}):\n${this.log}`)));
      this.child!.once("error", (e) => fail(new Error(`nexus-node did not start (${e.message}): build it with cargo build -p nexus-node`)));
    });
    await ready;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null) {
      const done = new Promise((ok) => child.once("exit", ok));
      child.kill("SIGTERM");
      await done;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
