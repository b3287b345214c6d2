#!/bin/sh
# Set up everything escalator and its test suite need on a Debian machine:
# the Debian packages (real Nagios 4, Icinga 2, OpenSSH sshd, cucumber, etcd) and a
# virtual environment in .venv with escalator installed in it.  Idempotent:
# a second run only checks what is there.
set -eu
cd "$(dirname "$0")"

PKGS="python3-venv logrotate nagios4-core icinga2-bin openssh-server openssh-client cucumber sudo etcd-server etcd-client libfaketime"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing Debian packages:$missing" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import escalator_handlers, pytest, hypothesis, behave, sphinx, etcd3gw" 2>/dev/null \
   || [ setup.cfg -nt .venv/.installed ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    touch .venv/.installed
fi
