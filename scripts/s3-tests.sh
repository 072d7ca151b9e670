#!/usr/bin/env bash
# make s3-tests: ceph/s3-tests (core and extended) against a fresh `s3lite serve`.
#
# Starts `s3lite serve` on a free loopback port with an empty data directory, the root
# key from S3LITE_ROOT_USER/S3LITE_ROOT_PASSWORD (random ones when unset), creates two
# more keys with `s3lite key create` for the suite's alt and tenant users, runs the
# suite's run.sh for `core` and then `extended`, stops the server by its PID and prints
# both summary lines. Exit status: non-zero when a count is under its target
# (CORE_TARGET, default 76; EXTENDED_TARGET, default 200), or the
# suite or the server could not be run.
#
# Environment: S3TESTS_DIR (default ../shared/s3-tests, then /work/shared/s3-tests),
# S3TESTS_VENV (default .venv/s3tests: the suite's own Python deps), PYTEST_ARGS,
# SUBSETS (default "core extended").
set -u -o pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
S3LITE=${S3LITE:-$REPO/.venv/bin/s3lite}
CORE_TARGET=${CORE_TARGET:-76}
EXTENDED_TARGET=${EXTENDED_TARGET:-200}
SUBSETS=${SUBSETS:-core extended}

DIR=${S3TESTS_DIR:-}
if [ -z "$DIR" ]; then
  for candidate in ../shared/s3-tests /work/shared/s3-tests; do
    [ -f "$candidate/run.sh" ] && { DIR=$candidate; break; }
  done
fi
if [ -z "$DIR" ] || [ ! -f "$DIR/run.sh" ]; then
  echo "s3-tests: the conformance suite was not found (set S3TESTS_DIR to the directory" \
       "holding run.sh; looked in ../shared/s3-tests and /work/shared/s3-tests)" >&2
  exit 2
fi
DIR=$(cd "$DIR" && pwd)
export S3TESTS_VENV=${S3TESTS_VENV:-$REPO/.venv/s3tests}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/s3lite-s3tests.XXXXXX")
SERVER=""
stop() {
  if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then
    kill -TERM "$SERVER"
    wait "$SERVER" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap stop EXIT

random_id() { "$REPO/.venv/bin/python" -c "import secrets,sys; print(secrets.token_hex(int(sys.argv[1])))" "$1"; }
export S3LITE_ROOT_USER=${S3LITE_ROOT_USER:-S3T$(random_id 8 | tr a-f A-F)}
export S3LITE_ROOT_PASSWORD=${S3LITE_ROOT_PASSWORD:-$(random_id 20)}

mkfifo "$WORK/out"
# --region: the suite's test_bucket_get_location creates a bucket in its api_name
# and reads it back; s3lite says every bucket is in the gateway's one region.
export API_NAME=${API_NAME:-s3lite-test}
"$S3LITE" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --region "$API_NAME" \
  >"$WORK/out" 2>"$WORK/server.log" &
SERVER=$!
# The first line says where it listens; read it (bounded) instead of polling.
exec 3<"$WORK/out"
if ! read -r -t 60 line <&3; then
  echo "s3-tests: s3lite serve did not start; its log:" >&2; cat "$WORK/server.log" >&2; exit 2
fi
cat <&3 >/dev/null &  # keep draining what the server prints
URL=$(echo "$line" | grep -o 'http://[0-9.:]*')
PORT=${URL##*:}
echo "s3-tests: s3lite serve (pid $SERVER) on $URL, data in $WORK/data" >&2

new_key() {
  "$S3LITE" key create --gateway "$URL" --name "$1" >"$WORK/key" || exit 2
  sed -n 's/^access key: //p' "$WORK/key"
  sed -n 's/^secret key: //p' "$WORK/key"
}
{ read -r ALT_ACCESS; read -r ALT_SECRET; } < <(new_key s3tests-alt)
{ read -r TENANT_ACCESS; read -r TENANT_SECRET; } < <(new_key s3tests-tenant)
if [ -z "${ALT_SECRET:-}" ] || [ -z "${TENANT_SECRET:-}" ]; then
  echo "s3-tests: s3lite key create failed; the server's log:" >&2; cat "$WORK/server.log" >&2; exit 2
fi
export ALT_ACCESS ALT_SECRET TENANT_ACCESS TENANT_SECRET
export HOST=127.0.0.1 PORT ACCESS=$S3LITE_ROOT_USER SECRET=$S3LITE_ROOT_PASSWORD

# The suite's own output goes to .s3-tests/<subset>.log (its pytest summary would
# otherwise be the last word of a CI log whose verdict is ours); failing names and
# the counts are printed here.
LOGS=$REPO/.s3-tests
mkdir -p "$LOGS"
status=0
summaries=()
for subset in $SUBSETS; do
  JUNIT_XML=$LOGS/$subset.xml bash "$DIR/run.sh" "$subset" >"$LOGS/$subset.log" 2>&1
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOGS/$subset.log" | tail -1)
  grep -E '^(FAILED|ERROR) ' "$LOGS/$subset.log" | sed "s/^/s3-tests $subset: /"
  passed=${summary%% passed*}
  failed=${summary##*, }; failed=${failed%% failed}
  target=$CORE_TARGET
  [ "$subset" = extended ] && target=$EXTENDED_TARGET
  summaries+=("s3-tests $subset: ${passed:-?} passed and ${failed:-?} failed (target: at least $target passed; log in .s3-tests/$subset.log)")
  if [ -z "$summary" ] || [ "$passed" -lt "$target" ]; then
    echo "s3-tests: $subset is under its target; the end of its log:" >&2
    tail -30 "$LOGS/$subset.log" >&2
    status=1
  fi
done
for line in "${summaries[@]}"; do echo "$line"; done
exit $status
