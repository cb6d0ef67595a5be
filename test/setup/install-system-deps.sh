#!/usr/bin/env bash
# Installs the real servers the end-to-end tests and the benchmark run (Debian packages).
# Idempotent: skips apt when every binary is already there. Needs root (CI and dev machines run as root).
set -euo pipefail

# One file per package that must be there.
need=(/usr/sbin/postfix /usr/bin/miltertest /usr/bin/swaks /usr/include/libmilter/mfapi.h
      /usr/sbin/clamd /usr/bin/clamdscan /usr/sbin/clamav-milter /usr/bin/prometheus /usr/bin/redis-server
      /usr/sbin/saslpasswd2 /usr/share/perl5/Authen/SASL.pm /usr/bin/m4)
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

debconf-set-selections <<'SEL'
postfix postfix/main_mailer_type select No configuration
clamav-freshclam clamav-freshclam/autoupdate_freshclam select manual
SEL
apt-get update -qq
# postfix: the MTA under test; miltertest, swaks: clients; libmilter-dev, gcc: the C reference milter;
# clamav-daemon, clamdscan: the real scanner; clamav-milter: the peer we benchmark; prometheus: scrapes /metrics;
# redis-server: shared rate-limit counters; sasl2-bin, libauthen-sasl-perl: SMTP AUTH; m4: Sendmail's cf build.
apt-get install -y -qq --no-install-recommends \
  postfix miltertest swaks libmilter-dev gcc libc6-dev \
  clamav-daemon clamdscan clamav-milter prometheus redis-server \
  sasl2-bin libauthen-sasl-perl m4 >/dev/null
echo "install-system-deps: installed"
