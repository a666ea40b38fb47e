#!/usr/bin/env bash
# Runs every test project with `dotnet test`, writes TRX results under artifacts/test-results,
# and ends with one summary line: "N passed, N failed[, N skipped]".
# EBPF_PROXY_TEST_FILTER=unit runs only projects that need no privileges.
set -uo pipefail
cd "$(dirname "$0")/.."
config=${1:-Release}
results=artifacts/test-results
rm -rf "$results"
mkdir -p "$results"

projects=$(ls tests/*/*.Tests.csproj)
if [ "${EBPF_PROXY_TEST_FILTER:-}" = unit ]; then
  projects=$(echo "$projects" | grep -v -E 'Privileged|E2E|LibBpf|Datapath')
fi

status=0
for p in $projects; do
  name=$(basename "$p" .csproj)
  echo "=== $name"
  # Category=Soak tests are long runs of their own (make soak-restarts), not part of the suite.
  if ! dotnet test "$p" -c "$config" --no-build -nologo --filter "Category!=Soak" \
      --logger "trx;LogFileName=$name.trx" --results-directory "$results" \
      --logger "console;verbosity=normal"; then
    status=1
  fi
done

# Sum the counters of every TRX file.
passed=0; failed=0; skipped=0; seen=0
for trx in "$results"/*.trx; do
  [ -e "$trx" ] || continue
  seen=$((seen + 1))
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  get() { echo "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*'; }
  passed=$((passed + $(get passed)))
  failed=$((failed + $(get failed) + $(get error) + $(get timeout) + $(get aborted)))
  skipped=$((skipped + $(get notExecuted)))
done
n_projects=$(echo "$projects" | wc -w)
if [ "$seen" -lt "$n_projects" ]; then
  echo "only $seen of $n_projects test projects produced results" >&2
  failed=$((failed + n_projects - seen))
  status=1
fi
if [ "${EBPF_PROXY_REQUIRE_PRIVILEGED:-}" = 1 ] && [ "$skipped" -gt 0 ]; then
  echo "$skipped test(s) skipped while EBPF_PROXY_REQUIRE_PRIVILEGED=1" >&2
  status=1
fi
[ "$failed" -gt 0 ] && status=1
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
exit $status
