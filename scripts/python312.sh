#!/usr/bin/env bash
# Print the path of a Python >= 3.12 interpreter (pyenv first, via .python-version).
set -euo pipefail
cd "$(dirname "$0")/.."
candidates=()
if command -v pyenv >/dev/null 2>&1; then
  candidates+=("$(pyenv which python 2>/dev/null || true)")
  for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])' | sort -rV); do
    candidates+=("$(pyenv root)/versions/$v/bin/python")
  done
fi
candidates+=("$(command -v python3.13 || true)" "$(command -v python3.12 || true)" "$(command -v python3 || true)")
for py in "${candidates[@]}"; do
  [ -n "$py" ] && [ -x "$py" ] || continue
  if "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
    echo "$py"; exit 0
  fi
done
echo "No Python >= 3.12 found (install one with pyenv: pyenv install 3.12)" >&2
exit 1
