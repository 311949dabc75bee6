/// <reference types="vitest" />
/**
 * Contract tests run in the Clarinet simnet (the `clarinet test` replacement).
 *
 * Version pinning (see also "//" in package.json):
 * `@stacks/clarinet-sdk` and its wasm engine `@stacks/clarinet-sdk-wasm` are
 * pinned to exactly 3.13.1 because `@stacks/rendezvous` 0.12 (the fuzzer,
 * `npm run fuzz`) only understands the 3.13.x deployment-plan format; 3.14+
 * changed it. 3.13.1 already supports epoch "3.3" and Clarity 4
 * (`as-contract?`, `with-stx`, `current-contract`), so Clarinet.toml pins
 * both. Rendezvous declares `@stacks/clarinet-sdk ^3.9.1`; the exact root pin
 * makes npm dedupe it to the same 3.13.1 copy the tests use.
 *
 * `npm test` runs `vitest run`; `npm run test:report` adds
 * `-- --coverage --costs` (lcov.info and costs-reports.json).
 */
import { defineConfig } from "vitest/config";
import {
  vitestSetupFilePath,
  getClarinetVitestsArgv,
} from "@stacks/clarinet-sdk/vitest";

export default defineConfig({
  test: {
    environment: "clarinet",
    // The simnet is a single wasm session: run test files in one fork.
    pool: "forks",
    poolOptions: {
      forks: { singleFork: true },
    },
    include: ["tests/**/*.test.ts"],
    setupFiles: [vitestSetupFilePath],
    environmentOptions: {
      clarinet: {
        ...getClarinetVitestsArgv(),
      },
    },
  },
});
