#!/usr/bin/env bash
# bench/jobs.sh [--strict] [PACHCTL] — jobs against doing the same on the host.
#
# Runs as root (runc): a scratch btrfs on a loop device, an image built
# offline (tests/jobs/make_image.sh: busybox + the static test web server),
# and pachctl commit --run on a local store (the engine runs in pachctl).
#   1. a map job over NFILES small files (upper-case) vs the same program
#      run once per file in a loop on the host (+ sync): at most 2x its time
#   2. a map job over BIG_MIB in 100 files (identity) vs cat of each into an
#      output file through a pipe (cold cache, + sync): at least 0.5x its
#      throughput
#   3. the start-up cost of one container: runc run of a bundle (what pfs
#      does) vs podman run --runtime runc, each starting /bin/true; and a
#      whole run of a map job over one small file (commit --run, end to end)
# Knobs: BENCH_DIR (image location), BENCH_JOB_FILES (10000), BENCH_JOB_BIG_MIB
# (1024), BENCH_REPS (3), BENCH_START_REPS (10); BENCH_QUICK=1: a quick run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
find_pachctl
need_root "runc needs it"
knob NFILES BENCH_JOB_FILES 10000 500
knob BIG_MIB BENCH_JOB_BIG_MIB 1024 64
knob REPS BENCH_REPS 3 1
knob START_REPS BENCH_START_REPS 10 3
NBIG=100
JOBSERVER=${JOBSERVER:-$repo_root/build/tests/jobserver}
[[ -x $JOBSERVER ]] || die "the test web server is not built: ninja -C build tests/jobserver"
for t in runc podman; do command -v $t >/dev/null || die "$t is not installed (scripts/deps.sh)"; done
trap bench_cleanup EXIT INT TERM

IMG=localhost/pfs-bench-jobserver:$$
cleanup_image() { podman rmi -f "$IMG" >/dev/null 2>&1 || true; }
trap 'cleanup_image; bench_cleanup' EXIT INT TERM

echo "bench/jobs.sh: jobs (runc, podman's image store) vs the same work on the host"
quick_note
scratch_fs jobs btrfs 8G
W=$fs_mnt
shm_dir jobs
machine_desc 2>/dev/null || true
echo "  pachctl: $PACHCTL; $(runc --version | head -1); $(podman --version)"
bash "$repo_root/tests/jobs/make_image.sh" "$JOBSERVER" "$IMG"
S=$W/store
pfs "$S" init >/dev/null

log "generating data: $NFILES small files (1 KiB), $NBIG files of $((BIG_MIB / NBIG)) MiB"
mkdir -p "$W/small" "$W/big"
for ((i = 0; i < NFILES; i++)); do head -c 768 /dev/urandom | base64 -w 64 > "$W/small/f$i.txt"; done
for ((i = 0; i < NBIG; i++)); do head -c $((BIG_MIB * 1024 * 1024 / NBIG)) /dev/urandom > "$W/big/b$i.bin"; done
pfs "$S" branch small >/dev/null
pfs "$S" put-file -b small -r data "$W/small" >/dev/null
printf '{"type": "map", "input": "data", "image": "%s", "command": ["/jobserver", "upper"]}' "$IMG" > "$shm/upper.json"
pfs "$S" create-job -b small upper "$shm/upper.json"
pfs "$S" branch big >/dev/null
pfs "$S" put-file -b big -r data "$W/big" >/dev/null
printf '{"type": "map", "input": "data", "image": "%s", "command": ["/jobserver", "cat"]}' "$IMG" > "$shm/cat.json"
pfs "$S" create-job -b big cat "$shm/cat.json"
pfs "$S" commit -b small >/dev/null
pfs "$S" commit -b big >/dev/null
# The first run unpacks the image (once per image id): not measured.
pfs "$S" rerun "$(pfs "$S" log -b small -n 1 --json | jq -r '.[0].id')" >/dev/null 2>&1 || true

host_small() {
  local out=$W/host-small f
  rm -rf "$out"; mkdir -p "$out"
  for f in "$W"/small/*; do "$JOBSERVER" upper - < "$f" > "$out/${f##*/}"; done
}
host_big() {
  local out=$W/host-big f
  rm -rf "$out"; mkdir -p "$out"
  # Through a pipe: cat FILE > OUT alone would make a reflink on btrfs
  # (coreutils 9 uses copy_file_range) and move no data at all, while the
  # job reads and writes every byte.
  for f in "$W"/big/*; do cat "$f" | cat > "$out/${f##*/}"; done
}

log "1. map over $NFILES small files vs the program in a loop on the host (median of $REPS)"
pt=() ht=()
for ((r = 0; r < REPS; r++)); do
  for tool in $(rotated "$r" pfs host); do
    if [[ $tool == pfs ]]; then
      timed t --sync "$W" "$PACHCTL" --store "$S" commit -b small --run
      pt+=("$t")
    else
      timed t --sync "$W" host_small
      ht+=("$t")
    fi
  done
done
p1=$(median "${pt[@]}") h1=$(median "${ht[@]}")
echo "  pfs commit --run:        median $(calc "$p1" 2) s   (runs s: $(list_s "${pt[@]}"))"
echo "  host loop (exec a file): median $(calc "$h1" 2) s   (runs s: $(list_s "${ht[@]}"))"
r1=$(ratio "$p1" "$h1")
verdict "map $NFILES small files vs host loop" "$(calc "$p1" 2) vs $(calc "$h1" 2) s" "$r1" "<= 2" "$(meets "$r1" "<= 2")"
last=$(pfs "$S" log -b small -n 1 --json | jq -r '.[0].id')
got=$(pfs "$S" get-file --job upper -c "$last" f7.txt | md5sum)
want=$("$JOBSERVER" upper - < "$W/small/f7.txt" | md5sum)
[[ $got == "$want" ]] || die "the job's output differs from the host's"

log "2. map over $BIG_MIB MiB in $NBIG files vs cat of each (cold cache, + sync; median of $REPS)"
pt=() ht=()
for ((r = 0; r < REPS; r++)); do
  for tool in $(rotated "$r" pfs host); do
    if [[ $tool == pfs ]]; then
      timed t --cold --sync "$W" "$PACHCTL" --store "$S" commit -b big --run
      pt+=("$t")
    else
      timed t --cold --sync "$W" host_big
      ht+=("$t")
    fi
  done
done
p2=$(median "${pt[@]}") h2=$(median "${ht[@]}")
pr=$(calc "$BIG_MIB/$p2" 0) hr=$(calc "$BIG_MIB/$h2" 0)
echo "  pfs commit --run: median $(calc "$p2" 2) s = $pr MiB/s   (runs s: $(list_s "${pt[@]}"))"
echo "  cat + sync:       median $(calc "$h2" 2) s = $hr MiB/s   (runs s: $(list_s "${ht[@]}"))"
r2=$(ratio "$h2" "$p2")
verdict "map $BIG_MIB MiB in $NBIG files vs cat" "$pr vs $hr MiB/s" "$r2" ">= 0.5" "$(meets "$r2" ">= 0.5")"

log "3. start-up of one container (median of $START_REPS)"
rootfs=$(ls -d "$S"/jobs/images/*/rootfs | head -1)
B=$shm/bundle
mkdir -p "$B"
(cd "$B" && runc spec)
jq --arg r "$rootfs" '.root.path = $r | .root.readonly = true | .process.terminal = false | .process.args = ["/bin/true"]' \
  "$B/config.json" > "$B/c.json" && mv "$B/c.json" "$B/config.json"
rt=() pd=() one=()
for ((r = 0; r < START_REPS; r++)); do
  timed t runc --root "$shm/runc" run --bundle "$B" "pfs-bench-$$-$r"
  rt+=("$t")
  timed t podman run --rm --runtime runc --network none --read-only --ulimit nofile=1024:1024 \
    --ulimit nproc=1024:1024 "$IMG" /bin/true
  pd+=("$t")
done
pfs "$S" branch one >/dev/null
echo hello | pfs "$S" put-file -b one data/a.txt
pfs "$S" create-job -b one upper "$shm/upper.json"
for ((r = 0; r < START_REPS; r++)); do
  timed t "$PACHCTL" --store "$S" commit -b one --run
  one+=("$t")
done
m_rt=$(median "${rt[@]}") m_pd=$(median "${pd[@]}") m_one=$(median "${one[@]}")
echo "  runc run (a bundle, /bin/true):         median $(ms "$m_rt") ms   (runs ms: $(list_ms "${rt[@]}"))"
echo "  podman run --runtime runc (/bin/true):  median $(ms "$m_pd") ms   (runs ms: $(list_ms "${pd[@]}"))"
echo "  a whole run, 1 file (commit --run):     median $(ms "$m_one") ms   (runs ms: $(list_ms "${one[@]}"))"
r3=$(ratio "$m_pd" "$m_rt" 1)
verdict "container start: podman run / runc run" "$(ms "$m_pd") vs $(ms "$m_rt") ms" "$r3" "(info)" 1

echo
echo "Summary"
print_targets "TARGET|FIGURES|RATIO|GOAL|RESULT"
echo
bench_result
