#!/usr/bin/env bash
# One-line set-up: the system packages the native backend builds against, then `npm ci`.
#
#   bash scripts/setup.sh && npm run experiment
#
# On Debian or Ubuntu it installs g++, make, libdnnl-dev and libopenblas-dev with apt-get when
# they are missing (as root, or through sudo where that needs no password). Where it cannot, it
# says so in one line and goes on: `npm ci` then builds no native backend and everything runs on
# wasm, slower. Set PERSONA_SKIP_APT=1 to leave the system alone.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(g++ make libdnnl-dev libopenblas-dev)
say() { printf 'setup: %s\n' "$*" >&2; }

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s ' "$p"
  done
}

install_packages() {
  if [ -n "${PERSONA_SKIP_APT:-}" ]; then return; fi
  if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
    case "$(uname -s)" in
      Darwin) say "not Debian/Ubuntu: for the native backend run \`xcode-select --install; brew install onednn openblas libomp\` first (without it everything runs on wasm, slower)" ;;
      *) say "no apt-get here: install g++, make, oneDNN and OpenBLAS development packages for the native backend (without them everything runs on wasm, slower)" ;;
    esac
    return
  fi
  local missing
  missing="$(missing_packages)"
  if [ -z "$missing" ]; then return; fi
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo)
    else
      say "cannot install ${missing% } (not root, and sudo needs a password): everything will run on wasm, slower; for the native backend run \`sudo apt-get install ${missing% }\`, then \`npm run build:native\`"
      return
    fi
  fi
  say "installing ${missing% } with ${sudo[*]:+sudo }apt-get (for the native backend)"
  export DEBIAN_FRONTEND=noninteractive
  local log
  # shellcheck disable=SC2086
  if ! log="$({ "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq --no-install-recommends $missing; } 2>&1)"; then
    say "apt-get could not install ${missing% } ($(printf '%s' "$log" | grep -v '^\s*$' | tail -n 1)): everything will run on wasm, slower; install them and run \`npm run build:native\` for the native backend"
  fi
}

if ! command -v node >/dev/null || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  say "Node.js 20 or later is needed (found: $(node --version 2>/dev/null || echo none)); install it, then run this again"
  exit 1
fi
install_packages
npm ci
