#!/usr/bin/env bash
# The pure core must not reach I/O crates. It fails if tokio, sqlx, redis,
# reqwest or hyper are anywhere in nexus-core's dependency tree, or if
# rusqlite comes in by any road other than the Stacks codecs: stacks-codec
# switches on clarity-vm's `canonical` feature, which links rusqlite for the
# Clarity database the core never opens.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}

tree=$($CARGO tree -p nexus-core -e normal --prefix none | sed 's/ (\*)$//' | sort -u)
bad=$(grep -E '^(tokio|sqlx[a-z-]*|redis|reqwest|hyper) v' <<<"$tree" || true)
if [ -n "$bad" ]; then
  echo "error: nexus-core must stay pure, but its dependencies include:" >&2
  echo "$bad" >&2
  exit 1
fi
# Who brings rusqlite in: only clarity-vm and stacks-common may.
parents=$($CARGO tree -p nexus-core -e normal -i rusqlite --depth 1 --prefix none 2>/dev/null \
  | tail -n +2 | sed 's/ (\*)$//; s/ v[0-9].*//' | sort -u || true)
other=$(grep -vxE 'clarity-vm|stacks-common' <<<"$parents" | grep . || true)
if [ -n "$other" ]; then
  echo "error: rusqlite reaches nexus-core through: $other (only the Stacks codecs may bring it)" >&2
  exit 1
fi
echo "nexus-core is pure: no tokio, sqlx, redis, reqwest or hyper; rusqlite only through the Stacks codecs"
