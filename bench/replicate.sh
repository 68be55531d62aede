#!/usr/bin/env bash
# bench/replicate.sh — pfs replication (clone, push) against btrfs send |
# btrfs receive, in one run, between two scratch btrfs file systems (issue 5).
#
#   bench/replicate.sh [--strict] [PACHCTL]
#
# PACHCTL defaults to $PACHCTL, else build/pachctl/pachctl under the repo root.
# Runs as root: it makes three sparse images (in $BENCH_DIR, default
# /var/tmp), attaches each to a loop device (direct I/O, so a dropped page
# cache means reading from the disk), and mounts them under /tmp: SRC (btrfs,
# the source store), DST (btrfs, "the other machine") and EXT4 (ext4, for the
# portable store of (c)). All of that is undone on exit, also on failure or
# Ctrl-C. pachctl runs from a private copy (with libpfs) in /dev/shm, so a
# rebuild in the work tree during the run does not mix two versions.
#
# Data: BENCH_FILES (10,000) files of random, incompressible bytes, BENCH_MIB
# (1024 MiB) in all, sizes drawn uniformly between 4 KiB and ~2x the mean
# (~100 KiB), in BENCH_DIRS (10) directories; data/d00/f00000 is exactly 4 KiB
# (the file (b) changes). Made in tmpfs, then `put-file -r` + `commit` into
# the SRC store (so the store's extents are its own, not reflinks).
#
# Every timed step: `sync; echo 3 > /proc/sys/vm/drop_caches` first (cold
# cache, both tools read from disk), and ends with `sync -f` of the file
# system written (pfs syncs by itself; the sync is added for both).
#
#   (a) full clone: `pachctl clone SRC DST/clone` vs
#       `btrfs send SRC/btrfs/commits/<id> | btrfs receive DST/recv` (the
#       store's commit subvolume is read-only: btrfs send's input as is).
#       BENCH_REPS (3) runs each, the order alternating; median; throughput
#       = data MiB / time. Target: pfs/btrfs throughput >= 0.8.
#   (b) incremental push: the fixed overhead of a stream is the size of
#       `pachctl send -p C C'` with C' committed right after C, no change
#       (and the bytes of pushing C'). Then BENCH_PUSH_REPS (3) rounds of:
#       put-file of 4 KiB of new random bytes over data/d00/f00000, commit,
#       `pachctl --json push DST/clone` (+ sync) timed cold; its "bytes"
#       is the stream size. Each round also pushes a second such change with
#       a warm cache (information). Targets (medians): bytes <= 16 KiB +
#       the fixed overhead; cold push time <= (a)'s median clone time / 50.
#       The reference, no target: `btrfs send -p` of the same pair of commit
#       subvolumes, its stream size, and piped into `btrfs receive DST/binc`
#       (+ sync; it finds the parent by the received UUID, which pfs sets to
#       the commit id), timed as the push, cold and warm, order alternating.
#   (c) information: `pachctl clone --backend portable SRC EXT4/portable`
#       (btrfs -> portable on ext4) and `pachctl clone --backend btrfs
#       EXT4/portable DST/from-portable` (portable -> btrfs), BENCH_INFO_REPS
#       (1) runs each, throughput.
#   Phases (information, where the time of (a) and (b) goes), each cold:
#       pachctl send > /dev/null, btrfs send > /dev/null, pachctl receive <
#       stream file (tmpfs), btrfs receive -f stream file (+ sync), for the
#       full commit; process start-up, pachctl send -p, and pachctl receive
#       of a one-file incremental stream, for (b). With strace installed: the
#       time a warm push (and btrfs send -p | receive) spends in the calls
#       that wait for the disk (fsync, syncfs, the btrfs ioctls).
#
# Every copy is checked untimed (same commit ids; diff -r of the trees, the
# first run of each tool). Prints one line per figure, a summary table, and
# exits 0 even when a target fails, unless --strict is given (then exit 1).
#
# Knobs (environment): BENCH_DIR, BENCH_IMAGE_SIZE (8G, each image),
# BENCH_FILES, BENCH_MIB, BENCH_DIRS, BENCH_REPS, BENCH_PUSH_REPS,
# BENCH_INFO_REPS, BENCH_SEED (1).
# A smoke run: BENCH_FILES=500 BENCH_MIB=50 BENCH_IMAGE_SIZE=2G bench/replicate.sh
# BENCH_QUICK=1: that smoke run's sizes, with 2 clone and 2 push rounds (the
# figures are meaningless); a knob set explicitly still wins.
# The harness (scratch file systems, timing, medians, verdicts) is bench/lib.sh.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_args "$@"
knob NFILES BENCH_FILES 10000 500
knob DATA_MIB BENCH_MIB 1024 50
knob NDIRS BENCH_DIRS 10
knob REPS BENCH_REPS 3 2
knob PUSH_REPS BENCH_PUSH_REPS 3 2
knob INFO_REPS BENCH_INFO_REPS 1
knob IMAGE_SIZE BENCH_IMAGE_SIZE 8G 2G
knob SEED BENCH_SEED 1

need_root "loop devices, mount, drop_caches"
find_pachctl
(( NFILES >= NDIRS && NDIRS >= 1 && DATA_MIB * 1048576 >= NFILES * 8192 && REPS >= 1 && PUSH_REPS >= 1 )) ||
  die "bad size knobs (need BENCH_FILES >= BENCH_DIRS, and at least 8 KiB per file on average)"
need_tools btrfs mkfs.btrfs mkfs.ext4 losetup mount umount awk perl jq split diff cmp column truncate
need_free "$bench_base" $(( DATA_MIB * 6 + 3072 ))
need_free /dev/shm $(( DATA_MIB * 2 + 256 ))

# --------------------------------------------------------- scratch file systems --

# scratch NAME FSTYPE: a scratch file system (see scratch_fs) and its header line.
scratch() {
  scratch_fs "repl-$1" "$2" "$IMAGE_SIZE"
  echo "  scratch $1: $fs_img ($IMAGE_SIZE sparse) on $fs_dev, $2 mounted at $fs_mnt"
}

shm_dir repl
timed_stdout="$shm/out"   # the steps' JSON output, read after timing
private_pachctl "$shm/bin"   # on tmpfs: not dropped with the page cache

# ------------------------------------------------------------------- helpers --

log_load=1
tp() { calc "$DATA_MIB/$1" 0; }   # throughput, MiB/s, of the data set moved in $1 s
head_of() { pfs "$1" --json inspect-commit master | jq -r .id; }

# rm_btrfs PATH: removes a tree holding subvolumes (a btrfs store, or what
# btrfs receive made), deepest subvolume first, then waits for the btrfs
# cleaner to free their extents, so it does not run during the next timed step.
rm_btrfs() {
  local p=$1 fsm
  [[ -e "$p" ]] || return 0
  fsm=$(df -P "$p" | awk 'NR==2{print $6}')
  find "$p" -depth -inum 256 -type d -exec btrfs subvolume delete -c {} + >/dev/null
  rm -rf "$p"
  btrfs subvolume sync "$fsm" >/dev/null
}

# The tools. Each one && chain ends with the sync of what it wrote.
clone_pfs() { pfs "$S/store" --json clone "$S/store" "$1" && sync -f "$1"; }
clone_btrfs() {
  btrfs send -q "$S/store/btrfs/commits/$C0" | btrfs receive "$1" && sync -f "$1"
}

verdict_line='  => %s (%s: %s, goal %s)\n'

# ------------------------------------------------------------------ the run --

run_start=$EPOCHREALTIME
echo "pfs replication benchmark"
echo "  pachctl: $pachctl_orig ($("$PACHCTL" --version 2>/dev/null | head -1)), run from a copy in $shm/bin"
build_info
echo "  machine: $(machine_desc), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  reference: $(btrfs --version)"
scratch src btrfs; S=$fs_mnt
scratch dst btrfs; D=$fs_mnt
scratch ext4 ext4; E=$fs_mnt
echo "  data: $NFILES files, $DATA_MIB MiB of random bytes, in $NDIRS directories"
echo "  cache: cold (page cache dropped) before every timed step; each ends with sync -f"
echo "  reps: clone $REPS (median, order alternating), push $PUSH_REPS (median), (c) $INFO_REPS"
quick_note
echo

log "generating the data in tmpfs and committing it to the SRC store"
bytes_total=$(( DATA_MIB * 1048576 ))
mkdir -p "$shm/data"
t0=$EPOCHREALTIME
head -c "$bytes_total" /dev/urandom | perl -e '
  use strict; use warnings;
  my ($n, $dirs, $total, $seed, $root) = @ARGV;
  srand($seed);
  my $mean = $total / $n;
  # File 0 is exactly 4 KiB; the others uniform in [4 KiB, 2 mean - 4 KiB],
  # then scaled so that all add up to $total exactly.
  my @s = (4096);
  my $sum = 0;
  for my $i (1 .. $n - 1) { my $x = 4096 + rand(2 * $mean - 8192); push @s, $x; $sum += $x; }
  my $f = ($total - 4096) / $sum;
  my $acc = 4096;
  for my $i (1 .. $n - 1) { $s[$i] = int($s[$i] * $f); $acc += $s[$i]; }
  $s[$n - 1] += $total - $acc;
  binmode STDIN;
  my $per = int(($n + $dirs - 1) / $dirs);
  for my $i (0 .. $n - 1) {
    my $d = sprintf("%s/d%02d", $root, int($i / $per));
    mkdir $d unless -d $d;
    my $got = read(STDIN, my $buf, $s[$i]);
    die "short read" unless defined $got && $got == $s[$i];
    open(my $o, ">", sprintf("%s/f%05d", $d, $i)) or die "$d: $!";
    binmode $o; print $o $buf or die; close($o) or die;
  }' "$NFILES" "$NDIRS" "$bytes_total" "$SEED" "$shm/data"
[[ $(stat -c %s "$shm/data/d00/f00000") -eq 4096 ]] || die "data/d00/f00000 is not 4 KiB"
nmade=$(find "$shm/data" -type f | wc -l)
echo "  made $nmade files, $(find "$shm/data" -type f -printf '%s\n' | awk '{s+=$1} END{print s}') bytes, sizes $(find "$shm/data" -type f -printf '%s\n' | sort -n | sed -n '1p;$p' | paste -sd- ) bytes, in $(since "$t0" 1) s"
pfs "$S/store" init --backend btrfs >/dev/null
t0=$EPOCHREALTIME
pfs "$S/store" put-file -r data "$shm/data" >/dev/null
C0=$(pfs "$S/store" --json commit -m "full data set" | jq -r .id)
sync -f "$S"
echo "  SRC commit $C0: $(pfs "$S/store" --json inspect-commit "$C0" | jq -r '"\(.files) files, \(.bytes) bytes"'), ingest $(since "$t0" 1) s"
rm -rf "$shm/data"
SNAP0="$S/store/btrfs/commits/$C0"
[[ $(btrfs property get -ts "$SNAP0" ro) == "ro=true" ]] || die "$SNAP0 is not a read-only subvolume"

# ---------------------------------------------------------- (a) full clone --

echo
log "(a) full clone SRC -> DST: pachctl clone vs btrfs send | btrfs receive (+ sync), cold, $REPS runs each"
pt=(); bt=()
for ((i = 0; i < REPS; i++)); do
  for tool in $(rotated "$i" pfs btrfs); do
    if [[ $tool == pfs ]]; then
      out="$D/clone-$i"
      timed t --cold clone_pfs "$out"; pt+=("$t")
      sent=$(jq -r '.bytes' "$shm/out" 2>/dev/null || echo "?")
      printf '    pachctl clone:              %8.3f s = %5s MiB/s  (stream %s bytes)\n' "$t" "$(tp "$t")" "$sent"
      if [[ $i -eq 0 ]]; then
        [[ $(head_of "$out") == "$C0" ]] || die "the clone's master is not $C0"
        diff -r -q "$SNAP0" "$out/btrfs/commits/$C0" >/dev/null || die "the clone's tree differs from the source's"
      fi
      # The last clone stays: (b) pushes to it.
      if [[ $i -eq $((REPS - 1)) ]]; then DC=$out; else rm_btrfs "$out"; fi
    else
      out="$D/recv-$i"
      mkdir "$out"
      timed t --cold clone_btrfs "$out"; bt+=("$t")
      printf '    btrfs send | btrfs receive: %8.3f s = %5s MiB/s\n' "$t" "$(tp "$t")"
      if [[ $i -eq 0 ]]; then
        diff -r -q "$SNAP0" "$out/$C0" >/dev/null || die "btrfs receive's tree differs from the source's"
      fi
      rm_btrfs "$out"
    fi
  done
done
p_med=$(median "${pt[@]}"); b_med=$(median "${bt[@]}")
CLONE_MED=$p_med
echo "  pachctl clone + sync:                median $(calc "$p_med" 3) s = $(tp "$p_med") MiB/s   (runs s: $(list_s "${pt[@]}"))"
echo "  btrfs send | btrfs receive + sync:   median $(calc "$b_med" 3) s = $(tp "$b_med") MiB/s   (runs s: $(list_s "${bt[@]}"))"
r=$(ratio "$b_med" "$p_med")
verdict "(a) full clone, $DATA_MIB MiB in $NFILES files" "$(tp "$p_med") vs $(tp "$b_med") MiB/s" \
  "pfs/btrfs $r" ">= 0.8" "$(meets "$r" ">= 0.8")"

# --------------------------------------- (c) portable store on ext4 (info) --

echo
log "(c) information: clone btrfs -> portable (ext4) and portable -> btrfs (+ sync), cold, $INFO_REPS run(s)"
tpo=(); tbo=()
for ((i = 0; i < INFO_REPS; i++)); do
  rm -rf "$E/portable"
  timed t --cold bash -c '"$1" --store "$2" --json clone --backend portable "$2" "$3" && sync -f "$3"' _ "$PACHCTL" "$S/store" "$E/portable"
  tpo+=("$t")
  printf '    btrfs -> portable: %8.3f s = %5s MiB/s  (stream %s bytes)\n' "$t" "$(tp "$t")" "$(jq -r .bytes "$shm/out")"
  [[ $(head_of "$E/portable") == "$C0" ]] || die "the portable clone's master is not $C0"
  rm_btrfs "$D/from-portable"
  timed t --cold bash -c '"$1" --store "$2" --json clone --backend btrfs "$2" "$3" && sync -f "$3"' _ "$PACHCTL" "$E/portable" "$D/from-portable"
  tbo+=("$t")
  printf '    portable -> btrfs: %8.3f s = %5s MiB/s  (stream %s bytes)\n' "$t" "$(tp "$t")" "$(jq -r .bytes "$shm/out")"
  if [[ $i -eq 0 ]]; then
    [[ $(head_of "$D/from-portable") == "$C0" ]] || die "the clone of the portable store's master is not $C0"
    diff -r -q "$SNAP0" "$D/from-portable/btrfs/commits/$C0" >/dev/null || die "btrfs -> portable -> btrfs changed the tree"
  fi
done
po_med=$(median "${tpo[@]}"); bo_med=$(median "${tbo[@]}")
echo "  portable store: $(du -sb "$E/portable" | cut -f1) bytes (du -sb)"
rm -rf "$E/portable"; rm_btrfs "$D/from-portable"

# ---------------------------------------------------- (b) incremental push --

echo
log "(b) one 4 KiB file changed, commit, pachctl push DST (+ sync)"
# The fixed overhead: a commit with no change since its parent.
C1=$(pfs "$S/store" --json commit -m "no change" | jq -r .id)
OVH=$(pfs "$S/store" send -p "$C0" "$C1" | wc -c)
BOVH=$(btrfs send -q -p "$SNAP0" "$S/store/btrfs/commits/$C1" | wc -c)
pfs "$S/store" --json push "$DC" > "$shm/push.json"
OVH_PUSH=$(jq -r .bytes "$shm/push.json")
[[ $(head_of "$DC") == "$C1" ]] || die "push of the unchanged commit did not move DST's master"
echo "  fixed overhead (no change between two commits): pachctl send -p $OVH bytes; push sent $OVH_PUSH bytes; btrfs send -p $BOVH bytes"
# change_commit: a new 4 KiB over data/d00/f00000, commit; sets $prev, $cur.
change_commit() {
  head -c 4096 /dev/urandom > "$shm/f4k"
  pfs "$S/store" put-file data/d00/f00000 "$shm/f4k" >/dev/null
  prev=$(head_of "$S/store")
  cur=$(pfs "$S/store" --json commit -m "4 KiB change" | jq -r .id)
}
push_pfs() { pfs "$S/store" --json push "$DC" && sync -f "$D"; }
check_push() {
  [[ $(head_of "$DC") == "$cur" ]] || die "push did not move DST's master to $cur"
  pfs "$DC" get-file -c "$cur" data/d00/f00000 | cmp -s - "$shm/f4k" || die "DST has other bytes in the changed file"
}
# The reference: btrfs send -p of the same pair of commit subvolumes into
# btrfs receive on DST (which finds the parent by its received UUID, which
# pfs sets to the commit id on both sides), + sync.
mkdir -p "$D/binc"
inc_btrfs() {
  btrfs send -q -p "$S/store/btrfs/commits/$prev" "$S/store/btrfs/commits/$cur" |
    btrfs receive -q "$D/binc" && sync -f "$D"
}
qt=(); qb=(); qs=(); qbs=(); wt=(); wb=(); it=(); iw=()
for ((i = 0; i < PUSH_REPS; i++)); do
  for mode in cold warm; do
    change_commit
    c=--cold; [[ $mode == warm ]] && c=""
    k=$i; [[ $mode == warm ]] && k=$((i + 1))
    for tool in $(rotated "$k" pfs btrfs); do
      if [[ $tool == pfs ]]; then
        timed tp_ $c push_pfs; n=$(jq -r .bytes "$shm/out")
        check_push
      else
        timed tb_ $c inc_btrfs
        cmp -s "$D/binc/$cur/data/d00/f00000" "$shm/f4k" || die "btrfs receive has other bytes in the changed file"
      fi
    done
    if [[ $mode == cold ]]; then
      qt+=("$tp_"); qb+=("$n"); it+=("$tb_")
      s=$(pfs "$S/store" send -p "$prev" "$cur" | wc -c); qs+=("$s")
      bs=$(btrfs send -q -p "$S/store/btrfs/commits/$prev" "$S/store/btrfs/commits/$cur" | wc -c); qbs+=("$bs")
      printf '    round %d, cold: pachctl push %7.1f ms, %6s bytes sent (pachctl send -p: %s; btrfs send -p: %s bytes); btrfs send -p | receive %7.1f ms\n' \
        "$((i + 1))" "$(ms "$tp_")" "$n" "$s" "$bs" "$(ms "$tb_")"
    else
      wt+=("$tp_"); wb+=("$n"); iw+=("$tb_")
      printf '    round %d, warm: pachctl push %7.1f ms, %6s bytes sent; btrfs send -p | receive %7.1f ms\n' \
        "$((i + 1))" "$(ms "$tp_")" "$n" "$(ms "$tb_")"
    fi
  done
done
q_med=$(median "${qt[@]}"); w_med=$(median "${wt[@]}"); i_med=$(median "${it[@]}"); iw_med=$(median "${iw[@]}")
qb_med=$(calc "$(median "${qb[@]}")" 0); qs_med=$(calc "$(median "${qs[@]}")" 0); qbs_med=$(calc "$(median "${qbs[@]}")" 0)
limit_t=$(calc "$CLONE_MED/50" 6)
limit_b=$(( 16384 + OVH ))
echo "  push, cold: median $(ms "$q_med") ms (runs ms: $(list_ms "${qt[@]}")); warm: median $(ms "$w_med") ms (runs ms: $(list_ms "${wt[@]}"))"
echo "  btrfs send -p | btrfs receive + sync, cold: median $(ms "$i_med") ms (runs ms: $(list_ms "${it[@]}")); warm: median $(ms "$iw_med") ms (runs ms: $(list_ms "${iw[@]}"))"
echo "  bytes sent: median $qb_med (pachctl send -p: $qs_med; btrfs send -p: $qbs_med); limit 16384 + $OVH = $limit_b"
echo "  time limit: full clone $(calc "$CLONE_MED" 3) s / 50 = $(ms "$limit_t") ms"
verdict "(b) push of a 4 KiB change: bytes sent" "$qb_med B (btrfs send -p: $qbs_med B)" \
  "$qb_med B" "<= 16 KiB + $OVH B" "$(( qb_med <= limit_b ? 1 : 0 ))"
r=$(ratio "$CLONE_MED" "$q_med" 1)
verdict "(b) push of a 4 KiB change: time (cold)" "$(ms "$q_med") ms vs clone $(calc "$CLONE_MED" 2) s" \
  "clone/push $r" ">= 50" "$(meets "$r" ">= 50")"

# Where a push waits: the system calls that wait for the disk (fsync,
# syncfs, and the btrfs ioctls, which commit a transaction), summed by strace
# (warm cache, strace only stopping on those calls), for pachctl push and
# for btrfs send -p | btrfs receive, both + sync -f.
if command -v strace >/dev/null; then
  cat > "$shm/stsum.pl" <<'PERL'
my (%n, %s, %pend);
while (<>) {
  my ($pid, $rest) = /^(\d+)\s+(.*)$/ or next;
  if ($rest =~ /^(\w+)\((.*)<unfinished \.\.\.>$/) { $pend{$pid} = [$1, $2]; next; }
  my ($sc, $args, $t);
  if ($rest =~ /^<\.\.\. (\w+) resumed>(.*)<([\d.]+)>$/) {
    ($sc, $t) = ($1, $3);
    $args = ($pend{$pid} && $pend{$pid}[0] eq $sc) ? $pend{$pid}[1] : "";
    delete $pend{$pid};
  } elsif ($rest =~ /^(\w+)\((.*)<([\d.]+)>$/) {
    ($sc, $args, $t) = ($1, $2, $3);
  } else { next; }
  my $k = $sc;
  $k = "ioctl $1" if $sc eq "ioctl" && $args =~ /\b(BTRFS_IOC_\w+|FS_IOC_\w+|FI\w+|TC\w+)/;
  $n{$k}++; $s{$k} += $t;
}
my $tot = 0;
for my $k (sort { $s{$b} <=> $s{$a} } keys %n) {
  next if $s{$k} < 0.0001;
  printf "      %-36s %4d calls %8.1f ms\n", $k, $n{$k}, $s{$k} * 1000; $tot += $s{$k};
}
printf "      %-36s            %8.1f ms\n", "total", $tot * 1000;
PERL
  for tool in pfs btrfs; do
    change_commit
    if [[ $tool == pfs ]]; then
      cmd=(bash -c '"$1" --store "$2" push "$3" && sync -f "$3"' _ "$PACHCTL" "$S/store" "$DC")
    else
      cmd=(bash -c 'btrfs send -q -p "$1" "$2" | btrfs receive -q "$3" && sync -f "$3"' _
           "$S/store/btrfs/commits/$prev" "$S/store/btrfs/commits/$cur" "$D/binc")
    fi
    t0=$EPOCHREALTIME
    strace --seccomp-bpf -f -T -e trace=fsync,fdatasync,syncfs,sync,ioctl -o "$shm/strace.out" "${cmd[@]}" >/dev/null
    el=$(since "$t0" 6)
    [[ $tool == pfs ]] && what="pachctl push + sync" || what="btrfs send -p | btrfs receive + sync"
    echo "    $what, warm, under strace: $(ms "$el") ms in all; waiting in:"
    perl "$shm/stsum.pl" "$shm/strace.out"
  done
  pfs "$S/store" push "$DC" >/dev/null   # DST has the last commit again
fi

# ------------------------------------------------------- phases (info) --

echo
log "phases (information, each cold; receive + sync -f)"
declare -A PH
phase() {   # phase NAME CMD...
  local t
  timed t --cold "${@:2}"
  PH[$1]=$t
  printf '    %-52s %9.3f s  %s\n' "$1" "$t" "$( [[ $1 == *full* ]] && echo "= $(tp "$t") MiB/s" )"
}
phase "pachctl send (full) > /dev/null" bash -c '"$1" --store "$2" send "$3" > /dev/null' _ "$PACHCTL" "$S/store" "$C0"
phase "btrfs send (full) > /dev/null" bash -c 'btrfs send -q "$1" > /dev/null' _ "$SNAP0"
phase "pachctl send (full) > tmpfs file" bash -c '"$1" --store "$2" send "$3" > "$4"' _ "$PACHCTL" "$S/store" "$C0" "$shm/full.stream"
pfs "$D/rx" init --backend btrfs >/dev/null
phase "pachctl receive (full) < tmpfs file" bash -c '"$1" --store "$2" receive < "$3" && sync -f "$2"' _ "$PACHCTL" "$D/rx" "$shm/full.stream"
echo "      (stream: $(stat -c %s "$shm/full.stream") bytes)"
rm -f "$shm/full.stream"; rm_btrfs "$D/rx"
phase "btrfs send (full) -f tmpfs file" btrfs send -q -f "$shm/full.stream" "$SNAP0"
mkdir "$D/brx"
phase "btrfs receive (full) -f tmpfs file" bash -c 'btrfs receive -q -f "$1" "$2" && sync -f "$2"' _ "$shm/full.stream" "$D/brx"
echo "      (stream: $(stat -c %s "$shm/full.stream") bytes)"
rm_btrfs "$D/brx"
pfs "$D/rx" init --backend btrfs >/dev/null
phase "pachctl receive (full) < btrfs send's file" bash -c '"$1" --store "$2" receive < "$3" && sync -f "$2"' _ "$PACHCTL" "$D/rx" "$shm/full.stream"
rm -f "$shm/full.stream"; rm_btrfs "$D/rx"
# (b)'s parts: a process that does nothing; send -p of one change; receive
# of it on DST (the commit is made here and not pushed).
phase "pachctl --version (start-up)" "$PACHCTL" --version
phase "pachctl list-commit on DST (open, list)" "$PACHCTL" --store "$DC" list-commit
change_commit
phase "pachctl send -p (4 KiB change) > tmpfs file" bash -c '"$1" --store "$2" send -p "$3" "$4" > "$5"' _ "$PACHCTL" "$S/store" "$prev" "$cur" "$shm/inc.stream"
phase "pachctl receive (4 KiB change) < tmpfs file" bash -c '"$1" --store "$2" receive < "$3" && sync -f "$2"' _ "$PACHCTL" "$DC" "$shm/inc.stream"
phase "btrfs send -p (4 KiB change) > /dev/null" bash -c 'btrfs send -q -p "$1" "$2" > /dev/null' _ "$S/store/btrfs/commits/$prev" "$S/store/btrfs/commits/$cur"

# ------------------------------------------------------------------ summary --

total=$(since "$run_start" 0)
echo
echo "Figures (cold cache, + sync; medians)"
{
  echo "STEP|pfs|btrfs send/receive|ratio"
  echo "(a) full clone, $DATA_MIB MiB, $NFILES files|$(calc "$p_med" 2) s = $(tp "$p_med") MiB/s|$(calc "$b_med" 2) s = $(tp "$b_med") MiB/s|pfs/btrfs $(ratio "$b_med" "$p_med")"
  echo "(b) stream fixed overhead (no change)|$OVH B (push: $OVH_PUSH B)|$BOVH B|"
  echo "(b) push of a 4 KiB change, bytes|$qb_med B|$qbs_med B (send -p)|"
  echo "(b) push of a 4 KiB change, time|$(ms "$q_med") ms cold, $(ms "$w_med") ms warm|$(ms "$i_med") ms cold, $(ms "$iw_med") ms warm|clone/push $(ratio "$CLONE_MED" "$q_med" 1); btrfs: clone/inc $(ratio "$b_med" "$i_med" 1)"
  echo "(c) clone btrfs -> portable (ext4)|$(calc "$po_med" 2) s = $(tp "$po_med") MiB/s|-|"
  echo "(c) clone portable -> btrfs|$(calc "$bo_med" 2) s = $(tp "$bo_med") MiB/s|-|"
} | column -t -s '|'
echo
echo "Targets"
print_targets "TARGET|FIGURES|RATIO|GOAL|RESULT"
echo
run_time_line "$total"
bench_result
