#!/usr/bin/env bash
# Installs the real servers the end-to-end tests and the benchmark run (Debian packages).
# Idempotent: skips apt when every binary is already there. Needs root (CI and dev machines run as root).
set -euo pipefail

need=(/usr/sbin/postfix /usr/bin/miltertest /usr/bin/swaks /usr/include/libmilter/mfapi.h)
missing=0
for f in "${need[@]}"; do [ -e "$f" ] || missing=1; done
if [ "$missing" = 0 ]; then
  echo "install-system-deps: all present"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-system-deps: missing packages and not root; install as root: postfix miltertest swaks libmilter-dev" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Keep package installs from starting system services (they would bind well-known ports).
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT

echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  postfix miltertest swaks libmilter-dev gcc libc6-dev >/dev/null
echo "install-system-deps: installed"
