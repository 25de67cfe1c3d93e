#!/usr/bin/env bash
# make lint: clang-format (check only) and cppcheck on the C sources changed
# against origin/main or, when there is none, on every C source.
set -uo pipefail
cd "$(dirname "$0")/.."
base=$(git merge-base HEAD origin/main 2>/dev/null || true)
if [ -n "$base" ]; then
  files=$(git diff --name-only "$base" -- '*.c' '*.h')
else
  files=$(git ls-files '*.c' '*.h')
fi
files=$(for f in $files; do [ -f "$f" ] && echo "$f"; done)
[ -n "$files" ] || { echo "lint: nothing to check"; exit 0; }
rc=0
# ctuuninitvar: cppcheck flags every out-parameter that the callee fills
# (cfg_load(target), job_parse(err)); those are the API, not bugs.
clang-format --dry-run -Werror $files || rc=1
cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
  --suppress=missingIncludeSystem --suppress=ctuuninitvar -I src $files || rc=1
exit $rc
