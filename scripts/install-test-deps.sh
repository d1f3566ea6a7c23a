#!/usr/bin/env bash
# Sole purpose: install the Debian packages the integration and browser tests need
# (dovecot-imapd, chromium), only when missing, without starting a system-wide Dovecot.
#
# Idempotent and fast when everything is present: no apt call at all then.
# The tests run their own Dovecot instance on a free loopback port; this script
# makes sure the packaged service does not start (and grab ports 143/993).
set -euo pipefail

# package name -> command that proves it is installed
declare -A PROBE=(
    [dovecot-imapd]=/usr/sbin/dovecot
    [chromium]=chromium
)

is_installed() {
    local pkg=$1 probe=$2
    if [[ $probe == /* ]]; then
        [[ -x $probe ]] || return 1
    else
        command -v "$probe" >/dev/null 2>&1 || return 1
    fi
    dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'
}

missing=()
for pkg in "${!PROBE[@]}"; do
    is_installed "$pkg" "${PROBE[$pkg]}" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    echo "install-test-deps: all present (${!PROBE[*]})"
    exit 0
fi

SUDO=()
if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "install-test-deps: missing ${missing[*]}; need root or sudo to install them." >&2
        echo "  run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

# Keep invoke-rc.d from starting services during the install (policy-rc.d exit 101),
# unless a policy is already in place; restore the previous state afterwards.
POLICY=/usr/sbin/policy-rc.d
policy_created=0
if [[ ! -e $POLICY ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 0755 "$POLICY"
    policy_created=1
fi
cleanup() {
    if ((policy_created)); then
        "${SUDO[@]}" rm -f "$POLICY"
    fi
}
trap cleanup EXIT

echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"

# Belt and braces: on a systemd host the unit may still be enabled; stop and disable it
# so that ports 143/993 stay free. Without systemd, stop a daemon started by the init script.
if dpkg -s dovecot-core >/dev/null 2>&1; then
    if [[ -d /run/systemd/system ]]; then
        "${SUDO[@]}" systemctl disable --now dovecot.service >/dev/null 2>&1 || true
        "${SUDO[@]}" systemctl disable --now dovecot.socket >/dev/null 2>&1 || true
    elif [[ -e /run/dovecot/master.pid ]]; then
        "${SUDO[@]}" /usr/sbin/dovecot stop >/dev/null 2>&1 || true
    fi
fi

echo "install-test-deps: done"
