/**
 * The end-to-end suites (`npm run test:e2e`), in plain Node (not the
 * Clarinet simnet environment of `vitest.config.ts`), each against a real
 * nexus-node binary: `e2e/x402/` (the chain double and x402-stacks) and
 * `e2e/dashboard/` (the dashboard in Debian's chromium, and the metric names
 * the deploy files use). `make test-e2e` builds the node first.
 */
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "node",
    include: ["e2e/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // One world per file; files run one after another (ports, CPU).
    fileParallelism: false,
  },
});
