#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine: system packages, the Python venv,
# and (through hack/stack) the binaries of the local stack. Idempotent; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
make setup
