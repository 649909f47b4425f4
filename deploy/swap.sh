#!/usr/bin/env bash
# The seed's 2 GB swap file on the 1 GB VM (prevents the OOM killer). Idempotent; run as root.
set -euo pipefail
SWAP=${SWAP:-/swapfile}
SIZE_MB=${SIZE_MB:-2048}
if swapon --show=NAME --noheadings | grep -qx "$SWAP"; then
  echo "swap $SWAP already active"; exit 0
fi
if [ ! -f "$SWAP" ]; then
  fallocate -l "${SIZE_MB}M" "$SWAP" 2>/dev/null || dd if=/dev/zero of="$SWAP" bs=1M count="$SIZE_MB" status=none
  chmod 600 "$SWAP"
  mkswap "$SWAP" >/dev/null
fi
swapon "$SWAP"
grep -q "^$SWAP " /etc/fstab || echo "$SWAP none swap sw 0 0" >> /etc/fstab
sysctl -q vm.swappiness=10
echo "swap $SWAP (${SIZE_MB} MB) active"
