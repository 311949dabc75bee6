/**
 * The x402 end-to-end suite (`npm run test:e2e`): a real nexus-node binary,
 * the chain double and x402-stacks, in plain Node (not the Clarinet simnet
 * environment of `vitest.config.ts`). `make test-e2e` builds the node first.
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
