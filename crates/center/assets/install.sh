#!/bin/sh
# Hostward agent installer, served by the center at /install.sh with the center's URL and the
# pin of its TLS key filled in. Every download is pinned to that key, and the agent itself then
# pins the CA fingerprint given on the command line before it sends the token.
#
#   curl -fsSk --pinnedpubkey 'sha256//...' https://center:8443/install.sh \
#     | sudo sh -s -- --token TOKEN --ca-sha256 FINGERPRINT [--install-id ID] [--no-systemd] [--root DIR]
set -eu

CENTER_URL='__CENTER_URL__'
SPKI_PIN='__SPKI_PIN__'

TOKEN=''
CA_SHA256=''
INSTALL_ID=''
USE_SYSTEMD=1
ROOT=/

say() { printf 'hostward: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
    cat >&2 <<USAGE
Installs the Hostward agent and enrolls this server with $CENTER_URL.

Usage: sh install.sh --token TOKEN --ca-sha256 FINGERPRINT [--install-id ID] [--no-systemd] [--root DIR]

  --token TOKEN        enrollment token from the console (a secret; never printed)
  --ca-sha256 HEX      SHA-256 fingerprint of the center's CA certificate
  --install-id ID      id of this install run, shown in the console (default: random)
  --no-systemd         do not install a systemd unit; start the agent with nohup instead
                       (pid in ROOT/run/hostward-agent.pid, log in ROOT/var/log/hostward-agent.log)
  --root DIR           install everything under DIR instead of / (binary, config, state,
                       unit, log, pid file); the agent runs from there (default: /)
USAGE
}

need_value() {
    [ "$2" -ge 2 ] || die "$1 needs a value (see --help)"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --token) need_value "$1" $#; TOKEN=$2; shift 2 ;;
        --token=*) TOKEN=${1#--token=}; shift ;;
        --ca-sha256) need_value "$1" $#; CA_SHA256=$2; shift 2 ;;
        --ca-sha256=*) CA_SHA256=${1#--ca-sha256=}; shift ;;
        --install-id) need_value "$1" $#; INSTALL_ID=$2; shift 2 ;;
        --install-id=*) INSTALL_ID=${1#--install-id=}; shift ;;
        --no-systemd) USE_SYSTEMD=0; shift ;;
        --root) need_value "$1" $#; ROOT=$2; shift 2 ;;
        --root=*) ROOT=${1#--root=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

[ -n "$TOKEN" ] || die "--token is required (see --help)"
[ -n "$CA_SHA256" ] || die "--ca-sha256 is required (see --help)"
command -v curl >/dev/null 2>&1 || die "curl is required"

# Every path below is under ROOT. It ends up in the config, the systemd unit and sed
# expressions, so it is limited to characters that need no quoting in any of them.
case "$ROOT" in
    /*) ;;
    *) die "--root must be an absolute path" ;;
esac
case "$ROOT" in
    *[!A-Za-z0-9/._+-]*) die "--root may contain only letters, digits and / . _ + -" ;;
esac
while [ "${ROOT%/}" != "$ROOT" ]; do ROOT=${ROOT%/}; done
# ROOT is now "" for / and has no trailing slash otherwise.
BIN=$ROOT/usr/local/bin/hostward-agent
CONFIG=$ROOT/etc/hostward/agent.toml
UNIT=$ROOT/etc/systemd/system/hostward-agent.service
STATE_DIR=$ROOT/var/lib/hostward-agent
LOG=$ROOT/var/log/hostward-agent.log
PIDFILE=$ROOT/run/hostward-agent.pid

if [ -z "$INSTALL_ID" ]; then
    INSTALL_ID=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
fi
HOST=$(uname -n)

# -k: the center's certificate is issued by its own CA; the key pin is what authenticates it.
curl_pinned() {
    curl -fsS -k --pinnedpubkey "$SPKI_PIN" --connect-timeout 10 --retry 2 "$@"
}

json_escape() {
    printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\n\r'
}

# Tells the console why this install failed. The body (with the token) goes through stdin, so
# the token never appears on a command line that ps could show.
report_failure() {
    body=$(printf '{"token":"%s","install_id":"%s","hostname":"%s","status":"failed","cause":"%s","detail":"%s"}' \
        "$(json_escape "$TOKEN")" "$(json_escape "$INSTALL_ID")" "$(json_escape "$HOST")" "$1" "$(json_escape "$2")")
    printf '%s' "$body" | curl_pinned -X POST -H 'Content-Type: application/json' --data-binary @- \
        "$CENTER_URL/api/v1/enroll/report" >/dev/null 2>&1 \
        || say "warning: could not report the failure to the center"
}

fail() {
    cause=$1
    shift
    report_failure "$cause" "$*"
    die "$*"
}

# Free KiB for unprivileged users on the file system holding $1 (or its nearest existing parent).
free_kib() {
    d=$1
    while [ ! -d "$d" ]; do d=$(dirname "$d"); done
    df -Pk "$d" 2>/dev/null | awk 'NR == 2 { print $4 }'
}

# Less than this (the agent's own minimum for its state dir) counts as a full disk: reported as
# disk_full before anything is written, or when the download could not be written.
MIN_FREE_KIB=65536
check_space() {
    free=$(free_kib "$1")
    case "$free" in
        ''|*[!0-9]*) return 0 ;;
    esac
    if [ "$free" -lt "$MIN_FREE_KIB" ]; then
        fail disk_full "only $((free / 1024)) MiB free for $1; at least $((MIN_FREE_KIB / 1024)) MiB needed"
    fi
}

# Preflight. The agent re-checks root, OS, architecture and disk space itself during enroll.
if [ "$(id -u)" != 0 ]; then
    fail not_root "the installer must run as root (pipe it to 'sudo sh -s -- ...')"
fi
ARCH=$(uname -m)
case "$ARCH" in
    x86_64|aarch64) ;;
    *) fail unsupported_arch "architecture $ARCH is not supported (x86_64, aarch64)" ;;
esac
if [ "$USE_SYSTEMD" = 1 ] && [ ! -d /run/systemd/system ]; then
    fail no_systemd "systemd is not running on this host; rerun with --no-systemd to start the agent without it"
fi
check_space "$(dirname "$BIN")"

say "downloading the agent from $CENTER_URL"
mkdir -p "$(dirname "$BIN")"
TMP_BIN="$BIN.download.$$"
trap 'rm -f "$TMP_BIN"' EXIT
if curl_pinned -o "$TMP_BIN" "$CENTER_URL/download/hostward-agent"; then
    :
else
    rc=$?
    # 23: curl could not write; with the partial file still there, a full disk shows.
    if [ "$rc" = 23 ]; then
        check_space "$(dirname "$BIN")"
    fi
    fail download_failed "could not download the agent binary from $CENTER_URL/download/hostward-agent (curl exit $rc)"
fi
chmod 0755 "$TMP_BIN"
mv -f "$TMP_BIN" "$BIN"

# The malware scanner runs beside the agent. A center without one to give still installs the
# agent; its Malware tab then says the scanner is missing.
SCANNER=$(dirname "$BIN")/hostward-scanner
TMP_SCANNER="$SCANNER.download.$$"
trap 'rm -f "$TMP_BIN" "$TMP_SCANNER"' EXIT
if curl_pinned -o "$TMP_SCANNER" "$CENTER_URL/download/hostward-scanner" 2>/dev/null; then
    chmod 0755 "$TMP_SCANNER"
    mv -f "$TMP_SCANNER" "$SCANNER"
    say "malware scanner installed at $SCANNER"
else
    rc=$?
    rm -f "$TMP_SCANNER"
    # 23: curl could not write: a full disk fails the install as it would for the agent.
    if [ "$rc" = 23 ]; then
        check_space "$(dirname "$BIN")"
    fi
    say "the center has no malware scanner to give: malware scanning stays off on this server"
fi

say "enrolling this server (install id $INSTALL_ID)"
# The agent reports its own failures (preflight, enrollment) to the center; it reads the token
# from the environment so it stays off the command line.
if ! HOSTWARD_ENROLL_TOKEN=$TOKEN "$BIN" enroll --center "$CENTER_URL" --ca-sha256 "$CA_SHA256" \
        --install-id "$INSTALL_ID" --state-dir "$STATE_DIR" --config "$CONFIG" >/dev/null; then
    die "enrollment failed (see the message above)"
fi

if [ ! -f "$CONFIG" ]; then
    mkdir -p "$(dirname "$CONFIG")"
    printf '# Hostward agent configuration. Unknown keys are rejected.\nstate_dir = "%s"\n' "$STATE_DIR" >"$CONFIG"
fi

if [ "$USE_SYSTEMD" = 1 ]; then
    mkdir -p "$(dirname "$UNIT")"
    if ! curl_pinned -o "$UNIT.tmp" "$CENTER_URL/download/hostward-agent.service"; then
        rm -f "$UNIT.tmp"
        fail download_failed "could not download the systemd unit from $CENTER_URL"
    fi
    if [ -n "$ROOT" ]; then
        # The unit names the default paths: point it at ROOT. systemd's StateDirectory= is
        # always under /var/lib, and PrivateTmp= would hide a ROOT under /tmp from the agent.
        sed -e "s#/usr/local/bin/hostward-agent#$BIN#g" \
            -e "s#/etc/hostward/agent.toml#$CONFIG#g" \
            -e "s#^ReadWritePaths=.*#ReadWritePaths=$STATE_DIR#" \
            -e '/^StateDirectory/d' -e '/^PrivateTmp=/d' "$UNIT.tmp" >"$UNIT.tmp2"
        mv -f "$UNIT.tmp2" "$UNIT.tmp"
    fi
    mv -f "$UNIT.tmp" "$UNIT"
    systemctl daemon-reload
    if [ -n "$ROOT" ]; then
        # Outside systemd's search path: enabling by path links the unit in.
        systemctl enable --now "$UNIT"
    else
        systemctl enable --now hostward-agent
    fi
    # A reinstall replaces the binary and identity: make a running agent pick them up.
    systemctl restart hostward-agent
    say "agent installed, enrolled and running (systemctl status hostward-agent)"
else
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        kill "$(cat "$PIDFILE")" 2>/dev/null || true
        sleep 1
    fi
    mkdir -p "$(dirname "$LOG")" "$(dirname "$PIDFILE")"
    nohup "$BIN" run --config "$CONFIG" --state-dir "$STATE_DIR" >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    say "agent installed, enrolled and running without systemd (pid $(cat "$PIDFILE"), log $LOG)"
fi
