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
# the sub-second 1 GiB put/get runs), BENCH_COMMITS (default 5).

set -euo pipefail
export LC_ALL=C
export PATH="$PATH:/usr/sbin:/sbin"   # mkfs.btrfs, losetup live there

strict=0
pachctl_arg=""
for a in "$@"; do
  case "$a" in
    --strict) strict=1 ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "bench: unknown option $a" >&2; exit 2 ;;
    *) pachctl_arg="$a" ;;
  esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACHCTL="${pachctl_arg:-${PACHCTL:-$repo_root/build/pachctl/pachctl}}"
case "$PACHCTL" in /*) ;; *) PACHCTL="$(pwd)/$PACHCTL" ;; esac
REPS="${BENCH_REPS:-3}"
FAST_REPS="${BENCH_FAST_REPS:-7}"   # for the sub-second 1 GiB put/get runs (noisy)
NCOMMITS="${BENCH_COMMITS:-5}"
IMAGE_SIZE="${BENCH_IMAGE_SIZE:-12G}"

die() { echo "bench: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "must run as root (loop device, mount, drop_caches)"
[[ -x "$PACHCTL" ]] || die "pachctl not found or not executable: $PACHCTL (build it, or pass its path)"
command -v git >/dev/null || die "git is missing (apt-get install git)"
command -v mkfs.btrfs >/dev/null || die "mkfs.btrfs is missing (apt-get install btrfs-progs)"
for t in losetup mount umount awk truncate split; do
  command -v "$t" >/dev/null || die "$t is missing"
done

# ---------------------------------------------------------------- scratch fs --

img="" loopdev="" mnt="" mounted=0 shm_src=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  cd /
  if [[ $mounted -eq 1 ]]; then
    local i
    for i in 1 2 3 4 5; do
      umount "$mnt" 2>/dev/null && { mounted=0; break; }
      sleep 1
    done
    if [[ $mounted -eq 1 ]]; then
      echo "bench: $mnt is busy; detaching it lazily" >&2
      umount -l "$mnt" || true
    fi
  fi
  [[ -n "$loopdev" ]] && { losetup -d "$loopdev" || echo "bench: could not detach $loopdev" >&2; }
  [[ -n "$img" ]] && rm -f "$img"
  [[ -n "${shm_src:-}" ]] && rm -f "$shm_src"
  [[ -n "$mnt" ]] && rmdir "$mnt" 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

base="${BENCH_DIR:-/var/tmp}"
mkdir -p "$base"
img="$(mktemp "$base/pfs-bench.XXXXXX.img")"
truncate -s "$IMAGE_SIZE" "$img"
# Direct I/O on the backing file: no second page cache under the loop device,
# so a dropped cache means reads really go to the disk.
loopdev="$(losetup --find --show --direct-io=on "$img" 2>/dev/null || losetup --find --show "$img")"
mkfs.btrfs -q -f "$loopdev" >/dev/null
mnt="$(mktemp -d /tmp/pfs-bench-mnt.XXXXXX)"
mount "$loopdev" "$mnt"
mounted=1
W="$mnt"

# ------------------------------------------------------------------- helpers --

now() { echo "$EPOCHREALTIME"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
fsync_fs() { sync -f "$W"; }   # syncfs of the bench file system only

# time_cmd VAR CMD...: runs CMD, stores wall seconds in VAR. Output to /dev/null.
time_cmd() {
  local __var=$1; shift
  local t0 t1
  t0=$(now)
  "$@" >/dev/null
  t1=$(now)
  printf -v "$__var" '%s' "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.6f", b-a}')"
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{ if (NR%2) print v[(NR+1)/2]; else printf "%.6f\n", (v[NR/2]+v[NR/2+1])/2 }'; }
calc() { awk "BEGIN{printf \"%.${2:-3}f\", ($1)}"; }
ms() { calc "$1*1000" 1; }
list_ms() { local out="" x; for x in "$@"; do out+="$(ms "$x") "; done; echo "${out% }"; }

pfs() { "$PACHCTL" --store "$1" "${@:2}"; }

summary=()
failed=0
# verdict NAME FIGURE RATIO GOAL OK(1/0)
verdict() {
  local v=PASS
  [[ $5 -eq 1 ]] || { v=FAIL; failed=1; }
  summary+=("$1|$2|$3|$4|$v")
  echo "  => $v ($1: ratio $3, goal $4)"
}
log() { echo "[$(date +%T)] $*"; }

# make_tree DIR NDIRS: NDIRS subdirectories of 1000 files of 4 KiB, distinct
# random content each.
make_tree() {
  local dir=$1 n=$2 i
  mkdir -p "$dir"
  for ((i = 0; i < n; i++)); do
    local d; d=$(printf '%s/d%03d' "$dir" "$i")
    mkdir "$d"
    head -c $((1000 * 4096)) /dev/urandom | (cd "$d" && split -b 4096 -d -a 3 - f)
  done
}

echo "pfs benchmark"
echo "  pachctl: $PACHCTL"
echo "  machine: $(nproc) CPUs, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r)"
echo "  scratch: $img on $loopdev, btrfs mounted at $mnt"
echo "  reference tools: $(cp --version | head -1), $(git --version)"
echo "  reps: $REPS (median; $FAST_REPS for the 1 GiB put/get), commits per size: $NCOMMITS (median)"
echo

log "generating data (100k files of 4 KiB in 100 directories, 1 GiB random file)"
make_tree "$W/src100k" 100
mkdir -p "$W/src10k" "$W/src1k"
cp -al "$W"/src100k/d00[0-9] "$W/src10k/"   # hard links: same data, untimed
cp -al "$W/src100k/d000" "$W/src1k/"
shm_src="$(mktemp /dev/shm/pfs-bench-big.XXXXXX)"
head -c 1G /dev/urandom > "$shm_src"
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
  t0=$(now)
  pfs "$s" put-file -r data "$W/src$size" >/dev/null
  t1=$(now)
  pfs "$s" commit -m "ingest $size" >/dev/null
  fsync_fs
  times=()
  for ((i = 0; i < NCOMMITS; i++)); do
    pfs "$s" put-file "marker/$i" "$W/small.src" >/dev/null
    time_cmd t pfs "$s" commit -m "c$i"
    times+=("$t")
  done
  commit_med[$size]=$(median "${times[@]}")
  printf '  commit with %-4s files: median %8s ms   (runs ms: %s; ingest took %.1f s)\n' \
    "$size" "$(ms "${commit_med[$size]}")" "$(list_ms "${times[@]}")" "$(calc "$t1-$t0")"
done
r=$(calc "${commit_med[100k]}/${commit_med[1k]}" 2)
echo "  ratio 100k/1k: $r"
verdict "commit latency 100k vs 1k files" \
  "$(ms "${commit_med[1k]}") / $(ms "${commit_med[10k]}") / $(ms "${commit_med[100k]}") ms" \
  "$r" "<= 2" "$(calc "$r <= 2" 0)"

# ------------------------------------------------------- 2. big file put/get --

echo
log "2. 1 GiB file: put-file vs cp, get-file vs cat"
s="$W/store-big"
pfs "$s" init >/dev/null
mib=1024
# The source lives on tmpfs, so both tools really move the 1 GiB into the
# btrfs file system: from the same file system, cp and put-file would both
# make a reflink (O(1), no data moves) and a "throughput" would measure only
# process start-up and fsyncs; that case is reported below for information.
put_pfs() { pfs "$s" put-file big "$shm_src" && fsync_fs; }
put_cp() { cp "$shm_src" "$W/big.cp" && fsync_fs; }
pt=(); ct=()
for ((i = 0; i < FAST_REPS; i++)); do
  # Alternate which tool goes first, so neither always inherits the other's
  # leftover work.
  for tool in $( ((i % 2)) && echo "pfs cp" || echo "cp pfs"); do
    rm -f "$W/big.cp"; drop_caches
    if [[ $tool == cp ]]; then time_cmd t put_cp; ct+=("$t"); else time_cmd t put_pfs; pt+=("$t"); fi
  done
done
p_med=$(median "${pt[@]}"); c_med=$(median "${ct[@]}")
p_tp=$(calc "$mib/$p_med" 0); c_tp=$(calc "$mib/$c_med" 0)
echo "  put-file big + sync: median $(ms "$p_med") ms = $p_tp MiB/s   (runs ms: $(list_ms "${pt[@]}"))"
echo "  cp + sync:           median $(ms "$c_med") ms = $c_tp MiB/s   (runs ms: $(list_ms "${ct[@]}"))"
rm -f "$W/big.cp"
r=$(calc "$c_med/$p_med" 2)
echo "  ratio pachctl/cp throughput: $r"
verdict "put-file 1 GiB vs cp" "$p_tp vs $c_tp MiB/s" "$r" ">= 0.9" "$(calc "$r >= 0.9" 0)"

# Same file system (information only): both reflink, so both are O(1); the
# figures are fixed costs (start-up; pachctl's fsyncs of the staged file and
# of the branch state it journals).
pt3=(); ct3=()
for ((i = 0; i < FAST_REPS; i++)); do
  rm -f "$W/big.cp"; fsync_fs
  time_cmd t bash -c 'cp "$1" "$2" && sync -f "$2"' _ "$W/big.src" "$W/big.cp"; ct3+=("$t")
  time_cmd t bash -c '"$1" --store "$2" put-file big "$3" && sync -f "$3"' _ "$PACHCTL" "$s" "$W/big.src"; pt3+=("$t")
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
  if [[ $mode == warm ]]; then get_cat; get_pfs; fi
  for ((i = 0; i < FAST_REPS; i++)); do
    for tool in $( ((i % 2)) && echo "pfs cat" || echo "cat pfs"); do
      [[ $mode == cold ]] && drop_caches
      if [[ $tool == cat ]]; then time_cmd t get_cat; ct+=("$t"); else time_cmd t get_pfs; pt+=("$t"); fi
    done
  done
  p_med=$(median "${pt[@]}"); c_med=$(median "${ct[@]}")
  p_tp=$(calc "$mib/$p_med" 0); c_tp=$(calc "$mib/$c_med" 0)
  echo "  get-file big ($mode): median $(ms "$p_med") ms = $p_tp MiB/s   (runs ms: $(list_ms "${pt[@]}"))"
  echo "  cat ($mode):          median $(ms "$c_med") ms = $c_tp MiB/s   (runs ms: $(list_ms "${ct[@]}"))"
  r=$(calc "$c_med/$p_med" 2)
  echo "  ratio pachctl/cat throughput ($mode): $r"
  verdict "get-file 1 GiB vs cat ($mode)" "$p_tp vs $c_tp MiB/s" "$r" ">= 0.9" "$(calc "$r >= 0.9" 0)"
done

# ------------------------------------------------- 3. ingest 100k small files --

echo
log "3. ingest of 100k files of 4 KiB: put-file -r + commit vs git add + commit vs cp -r + sync"
git_tree="$W/gitwork"
cp -r "$W/src100k" "$git_tree"   # untimed
git_ingest() {
  (cd "$git_tree" && git add -A && git commit -q -m x)
}
ingest_pfs() {
  local st="$W/store-ingest-$1"
  pfs "$st" init >/dev/null
  drop_caches
  time_cmd t bash -c '"$1" --store "$2" put-file -r data "$3" && "$1" --store "$2" commit -m x' _ \
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
  drop_caches
  time_cmd t git_ingest; gt+=("$t")
}
ingest_cp() {
  rm -rf "$W/cpdest"
  drop_caches
  time_cmd t bash -c 'cp -r "$1" "$2" && sync -f "$2"' _ "$W/src100k" "$W/cpdest"; ct+=("$t")
}
pt=(); gt=(); ct=()
order=(pfs git cp)
for ((i = 0; i < REPS; i++)); do
  # Rotate the order from one repetition to the next.
  for ((k = 0; k < 3; k++)); do
    tool=${order[(i + k) % 3]}
    "ingest_$tool" "$i"
  done
done
nfiles=$(pfs "$s" inspect-commit master | awk '/^Files:/{print $2}')
p_med=$(median "${pt[@]}"); g_med=$(median "${gt[@]}"); c_med=$(median "${ct[@]}")
echo "  pachctl put-file -r + commit: median $(calc "$p_med" 2) s   (runs s: ${pt[*]}; last commit holds $nfiles files)"
echo "  git add -A + commit:          median $(calc "$g_med" 2) s   (runs s: ${gt[*]})"
echo "  cp -r + sync:                 median $(calc "$c_med" 2) s   (runs s: ${ct[*]})"
r1=$(calc "$g_med/$p_med" 2)
r2=$(calc "$p_med/$c_med" 2)
echo "  ratio git/pachctl: $r1"
verdict "ingest 100k files vs git" "$(calc "$p_med" 2) vs $(calc "$g_med" 2) s" "$r1" "> 1" "$(calc "$r1 > 1" 0)"
echo "  ratio pachctl/cp: $r2"
verdict "ingest 100k files vs cp -r" "$(calc "$p_med" 2) vs $(calc "$c_med" 2) s" "$r2" "<= 1.5" "$(calc "$r2 <= 1.5" 0)"

# ------------------------------------------------------------------ summary --

echo
echo "Summary"
{
  echo "TARGET|FIGURES (pachctl vs reference)|RATIO|GOAL|RESULT"
  printf '%s\n' "${summary[@]}"
} | column -t -s '|' 2>/dev/null || printf '%s\n' "${summary[@]}"
echo
if [[ $failed -eq 1 ]]; then
  echo "RESULT: FAIL (at least one target missed)"
  [[ $strict -eq 1 ]] && exit 1
else
  echo "RESULT: PASS (all targets met)"
fi
exit 0
