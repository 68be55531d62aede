#!/usr/bin/env bash
# bench/pipelines.sh [--strict] [PACHCTL] — pipelines against the host.
#
# Runs as root (runc): a scratch btrfs on a loop device, the busybox image
# of the tests (tests/pipelines/make_image.sh, built offline), stores on it.
#   1. a pipeline over NFILES one-file datums (glob /*, `cp` of the datum's
#      file into /pfs/out, parallelism 1: the same CPU as the loop) vs the
#      same busybox cp run once per file in a loop on the host (+ sync):
#      at most 2x its time. (Also shown: parallelism 2.)
#   2. BIG_FILES input files (one-file datums), 1% of them changed: the
#      incremental run vs the full run of the same pipeline on the first
#      commit: at most 5% of its time.
#   3. a run of NFILES datums killed (kill -9 of the server) when half its
#      datums are done: the run after the restart (which reuses them) vs a
#      whole run: at most 60% of its time.
# Runs are timed by `pachctl flush-commit` (locally the run happens in that
# process; in 3. the server runs it and flush-commit waits). Knobs:
# BENCH_DIR (image location), BENCH_PIPE_FILES (10000), BENCH_PIPE_BIG
# (100000), BENCH_REPS (3); BENCH_QUICK=1: a quick run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
find_pachctl
need_root "runc needs it"
knob NFILES BENCH_PIPE_FILES 10000 1000
knob BIG BENCH_PIPE_BIG 100000 10000
knob REPS BENCH_REPS 3 1
for t in runc podman jq curl; do command -v $t >/dev/null || die "$t is not installed (scripts/deps.sh)"; done
WORKER=${PFS_WORKER:-$(dirname "$PACHCTL")/pfs-worker}
[[ -x $WORKER ]] || die "pfs-worker is not built next to pachctl: ninja -C build"
export PFS_WORKER=$WORKER

IMG=localhost/pfs-bench-busybox:$$
cleanup_image() { podman rmi -f "$IMG" >/dev/null 2>&1 || true; }
trap 'cleanup_image; bench_cleanup' EXIT INT TERM

echo "bench/pipelines.sh: pipelines (runc, one container for many datums) vs the same work on the host"
quick_note
scratch_fs pipes btrfs 16G
W=$fs_mnt
shm_dir pipes
machine_desc 2>/dev/null || true
echo "  pachctl: $PACHCTL; $(runc --version | head -1); $(podman --version)"
bash "$repo_root/tests/pipelines/make_image.sh" "$IMG"

# spec NAME REPO PARALLELISM: a pipeline copying each top-level file.
spec() {
  printf '{"pipeline": {"name": "%s"}, "transform": {"image": "%s", "cmd": ["cp", "-r", "/pfs/in/.", "/pfs/out/"]},
           "parallelism_spec": {"constant": %s}, "input": {"pfs": {"repo": "%s", "glob": "/*", "name": "in"}}}' \
    "$1" "$IMG" "$3" "$2"
}
# datums_of STORE RUN: "processed skipped recovered" of a run.
datums_of() { pfs "$1" inspect-run "$2" --json | jq -r '.datums | "\(.processed) \(.skipped) \(.recovered)"'; }

# ---------------------------------------------------------------- 1. --
log "1. $NFILES one-file datums vs busybox cp in a loop on the host (median of $REPS)"
mkdir -p "$W/small"
for ((i = 0; i < NFILES; i++)); do echo "file $i $RANDOM" > "$W/small/f$i.txt"; done
S=$W/s1
pfs "$S" init >/dev/null
pfs "$S" branch small >/dev/null
pfs "$S" put-file -b small -r . "$W/small" >/dev/null
pfs "$S" commit -b small >/dev/null
# The image is unpacked once (per image id), before anything is measured.
spec warm small 1 > "$shm/warm.json"
pfs "$S" run-datum -f "$shm/warm.json" >/dev/null
host_loop() {
  local out=$W/host-out f
  rm -rf "$out"; mkdir -p "$out"
  for f in "$W"/small/*; do /bin/busybox cp -r "$f" "$out/"; done
}
pt=() ht=() p2t=()
for ((r = 0; r < REPS; r++)); do
  for tool in $(rotated "$r" pfs host); do
    if [[ $tool == pfs ]]; then
      spec "c$r" small 1 > "$shm/c.json"
      pfs "$S" create-pipeline -f "$shm/c.json" 2>/dev/null
      timed t --sync "$W" "$PACHCTL" --store "$S" flush-commit small
      pt+=("$t")
      [[ $(datums_of "$S" "c$r@1") == "$NFILES 0 0" ]] || die "c$r@1 did not process every datum: $(datums_of "$S" "c$r@1")"
    else
      timed t --sync "$W" host_loop
      ht+=("$t")
    fi
  done
done
spec par small 2 > "$shm/p.json"
pfs "$S" create-pipeline -f "$shm/p.json" 2>/dev/null
timed t --sync "$W" "$PACHCTL" --store "$S" flush-commit small
p2t+=("$t")
p1=$(median "${pt[@]}") h1=$(median "${ht[@]}")
echo "  pfs, parallelism 1:  median $(calc "$p1" 2) s   (runs s: $(list_s "${pt[@]}"))"
echo "  pfs, parallelism 2:  $(calc "${p2t[0]}" 2) s"
echo "  host loop:           median $(calc "$h1" 2) s   (runs s: $(list_s "${ht[@]}"))"
got=$(pfs "$S" get-file -b c0 f7.txt | md5sum)
want=$(md5sum < "$W/small/f7.txt")
[[ $got == "$want" ]] || die "the pipeline's output differs from its input"
r1=$(ratio "$p1" "$h1")
verdict "$NFILES one-file datums vs host loop" "$(calc "$p1" 2) vs $(calc "$h1" 2) s" "$r1" "<= 2" "$(meets "$r1" "<= 2")"

# ---------------------------------------------------------------- 2. --
log "2. $BIG files, 1% changed: the incremental run vs the full run"
S2=$W/s2
pfs "$S2" init >/dev/null
pfs "$S2" branch big >/dev/null
mkdir -p "$W/big"
for ((i = 0; i < BIG; i++)); do echo "file $i $RANDOM" > "$W/big/f$i.txt"; done
pfs "$S2" put-file -b big -r . "$W/big" >/dev/null
pfs "$S2" commit -b big >/dev/null
spec warm2 big 1 > "$shm/warm2.json"
pfs "$S2" run-datum -f "$shm/warm2.json" >/dev/null
spec inc big 2 > "$shm/inc.json"
pfs "$S2" create-pipeline -f "$shm/inc.json" 2>/dev/null
timed full --sync "$W" "$PACHCTL" --store "$S2" flush-commit big --timeout 36000
[[ $(datums_of "$S2" inc@1) == "$BIG 0 0" ]] || die "inc@1: $(datums_of "$S2" inc@1)"
changed=$((BIG / 100))
rm -rf "$W/changes"; mkdir -p "$W/changes"
for ((k = 0; k < changed; k++)); do echo "changed $k" > "$W/changes/f$((k * 100)).txt"; done
pfs "$S2" put-file -b big -r . "$W/changes" >/dev/null
pfs "$S2" commit -b big >/dev/null
timed incr --sync "$W" "$PACHCTL" --store "$S2" flush-commit big --timeout 36000
[[ $(datums_of "$S2" inc@2) == "$changed $((BIG - changed)) 0" ]] || die "inc@2: $(datums_of "$S2" inc@2)"
[[ $(pfs "$S2" get-file -b inc f100.txt) == "changed 1" ]] || die "inc@2's output is wrong"
echo "  full run ($BIG datums):          $(calc "$full" 2) s"
echo "  incremental run ($changed changed):  $(calc "$incr" 2) s"
r2=$(ratio "$incr" "$full" 3)
verdict "1% of $BIG changed: incremental / full" "$(calc "$incr" 2) vs $(calc "$full" 2) s" "$r2" "<= 0.05" "$(meets "$r2" "<= 0.05")"

# ---------------------------------------------------------------- 3. --
log "3. a run of $NFILES datums killed at half by kill -9 of the server: the resumed run vs a whole run"
S3=$W/s3
pfs "$S3" init >/dev/null
pfs "$S3" branch small >/dev/null
pfs "$S3" put-file -b small -r . "$W/small" >/dev/null
pfs "$S3" commit -b small >/dev/null
port=$((20000 + RANDOM % 20000))
serve() {
  "$PACHCTL" --store "$S3" serve --listen "127.0.0.1:$port" --quiet >"$shm/serve.log" 2>&1 &
  server=$!
  bench_pids+=("$server")
  for ((k = 0; k < 100; k++)); do curl -fs "http://127.0.0.1:$port/info" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "the server did not start: $(cat "$shm/serve.log")"
}
A=(--address "http://127.0.0.1:$port")
serve
spec whole small 1 > "$shm/whole.json"
spec halved small 1 > "$shm/halved.json"
t0=$EPOCHREALTIME
"$PACHCTL" "${A[@]}" create-pipeline -f "$shm/whole.json"
"$PACHCTL" "${A[@]}" flush-commit small --timeout 36000 >/dev/null
whole=$(since "$t0" 6)
"$PACHCTL" "${A[@]}" stop-pipeline whole
"$PACHCTL" "${A[@]}" create-pipeline -f "$shm/halved.json"
until [[ $("$PACHCTL" "${A[@]}" inspect-run halved@1 --json | jq -r .datums.processed) -ge $((NFILES / 2)) ]]; do sleep 0.05; done
kill -9 "$server"
wait "$server" 2>/dev/null || true
t0=$EPOCHREALTIME
serve
"$PACHCTL" "${A[@]}" flush-commit small --timeout 36000 >/dev/null
resumed=$(since "$t0" 6)
read -r proc skip rec <<<"$(datums_of "$S3" halved@1)"
[[ $(pfs "$S3" inspect-run halved@1 --json | jq -r .state) == success ]] || die "halved@1 did not succeed"
(( rec > 0 && proc + rec == NFILES )) || die "halved@1 datums: $proc processed, $rec recovered"
echo "  a whole run under the server:  $(calc "$whole" 2) s"
echo "  after kill -9 at half (restart + resumed run): $(calc "$resumed" 2) s   ($rec recovered, $proc processed)"
r3=$(ratio "$resumed" "$whole")
verdict "kill -9 at half: resumed / whole" "$(calc "$resumed" 2) vs $(calc "$whole" 2) s" "$r3" "<= 0.6" "$(meets "$r3" "<= 0.6")"
kill "$server" 2>/dev/null || true

echo
echo "Summary"
print_targets "TARGET|FIGURES|RATIO|GOAL|RESULT"
echo
bench_result
