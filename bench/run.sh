#!/usr/bin/env bash
# bench/run.sh — pfs benchmarks against reference tools, in one run, on one
# scratch btrfs file system.
#
#   bench/run.sh [--strict] [PACHCTL]
#
# PACHCTL defaults to $PACHCTL, else build/pachctl/pachctl under the repo root.
# Runs as root: it makes a sparse image (in $BENCH_DIR, default /var/tmp),
# attaches it to a loop device, makes a btrfs file system on it and mounts it.
# All of that is undone on exit, also on failure or Ctrl-C.
#
# What is measured (each timed run 3 times, 7 for the noisy sub-second 1 GiB
# put/get runs, and the median taken; page cache dropped before every cold run
# with `sync; echo 3 > /proc/sys/vm/drop_caches`):
#   1. commit latency with 1k, 10k, 100k files of 4 KiB in the branch
#      (median of 5 commits, each after one small put-file).
#      Target: median(100k) <= 2 x median(1k).
#   2. put-file of a 1 GiB file vs `cp` (+ sync), from tmpfs into the bench
#      file system: target throughput >= 0.9 x cp.
#      get-file of it vs `cat` (> /dev/null), cold and warm cache: >= 0.9 x cat.
#   3. ingest of 100k files of 4 KiB: `put-file -r && commit` vs
#      `git add -A && git commit` (target: pachctl faster) and vs
#      `cp -r && sync` (target: pachctl time <= 1.5 x cp).
#
# Prints one line per figure, a summary table, and exits 0 even when a target
# fails, unless --strict is given (then exit 1 on any FAIL).
#
# Knobs (environment): BENCH_DIR (where the image goes), BENCH_IMAGE_SIZE
# (default 12G), BENCH_REPS (default 3), BENCH_FAST_REPS (default 7, for
# the sub-second 1 GiB put/get runs), BENCH_COMMITS (default 5),
# BENCH_FILES_PER_DIR (default 1000: the sizes are 1, 10 and 100 directories
# of it), BENCH_BIG_MIB (default 1024: the big file).
# BENCH_QUICK=1: a quick run that only shows the script works (figures are
# meaningless): 10 files per directory, a 64 MiB big file, 1 rep (2 commits),
# a 2G image; a knob set explicitly still wins. The harness is bench/lib.sh.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_args "$@"
knob REPS BENCH_REPS 3 1
knob FAST_REPS BENCH_FAST_REPS 7 1   # for the sub-second 1 GiB put/get runs (noisy)
knob NCOMMITS BENCH_COMMITS 5 2
knob IMAGE_SIZE BENCH_IMAGE_SIZE 12G 2G
knob PER_DIR BENCH_FILES_PER_DIR 1000 10
knob BIG_MIB BENCH_BIG_MIB 1024 64

need_root "loop device, mount, drop_caches"
find_pachctl
need_tools git:git mkfs.btrfs:btrfs-progs losetup mount umount awk truncate split

# ---------------------------------------------------------------- scratch fs --

scratch_fs run btrfs "$IMAGE_SIZE"
img=$fs_img loopdev=$fs_dev mnt=$fs_mnt
W="$mnt"
shm_dir run
shm_src="$shm/big"
fsync_fs() { sync -f "$W"; }   # syncfs of the bench file system only

# Labels of the sizes: as the full-size run names them (1k, 10k, 100k; 1 GiB).
count_label() { if (( $1 % 1000 == 0 )); then echo "$(( $1 / 1000 ))k"; else echo "$1"; fi; }
big=$(size_label "$BIG_MIB")
declare -A label=([1k]=$(count_label "$PER_DIR") [10k]=$(count_label $((10 * PER_DIR))) [100k]=$(count_label $((100 * PER_DIR))))

# make_tree DIR NDIRS: NDIRS subdirectories of PER_DIR (1000) files of
# 4 KiB, distinct random content each.
make_tree() {
  local dir=$1 n=$2 i w=3
  (( PER_DIR > 1000 )) && w=${#PER_DIR}
  mkdir -p "$dir"
  for ((i = 0; i < n; i++)); do random_files "$(printf '%s/d%03d' "$dir" "$i")" "$PER_DIR" "$w"; done
}

verdict_line='  => %s (%s: ratio %s, goal %s)\n'

echo "pfs benchmark"
echo "  pachctl: $PACHCTL"
echo "  machine: $(machine_desc)"
echo "  scratch: $img on $loopdev, btrfs mounted at $mnt"
echo "  reference tools: $(cp --version | head -1), $(git --version)"
echo "  reps: $REPS (median; $FAST_REPS for the $big put/get), commits per size: $NCOMMITS (median)"
quick_note
echo

log "generating data (${label[100k]} files of 4 KiB in 100 directories, $big random file)"
make_tree "$W/src100k" 100
mkdir -p "$W/src10k" "$W/src1k"
cp -al "$W"/src100k/d00[0-9] "$W/src10k/"   # hard links: same data, untimed
cp -al "$W/src100k/d000" "$W/src1k/"
head -c "${BIG_MIB}M" /dev/urandom > "$shm_src"
cp "$shm_src" "$W/big.src"
echo "small" > "$W/small.src"
sync -f "$W"

# ------------------------------------------------------- 1. commit latency --

echo
log "1. commit latency (median of $NCOMMITS commits, each after one small put-file)"
declare -A commit_med
for size in 1k 10k 100k; do
  s="$W/store-commit-$size"
  pfs "$s" init >/dev/null
  t0=$EPOCHREALTIME
  pfs "$s" put-file -r data "$W/src$size" >/dev/null
  ingest_s=$(since "$t0")
  pfs "$s" commit -m "ingest $size" >/dev/null
  fsync_fs
  times=()
  for ((i = 0; i < NCOMMITS; i++)); do
    pfs "$s" put-file "marker/$i" "$W/small.src" >/dev/null
    timed t pfs "$s" commit -m "c$i"
    times+=("$t")
  done
  commit_med[$size]=$(median "${times[@]}")
  printf '  commit with %-4s files: median %8s ms   (runs ms: %s; ingest took %.1f s)\n' \
    "${label[$size]}" "$(ms "${commit_med[$size]}")" "$(list_ms "${times[@]}")" "$ingest_s"
done
r=$(ratio "${commit_med[100k]}" "${commit_med[1k]}")
echo "  ratio ${label[100k]}/${label[1k]}: $r"
verdict "commit latency ${label[100k]} vs ${label[1k]} files" \
  "$(ms "${commit_med[1k]}") / $(ms "${commit_med[10k]}") / $(ms "${commit_med[100k]}") ms" \
  "$r" "<= 2" "$(meets "$r" "<= 2")"

# ------------------------------------------------------- 2. big file put/get --

echo
log "2. $big file: put-file vs cp, get-file vs cat"
s="$W/store-big"
pfs "$s" init >/dev/null
# The source lives on tmpfs, so both tools really move the 1 GiB into the
# btrfs file system: from the same file system, cp and put-file would both
# make a reflink (O(1), no data moves) and a "throughput" would measure only
# process start-up and fsyncs; that case is reported below for information.
put_pfs() { pfs "$s" put-file big "$shm_src" && fsync_fs; }
put_cp() { cp "$shm_src" "$W/big.cp" && fsync_fs; }
pt=(); ct=()
for ((i = 0; i < FAST_REPS; i++)); do
  for tool in $(rotated "$i" cp pfs); do   # who goes first alternates
    rm -f "$W/big.cp"
    if [[ $tool == cp ]]; then timed t --cold put_cp; ct+=("$t"); else timed t --cold put_pfs; pt+=("$t"); fi
  done
done
p_med=$(median "${pt[@]}"); c_med=$(median "${ct[@]}")
p_tp=$(calc "$BIG_MIB/$p_med" 0); c_tp=$(calc "$BIG_MIB/$c_med" 0)
echo "  put-file big + sync: median $(ms "$p_med") ms = $p_tp MiB/s   (runs ms: $(list_ms "${pt[@]}"))"
echo "  cp + sync:           median $(ms "$c_med") ms = $c_tp MiB/s   (runs ms: $(list_ms "${ct[@]}"))"
rm -f "$W/big.cp"
r=$(ratio "$c_med" "$p_med")
echo "  ratio pachctl/cp throughput: $r"
verdict "put-file $big vs cp" "$p_tp vs $c_tp MiB/s" "$r" ">= 0.9" "$(meets "$r" ">= 0.9")"

# Same file system (information only): both reflink, so both are O(1); the
# figures are fixed costs (start-up; pachctl's fsyncs of the staged file and
# of the branch state it journals).
pt3=(); ct3=()
for ((i = 0; i < FAST_REPS; i++)); do
  rm -f "$W/big.cp"; fsync_fs
  timed t bash -c 'cp "$1" "$2" && sync -f "$2"' _ "$W/big.src" "$W/big.cp"; ct3+=("$t")
  timed t bash -c '"$1" --store "$2" put-file big "$3" && sync -f "$3"' _ "$PACHCTL" "$s" "$W/big.src"; pt3+=("$t")
done
p3=$(median "${pt3[@]}"); c3=$(median "${ct3[@]}")
echo "  (info) same file system, both reflink: put-file + sync $(ms "$p3") ms vs cp + sync $(ms "$c3") ms"
rm -f "$W/big.cp"
# Read back what the last put-file wrote, from a commit.
pfs "$s" commit -m big >/dev/null
pfs "$s" get-file big | cmp -s - "$W/big.src" || die "get-file big returned other bytes than were put"

get_pfs() { pfs "$s" get-file big > /dev/null; }
get_cat() { cat "$W/big.src" > /dev/null; }
for mode in cold warm; do
  pt=(); ct=()
  cold=""; [[ $mode == cold ]] && cold=--cold
  if [[ $mode == warm ]]; then get_cat; get_pfs; fi
  for ((i = 0; i < FAST_REPS; i++)); do
    for tool in $(rotated "$i" cat pfs); do
      if [[ $tool == cat ]]; then timed t $cold get_cat; ct+=("$t"); else timed t $cold get_pfs; pt+=("$t"); fi
    done
  done
  p_med=$(median "${pt[@]}"); c_med=$(median "${ct[@]}")
  p_tp=$(calc "$BIG_MIB/$p_med" 0); c_tp=$(calc "$BIG_MIB/$c_med" 0)
  echo "  get-file big ($mode): median $(ms "$p_med") ms = $p_tp MiB/s   (runs ms: $(list_ms "${pt[@]}"))"
  echo "  cat ($mode):          median $(ms "$c_med") ms = $c_tp MiB/s   (runs ms: $(list_ms "${ct[@]}"))"
  r=$(ratio "$c_med" "$p_med")
  echo "  ratio pachctl/cat throughput ($mode): $r"
  verdict "get-file $big vs cat ($mode)" "$p_tp vs $c_tp MiB/s" "$r" ">= 0.9" "$(meets "$r" ">= 0.9")"
done

# ------------------------------------------------- 3. ingest 100k small files --

echo
log "3. ingest of ${label[100k]} files of 4 KiB: put-file -r + commit vs git add + commit vs cp -r + sync"
git_tree="$W/gitwork"
cp -r "$W/src100k" "$git_tree"   # untimed
git_ingest() {
  (cd "$git_tree" && git add -A && git commit -q -m x)
}
ingest_pfs() {
  local st="$W/store-ingest-$1"
  pfs "$st" init >/dev/null
  timed t --cold bash -c '"$1" --store "$2" put-file -r data "$3" && "$1" --store "$2" commit -m x' _ \
    "$PACHCTL" "$st" "$W/src100k"
  pt+=("$t")
  s="$st"
}
ingest_git() {
  rm -rf "$git_tree/.git"
  git -C "$git_tree" init -q
  git -C "$git_tree" config user.email bench@example.com
  git -C "$git_tree" config user.name bench
  # No automatic gc: it would detach and run in the background during the
  # next measurements (and race with the rm -rf above).
  git -C "$git_tree" config gc.auto 0
  git -C "$git_tree" config maintenance.auto false
  timed t --cold git_ingest; gt+=("$t")
}
ingest_cp() {
  rm -rf "$W/cpdest"
  timed t --cold bash -c 'cp -r "$1" "$2" && sync -f "$2"' _ "$W/src100k" "$W/cpdest"; ct+=("$t")
}
pt=(); gt=(); ct=()
for ((i = 0; i < REPS; i++)); do
  for tool in $(rotated "$i" pfs git cp); do "ingest_$tool" "$i"; done
done
nfiles=$(pfs "$s" inspect-commit master | awk '/^Files:/{print $2}')
p_med=$(median "${pt[@]}"); g_med=$(median "${gt[@]}"); c_med=$(median "${ct[@]}")
echo "  pachctl put-file -r + commit: median $(calc "$p_med" 2) s   (runs s: ${pt[*]}; last commit holds $nfiles files)"
echo "  git add -A + commit:          median $(calc "$g_med" 2) s   (runs s: ${gt[*]})"
echo "  cp -r + sync:                 median $(calc "$c_med" 2) s   (runs s: ${ct[*]})"
r1=$(ratio "$g_med" "$p_med")
r2=$(ratio "$p_med" "$c_med")
echo "  ratio git/pachctl: $r1"
verdict "ingest ${label[100k]} files vs git" "$(calc "$p_med" 2) vs $(calc "$g_med" 2) s" "$r1" "> 1" "$(meets "$r1" "> 1")"
echo "  ratio pachctl/cp: $r2"
verdict "ingest ${label[100k]} files vs cp -r" "$(calc "$p_med" 2) vs $(calc "$c_med" 2) s" "$r2" "<= 1.5" "$(meets "$r2" "<= 1.5")"

# ------------------------------------------------------------------ summary --

echo
echo "Summary"
print_targets "TARGET|FIGURES (pachctl vs reference)|RATIO|GOAL|RESULT"
echo
bench_result
