#!/usr/bin/env bash
# Vendors the browser's Socket.IO client from the npm registry into static/vendor/ (the page uses no CDN).
# The version is pinned here; the licence and the version are written beside the file.
set -euo pipefail
VERSION="${SOCKET_IO_CLIENT_VERSION:-4.8.4}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/static/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "socket.io-client@$VERSION" >/dev/null && tar -xzf socket.io-client-*.tgz)
mkdir -p "$DEST"
cp "$tmp/package/dist/socket.io.min.js" "$DEST/socket.io.min.js"
cp "$tmp/package/LICENSE" "$DEST/socket.io-client.LICENSE"
cat > "$DEST/README.md" <<NOTE
# Vendored browser libraries

| file | package | version | licence | source |
| --- | --- | --- | --- | --- |
| socket.io.min.js | socket.io-client | $VERSION | MIT (socket.io-client.LICENSE) | npm registry, \`dist/socket.io.min.js\` |

Regenerate with \`scripts/vendor_js.sh\` (set SOCKET_IO_CLIENT_VERSION to change the version).
NOTE
echo "vendored socket.io-client $VERSION into $DEST"
