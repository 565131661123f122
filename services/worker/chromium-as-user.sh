#!/usr/bin/env bash
# Chromium as an unprivileged account, with its own sandbox on. Natively the worker runs as root, and
# Chromium's sandbox refuses root, so Playwright starts this script in Chromium's place
# (services/worker/browser.py): as root it hands the profile folder Playwright made to that account and
# becomes it before Chromium starts; either way the profile is the browser's home. Playwright's pipe
# (fds 3 and 4) passes through untouched.
set -euo pipefail
user="${SPARKPILOT_BROWSER_USER:-}"  # empty: the worker is not root, Chromium runs as the worker's user
binary="${SPARKPILOT_BROWSER_BINARY:?the Chromium to run}"
unset SPARKPILOT_BROWSER_USER SPARKPILOT_BROWSER_BINARY
for arg in "$@"; do
  case "$arg" in
    --user-data-dir=*)
      profile="${arg#--user-data-dir=}"
      if [ -n "$user" ]; then chown -R "$user:" "$profile"; fi
      export HOME="$profile" ;;
  esac
done
if [ -z "$user" ]; then exec "$binary" "$@"; fi
exec setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups --inh-caps=-all -- "$binary" "$@"
