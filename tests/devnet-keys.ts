/**
 * Signing keys for the devnet accounts, derived from the mnemonics in
 * settings/Devnet.toml exactly as Clarinet does (BIP-39 seed, BIP-32 path
 * m/44'/5757'/0'/0/0, compressed-key suffix 01). Public test keys only.
 */
import { readFileSync } from "node:fs";
import { HDKey } from "@scure/bip32";
import { mnemonicToSeedSync } from "@scure/bip39";
import { getAddressFromPrivateKey } from "@stacks/transactions";

const DERIVATION_PATH = "m/44'/5757'/0'/0/0";

export type DevnetAccount = { name: string; address: string; privateKey: string };

/** `mnemonic` of each `[accounts.<name>]` table of a Devnet.toml. */
export function readMnemonics(devnetToml: string): Map<string, string> {
  const mnemonics = new Map<string, string>();
  let current: string | undefined;
  for (const line of devnetToml.split("\n")) {
    const table = line.match(/^\[accounts\.([A-Za-z0-9_]+)\]\s*$/);
    if (table) {
      current = table[1];
      continue;
    }
    if (line.startsWith("[")) current = undefined;
    const mnemonic = line.match(/^mnemonic\s*=\s*"([^"]+)"/);
    if (current && mnemonic) mnemonics.set(current, mnemonic[1]);
  }
  return mnemonics;
}

export function privateKeyFromMnemonic(mnemonic: string): string {
  const key = HDKey.fromMasterSeed(mnemonicToSeedSync(mnemonic)).derive(DERIVATION_PATH);
  if (!key.privateKey) throw new Error("derivation produced no private key");
  return Buffer.from(key.privateKey).toString("hex") + "01";
}

/** Every devnet account with its testnet address and signing key. */
export function loadDevnetAccounts(path = "settings/Devnet.toml"): Map<string, DevnetAccount> {
  const accounts = new Map<string, DevnetAccount>();
  for (const [name, mnemonic] of readMnemonics(readFileSync(path, "utf8"))) {
    const privateKey = privateKeyFromMnemonic(mnemonic);
    accounts.set(name, {
      name,
      address: getAddressFromPrivateKey(privateKey, "testnet"),
      privateKey,
    });
  }
  return accounts;
}

/** Looks `name` up in `accounts`, failing with where to add it. */
export function devnetAccount(accounts: Map<string, DevnetAccount>, name: string): DevnetAccount {
  const account = accounts.get(name);
  if (!account) throw new Error(`${name} missing from settings/Devnet.toml`);
  return account;
}
