#!/usr/bin/env bash
# System packages the app and tests use: espeak-ng (server TTS), chromium + chromium-driver (end-to-end
# tests), redis-server + nginx (`make cluster` and the cluster tests). Installs only what is missing; needs root
# for apt. Neither redis-server nor nginx is started here: `make cluster` and the tests start their own.
set -euo pipefail
need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng libespeak-ng1)
command -v chromium >/dev/null || need+=(chromium chromium-driver)
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install_system: missing ${need[*]}; run as root or install them (the app runs without; tests that need them skip)" >&2
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
