# shellcheck shell=bash
# bench/lib.sh — the harness the bench scripts share; each sources it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Arguments and knobs, scratch loop-mounted file systems (undone at exit),
# the page-cache drop of cold runs, timing, medians, ratios, and verdicts
# against targets with the closing RESULT line. Sourcing it sets the exit
# traps, so a script's scratch state goes away also on failure or Ctrl-C.

export LC_ALL=C
export PATH="$PATH:/usr/sbin:/sbin"   # mkfs.*, losetup live there

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench_base="${BENCH_DIR:-/var/tmp}"   # where the images go
bench_quick="${BENCH_QUICK:-0}"
strict=0          # --strict: exit 1 when a target is missed
pachctl_arg=""    # the PACHCTL argument
failed=0          # 1 once a verdict is FAIL
summary=()        # verdict rows, "NAME|FIGURES|RATIO|GOAL|RESULT"
verdict_line=""   # printf format (RESULT, NAME, RATIO, GOAL) of a verdict's own line; none when empty
log_load=0        # 1: log lines show the load average
timed_stdout=/dev/null
timed_stderr=""   # where timed puts a command's stderr; empty: $shm/err
shm=""
scratch_imgs=() scratch_loops=() scratch_mnts=() scratch_mounted=() bench_tmp=() bench_pids=()

# --------------------------------------------------------------- set-up --

die() { echo "bench: $*" >&2; exit 1; }

# parse_args ARG...: --strict, -h/--help (prints the script's header
# comment) and the PACHCTL argument. Any other option goes to the script's
# bench_option OPT, if it defines one, which returns non-zero when unknown.
parse_args() {
  local a
  for a in "$@"; do
    case "$a" in
      --strict) strict=1 ;;
      -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
      -*)
        if ! { declare -F bench_option >/dev/null && bench_option "$a"; }; then
          echo "bench: unknown option $a" >&2; exit 2
        fi ;;
      *) pachctl_arg="$a" ;;
    esac
  done
}

# find_pachctl: PACHCTL from the argument, else $PACHCTL, else the build
# under the repo root; made absolute (scripts cd), and it must be executable.
find_pachctl() {
  PACHCTL="${pachctl_arg:-${PACHCTL:-$repo_root/build/pachctl/pachctl}}"
  case "$PACHCTL" in /*) ;; *) PACHCTL="$(pwd)/$PACHCTL" ;; esac
  [[ -x "$PACHCTL" ]] || die "pachctl not found or not executable: $PACHCTL (build it, or pass its path)"
}

# knob VAR ENV FULL [QUICK]: sets VAR to $ENV when that is set, else to QUICK
# under BENCH_QUICK=1 (when QUICK is given), else to FULL.
knob() {
  local v=${!2:-}
  if [[ -z $v ]]; then
    if [[ $bench_quick == 1 && $# -ge 4 ]]; then v=$4; else v=$3; fi
  fi
  printf -v "$1" '%s' "$v"
}

# quick_note: a header line saying the figures are from a quick run.
quick_note() {
  [[ $bench_quick != 1 ]] || echo "  QUICK RUN (BENCH_QUICK=1): reduced sizes and repetitions; the figures say nothing"
}

# need_root WHAT: stops unless root (WHAT: what needs it).
need_root() { [[ $EUID -eq 0 ]] || die "must run as root ($1)"; }

# need_tools TOOL[:PACKAGE]...: stops at the first tool not on the PATH
# (naming the package to install, when given).
need_tools() {
  local t
  for t in "$@"; do
    command -v "${t%%:*}" >/dev/null ||
      die "${t%%:*} is missing$([[ $t == *:* ]] && echo " (apt-get install ${t#*:})")"
  done
}

# install_missing TOOL...: apt-get installs the tools (each its own package)
# not on the PATH, refreshing the package lists only if that fails first.
install_missing() {
  local t missing=()
  for t in "$@"; do command -v "$t" >/dev/null || missing+=("$t"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  echo "bench: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
    die "could not install ${missing[*]} (apt-get install ${missing[*]})"
}

# need_free DIR MIB: stops unless DIR's file system has MIB MiB free.
need_free() {
  local avail
  mkdir -p "$1"
  avail=$(df -Pm "$1" | awk 'NR==2{print $4}')
  (( avail >= $2 )) || die "$1 has $avail MiB free; the run needs about $2 MiB"
}

# ------------------------------------------------------- scratch state --

# scratch_fs NAME TYPE SIZE [--buffered]: a sparse SIZE image in $bench_base
# (BENCH_DIR, default /var/tmp) on a loop device, a fresh TYPE (btrfs or
# ext4) file system on it, mounted under /tmp; sets fs_img, fs_dev, fs_mnt.
# The loop device does direct I/O on the image unless --buffered: no second
# page cache under it, so a dropped cache means reads really go to the disk.
scratch_fs() {
  local name=$1 type=$2 size=$3 mode=${4:-} img dev m
  mkdir -p "$bench_base"
  img="$(mktemp "$bench_base/pfs-bench-$name.XXXXXX.img")"
  scratch_imgs+=("$img")
  truncate -s "$size" "$img"
  if [[ $mode == --buffered ]]; then
    dev="$(losetup --find --show "$img")"
  else
    dev="$(losetup --find --show --direct-io=on "$img" 2>/dev/null || losetup --find --show "$img")"
  fi
  scratch_loops+=("$dev")
  case $type in
    btrfs) mkfs.btrfs -q -f "$dev" >/dev/null ;;
    # Inode tables and journal made now, not lazily by a kernel thread that
    # would write in the background during the measurements; no blocks
    # reserved for root (the tools run as root anyway).
    ext4) mkfs.ext4 -q -F -m 0 -E lazy_itable_init=0,lazy_journal_init=0 "$dev" >/dev/null ;;
    *) die "scratch_fs: unknown file system type $type" ;;
  esac
  m="$(mktemp -d "/tmp/pfs-bench-$name.XXXXXX")"
  scratch_mnts+=("$m")
  scratch_mounted+=(0)
  mount "$dev" "$m"
  scratch_mounted[-1]=1
  fs_img=$img fs_dev=$dev fs_mnt=$m
}

# shm_dir NAME: a fresh directory in /dev/shm (tmpfs: outside the measured
# file systems, and its files stay in memory when the page cache is
# dropped), removed at exit; sets shm.
shm_dir() {
  shm="$(mktemp -d "/dev/shm/pfs-bench-$1.XXXXXX")"
  bench_tmp+=("$shm")
}

# Servers a script starts in the background go into bench_pids (kill at exit).

# bench_cleanup: the EXIT trap. Stops the servers, unmounts the scratch file
# systems (waiting a little for a busy one, then detaching it lazily),
# detaches their loop devices, removes the images and the tmpfs directories.
bench_cleanup() {
  local rc=$? k i pid
  trap - EXIT INT TERM
  for pid in "${bench_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${bench_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  cd /
  for ((k = ${#scratch_mnts[@]} - 1; k >= 0; k--)); do
    if [[ ${scratch_mounted[k]:-0} -eq 1 ]]; then
      for i in 1 2 3 4 5; do
        umount "${scratch_mnts[k]}" 2>/dev/null && { scratch_mounted[k]=0; break; }
        sleep 1
      done
      if [[ ${scratch_mounted[k]} -eq 1 ]]; then
        echo "bench: ${scratch_mnts[k]} is busy; detaching it lazily" >&2
        umount -l "${scratch_mnts[k]}" || true
      fi
    fi
    rmdir "${scratch_mnts[k]}" 2>/dev/null || true
  done
  for ((k = ${#scratch_loops[@]} - 1; k >= 0; k--)); do
    losetup -d "${scratch_loops[k]}" || echo "bench: could not detach ${scratch_loops[k]}" >&2
  done
  for ((k = ${#scratch_imgs[@]} - 1; k >= 0; k--)); do rm -f "${scratch_imgs[k]}"; done
  for ((k = ${#bench_tmp[@]} - 1; k >= 0; k--)); do rm -rf "${bench_tmp[k]}"; done
  exit "$rc"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# private_pachctl DIR: runs a copy of pachctl and of its non-system
# libraries (libpfs) from DIR from now on (sets PACHCTL, and pachctl_orig to
# the original): a run takes long, and a rebuild in the work tree meanwhile
# would otherwise mix two versions in one set of figures. LD_LIBRARY_PATH
# wins over the binary's RUNPATH; it holds only those copies, so other tools
# are unaffected.
private_pachctl() {
  local dir=$1 so
  pachctl_orig="$PACHCTL"
  mkdir -p "$dir/lib"
  cp "$PACHCTL" "$dir/pachctl"
  while read -r so; do
    case "$so" in /lib/*|/lib64/*|/usr/*) ;; *) cp -L "$so" "$dir/lib/" ;; esac
  done < <(ldd "$PACHCTL" | awk '$2 == "=>" && $3 ~ /^\// {print $3}')
  export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  PACHCTL="$dir/pachctl"
  "$PACHCTL" --version >/dev/null || die "the copy of pachctl does not run"
}

# build_info [HINT]: header lines: when pachctl_orig was built (it or
# libpfs, the newer), the repo's HEAD, and a WARNING (+ HINT) when sources
# changed since.
build_info() {
  local built
  built=$(stat -c %Y "$pachctl_orig" $(ldd "$pachctl_orig" | awk '$2 == "=>" && $3 ~ /^\// && $3 !~ /^\/(lib|lib64|usr)\// {print $3}') | sort -n | tail -1)
  echo "  built: $(date -d "@$built" '+%F %T'); repo HEAD: $(git -C "$repo_root" log -1 --format='%h %ci' 2>/dev/null || echo '?')"
  if [[ -n "$(find "$repo_root/libpfs" "$repo_root/pachctl" \( -name '*.cc' -o -name '*.h' \) -newermt "@$built" 2>/dev/null | head -1)" ]]; then
    echo "  WARNING: sources are newer than this build${1:-}"
  fi
}

# machine_desc: "N CPUs, X GiB RAM, kernel K", for the header.
machine_desc() {
  echo "$(nproc) CPUs, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r)"
}

# log MSG: a time-stamped progress line (with the load average if log_load=1).
log() {
  if [[ $log_load == 1 ]]; then echo "[$(date +%T)] (load $(cut -d' ' -f1 /proc/loadavg)) $*"
  else echo "[$(date +%T)] $*"; fi
}

# pfs STORE ARG...: pachctl on that store.
pfs() { "$PACHCTL" --store "$1" "${@:2}"; }

# random_files DIR N DIGITS: N files of 4 KiB of random bytes in DIR, named
# f followed by a DIGITS-digit number from 0.
random_files() {
  mkdir -p "$1"
  head -c $(( $2 * 4096 )) /dev/urandom | (cd "$1" && split -b 4096 -d -a "$3" - f)
}

# size_label MIB: "1 GiB" for 1024, "64 MiB" for 64.
size_label() { if (( $1 % 1024 == 0 )); then echo "$(( $1 / 1024 )) GiB"; else echo "$1 MiB"; fi; }

# ------------------------------------------------------------ measuring --

# drop_caches: the start of a cold run; what is read next comes from disk.
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# timed VAR [--cold] [--sync DIR] [--allow RC] CMD...: runs CMD and stores its
# wall time, in seconds with 6 decimals, in VAR. --cold drops the page cache
# first (not timed); --sync DIR adds a syncfs of DIR's file system to the
# timed span, after CMD succeeded. CMD's stdout goes to $timed_stdout
# (default /dev/null), its stderr to $timed_stderr (default $shm/err), shown
# when CMD fails; a failure stops the benchmark, except exit status RC, which
# timed returns (VAR set too).
timed() {
  local _t_var=$1 _t_cold=0 _t_sync="" _t_allow="" _t_err=${timed_stderr:-$shm/err} _t0 _t1 _t_rc=0
  shift
  while :; do
    case ${1:-} in
      --cold) _t_cold=1; shift ;;
      --sync) _t_sync=$2; shift 2 ;;
      --allow) _t_allow=$2; shift 2 ;;
      *) break ;;
    esac
  done
  [[ $_t_cold == 0 ]] || drop_caches
  _t0=$EPOCHREALTIME
  "$@" >"$timed_stdout" 2>"$_t_err" || _t_rc=$?
  if [[ $_t_rc -eq 0 && -n $_t_sync ]]; then sync -f "$_t_sync" || _t_rc=$?; fi
  _t1=$EPOCHREALTIME
  printf -v "$_t_var" '%s' "$(calc "$_t1-$_t0" 6)"
  [[ $_t_rc -eq 0 ]] && return 0
  [[ $_t_rc == "$_t_allow" ]] && return "$_t_rc"
  cat "$_t_err" >&2
  die "failed (exit $_t_rc): $*"
}

# since T0 [DECIMALS]: seconds (3 decimals) from T0, an $EPOCHREALTIME, to now.
since() { calc "$EPOCHREALTIME-$1" "${2:-3}"; }

# rotated I TOOL...: the tools, one a line, starting at the I-th (mod their
# number), so that no tool always inherits the previous one's leftover work
# (with two tools: the order alternates).
rotated() {
  local i=$1; shift
  local a=("$@") n=$# k
  for ((k = 0; k < n; k++)); do echo "${a[(i + k) % n]}"; done
}

# calc EXPR [DECIMALS]: EXPR evaluated by awk, with DECIMALS (3) decimals.
calc() { awk "BEGIN{printf \"%.${2:-3}f\", ($1)}"; }

# median [--fmt FMT] VALUE...: the middle value as given, or the mean of the
# two middle ones, printed with FMT (default %.6f).
median() {
  local fmt=%.6f
  [[ ${1:-} == --fmt ]] && { fmt=$2; shift 2; }
  printf '%s\n' "$@" | sort -g | awk -v f="$fmt" '{v[NR]=$1} END{ if (NR%2) print v[(NR+1)/2]; else printf f "\n", (v[NR/2]+v[NR/2+1])/2 }'
}

# best VALUE...: the largest (for a rate, when the best run is the figure).
best() { printf '%s\n' "$@" | sort -g | tail -1; }

# ms S: seconds as milliseconds, 1 decimal. list_ms / list_s S...: the runs
# as milliseconds (1 decimal) / seconds (3 decimals), space-separated.
ms() { calc "$1*1000" 1; }
list_ms() { local out="" x; for x in "$@"; do out+="$(ms "$x") "; done; echo "${out% }"; }
list_s() { local out="" x; for x in "$@"; do out+="$(calc "$x" 3) "; done; echo "${out% }"; }

# ------------------------------------------------------------- verdicts --

# ratio A B [DECIMALS]: A/B with DECIMALS (2) decimals; "-" when either is
# missing or B is a lower bound (">x", a timed-out run); ">r" when A is one.
ratio() {
  local num=$1 den=$2 d=${3:-2}
  [[ -z "$num" || -z "$den" || "$den" == \>* ]] && { echo "-"; return; }
  if [[ "$num" == \>* ]]; then echo ">$(calc "${num#>}/$den" "$d")"; else calc "$num/$den" "$d"; fi
}

# meets VALUE TEST: 1 when VALUE passes TEST (e.g. ">= 0.9"), 0 when not or
# unknown ("-"); a lower bound ">x" is tested as x.
meets() { if [[ "$1" == "-" ]]; then echo 0; else calc "${1#>} $2" 0; fi; }

# verdict NAME FIGURES RATIO GOAL OK(1/0): records a row of the targets table
# (print_targets), PASS when OK is 1, else FAIL (and failed=1); prints it at
# once too when the script set verdict_line.
verdict() {
  local v=PASS
  [[ $5 -eq 1 ]] || { v=FAIL; failed=1; }
  summary+=("$1|$2|$3|$4|$v")
  [[ -z $verdict_line ]] || printf "$verdict_line" "$v" "$1" "$3" "$4"
}

# print_targets HEADER [FORMAT]: the verdicts under HEADER ("|" between
# columns), aligned by column -t, or each row (and HEADER) by printf FORMAT.
print_targets() {
  if [[ -n ${2:-} ]]; then
    local row f
    for row in "$1" "${summary[@]}"; do
      IFS='|' read -r -a f <<<"$row"
      printf "$2" "${f[@]}"
    done
  else
    { echo "$1"; printf '%s\n' "${summary[@]}"; } | column -t -s '|' 2>/dev/null || printf '%s\n' "${summary[@]}"
  fi
}

# run_time_line TOTAL: the run time (TOTAL seconds) and the load at the end.
run_time_line() {
  echo "Run time: $1 s ($(calc "$1/60" 1) min); load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# bench_result [FAIL_LINE]: the last line, RESULT: PASS or FAIL (FAIL_LINE
# instead of the default), and the exit: 1 on a missed target with --strict
# (strict=1), else 0.
bench_result() {
  if [[ $failed -eq 1 ]]; then
    echo "${1:-RESULT: FAIL (at least one target missed)}"
    [[ $strict -eq 1 ]] && exit 1
  else
    echo "RESULT: PASS (all targets met)"
  fi
  exit 0
}
