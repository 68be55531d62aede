#!/usr/bin/env bash
# bench/portable.sh — the portable backend of pfs against git, restic and
# cp -r, in one run, on one scratch ext4 file system.
#
#   bench/portable.sh [--strict] [--small-only] [PACHCTL]
#
# PACHCTL defaults to $PACHCTL, else build/pachctl/pachctl under the repo root.
# Runs as root: it makes a sparse image (in $BENCH_DIR, default /var/tmp),
# attaches it to a loop device (direct I/O), makes an ext4 file system on it
# and mounts it under /tmp/pfs-bench-portable.XXXXXX. All of that is undone on
# exit, also on failure or Ctrl-C. ext4 because that is where users get the
# portable backend (on btrfs, `init` picks the btrfs backend). Installs restic
# with apt-get when it is missing (as scripts/deps.sh does for its packages).
#
# Data sets (random content, made untimed on the scratch file system, which
# every tool reads from and writes to):
#   A: 100k files of 4 KiB, in 100 directories of 1000.
#   B: 4 files of 1 GiB.
#
# Tools, all ending with a sync of the scratch file system (syncfs), and each
# timed run preceded by `sync; echo 3 > /proc/sys/vm/drop_caches`:
#   pfs     `pachctl init --backend portable` (untimed), then the timed steps;
#   git     a repository whose work tree is the data set itself (git-dir kept
#           apart, so the other tools do not see it): `git add -A && git
#           commit`; gc.auto 0 so no background gc disturbs later figures;
#   restic  `restic init` (untimed), `restic backup DIR`, with its cache as
#           users have it but on the scratch file system (RESTIC_CACHE_DIR);
#   cp      `cp -r` (+ sync): the physical limit.
# Repository creation (pachctl/git/restic init) is not timed: it is O(1) and
# restic's includes a deliberate key-derivation delay.
#
# Steps, per data set:
#   1. first commit of the whole data set: pfs `put-file -r data DIR &&
#      commit`; git add -A + commit; restic backup; cp -r. Data set A: median
#      of $BENCH_REPS runs (each from a fresh repository, tools in rotated
#      order); data set B: $BENCH_BIG_REPS runs (default 1, a run moves 4 GiB
#      per tool and git needs minutes).
#   2. a commit after changing 1% of the data, in place, untimed:
#        A: 1% of the files (1000) get new random content (same size, same
#           inode); each round takes another 1% of a fixed random permutation
#           of all files, so the rounds change disjoint sets of files spread
#           over all directories;
#        B: in each file, ten regions of (file size / 1024) bytes (1 MiB for
#           1 GiB: 0.98% of the bytes) get new random bytes; region i is at a
#           random 4 KiB-aligned offset in the i-th tenth of the file (so they
#           never overlap); each round draws new offsets.
#      pfs is told what changed, as a user who knows it would: A:
#      `put-file -r data CHG && commit`, CHG a directory holding only the
#      changed files (hard links into the data set, made untimed) at their
#      paths, which put-file -r merges into the branch; B: for each changed
#      region, `put-file --offset OFF data/F` with the region's bytes (read
#      from the file with dd), then commit: pfs writes what changed, as a
#      user who updates regions of a big file does. git: `git add -A && git commit`
#      (it finds the changes from its index). restic: `restic backup DIR` again
#      (it skips unchanged files by its parent snapshot). cp: copies only the
#      changed files over its copy (A: the 1000 files; B: the whole 4 files).
#      The figure is the median over the $BENCH_CHANGE_COMMITS (10) rounds of
#      step 4; the first round's time is printed too. On data set B, git and
#      cp run in the first round only (git stores each changed 1 GiB file
#      whole again, no delta above core.bigFileThreshold: ten rounds would
#      need 40 GiB and ~half an hour; its size after ten is extrapolated).
#   3. reading the second commit (after round 1) back into an empty directory,
#      cold cache, + sync: pfs `get-file -c COMMIT -r . OUT`; git `git worktree add --detach OUT COMMIT`; restic `restic restore
#      latest --target OUT`; cp `cp -r DIR OUT` (physical limit). Every
#      restored tree is compared with the data set (diff -r, untimed). Median
#      of $BENCH_REPS runs on A; one run on B.
#   4. storage (du -sb: apparent bytes; allocated bytes printed too) of the
#      store / git-dir / restic repository after the first commit, and after
#      the first commit plus ten 1%-change commits (rounds 1-10 of step 2,
#      each changing other data), and the ratio.
#
# Targets (PASS/FAIL; git's, restic's and cp's figures are printed for every
# step, with ratios, also where there is no target):
#   (a) A, first commit: pfs at least 1.5x faster than git;
#   (b) A, first commit: pfs time <= 1.5 x cp -r + sync;
#   (c) A and B: the 1%-change commit at least 10x faster than the first;
#   (d) A and B: store size after the ten 1%-change commits <= 1.2 x the size
#       after the first commit.
# Exits 0 even when a target fails, unless --strict is given (then exit 1).
# --small-only: data set A only (a quicker run).
#
# Knobs (environment), defaults at the issue's sizes:
#   BENCH_SMALL_FILES (100000), BENCH_SMALL_PER_DIR (1000), BENCH_BIG_FILES (4),
#   BENCH_BIG_SIZE_MB (1024), BENCH_REPS (3), BENCH_BIG_REPS (1),
#   BENCH_PFS_READ_REPS (BENCH_REPS), BENCH_CHANGE_COMMITS (10), BENCH_DIR (/var/tmp),
#   BENCH_IMAGE_SIZE (40G), BENCH_SEED (1), BENCH_GIT_TIMEOUT (900: seconds
#   for one git commit or checkout on B; past it git is reported as "> N s"),
#   BENCH_GIT_COMPRESSION (unset: git's default; e.g. 0 for no zlib).
# A smoke run: BENCH_SMALL_FILES=10000 BENCH_BIG_SIZE_MB=256 bench/portable.sh
# BENCH_QUICK=1: a quick run that only shows the script works (figures are
# meaningless): A = 1000 files in 10 directories, B = 1 file of 16 MiB,
# 2 reps, 2 change rounds, a 4G image; a knob set explicitly still wins.
# The harness (scratch file system, timing, medians, verdicts) is bench/lib.sh.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

small_only=0
bench_option() { [[ $1 == --small-only ]] && small_only=1; }
parse_args "$@"
knob SMALL_FILES BENCH_SMALL_FILES 100000 1000
knob SMALL_PER_DIR BENCH_SMALL_PER_DIR 1000 100
knob BIG_FILES BENCH_BIG_FILES 4 1
knob BIG_MB BENCH_BIG_SIZE_MB 1024 16
knob REPS BENCH_REPS 3 2
knob BIG_REPS BENCH_BIG_REPS 1
knob PFS_READ_REPS BENCH_PFS_READ_REPS "$REPS"
knob ROUNDS BENCH_CHANGE_COMMITS 10 2
knob IMAGE_SIZE BENCH_IMAGE_SIZE 40G 4G
knob SEED BENCH_SEED 1
knob GIT_TIMEOUT BENCH_GIT_TIMEOUT 900
knob GIT_COMPRESSION BENCH_GIT_COMPRESSION ""

need_root "loop device, mount, drop_caches"
find_pachctl
(( SMALL_FILES >= 100 && SMALL_PER_DIR >= 1 && SMALL_FILES % SMALL_PER_DIR == 0 )) ||
  die "BENCH_SMALL_FILES must be >= 100 and a multiple of BENCH_SMALL_PER_DIR"
(( BIG_MB >= 10 && BIG_FILES >= 1 && ROUNDS >= 1 && REPS >= 1 )) || die "bad size knobs"
(( ROUNDS * SMALL_FILES / 100 <= SMALL_FILES )) || die "BENCH_CHANGE_COMMITS must be <= 100"
install_missing restic
need_tools git restic mkfs.ext4 losetup mount umount awk perl jq xargs split diff timeout column

# Free space for the image: it is sparse and grows to the most ever written
# (the data set plus its copies in pfs, git, restic, cp and one restore).
small_mib=$(( SMALL_FILES * 4 / 1024 ))
big_mib=$(( small_only ? 0 : BIG_FILES * BIG_MB ))
need_free "$bench_base" $(( (small_mib * 8 > big_mib * 8 ? small_mib * 8 : big_mib * 8) + 2048 ))

# ---------------------------------------------------------------- scratch fs --

# ext4 because that is where users get the portable backend.
scratch_fs portable ext4 "$IMAGE_SIZE"
img=$fs_img loopdev=$fs_dev mnt=$fs_mnt
W="$mnt"
timed_stderr="$W/.stderr"   # a timed command's stderr
private_pachctl "$W/bin"

export RESTIC_PASSWORD="pfs-bench"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

# ------------------------------------------------------------------- helpers --

log_load=1
fmt_t() { [[ -z "$1" ]] && { echo "-"; return; }; [[ "$1" == \>* ]] && { echo "$1 s"; return; }; calc "$1" "$( (( $(calc "$1 < 10" 0) )) && echo 3 || echo 1)" | sed 's/$/ s/'; }
mib() { calc "$1/1048576" 1; }

declare -A T      # KEY -> space-separated wall times (s)
declare -A TO     # KEY -> the timeout (s) when the run timed out
declare -A SZ     # KEY -> bytes (apparent)
declare -A SZA    # KEY -> bytes (allocated)
med() { local v=${T[$1]:-}; if [[ -n "${TO[$1]:-}" ]]; then echo ">${TO[$1]}"; elif [[ -n "$v" ]]; then median $v; fi; }

# run_timed KEY CMD...: times CMD cold, + a sync of the scratch file system
# (stdout discarded), and appends the wall time (3 decimals) to T[KEY]. Exit
# status 124 (timeout) is recorded in TO[KEY]; any other failure stops the
# benchmark.
run_timed() {
  local key=$1 rc=0; shift
  timed last_t --cold --sync "$W" --allow 124 "$@" || rc=$?
  if [[ $rc -eq 124 ]]; then
    TO[$key]=$GIT_TIMEOUT
    echo "    $key: timed out after ${GIT_TIMEOUT} s"
    return 0
  fi
  last_t=$(calc "$last_t" 3)
  T[$key]+="$last_t "
  printf '    %-22s %s\n' "$key" "$(fmt_t "$last_t")"
}

size_of() {   # size_of KEY DIR: apparent and allocated bytes
  SZ[$1]=$(du -sb "$2" | cut -f1)
  SZA[$1]=$(du -s -B1 "$2" | cut -f1)
}

# ---- the tools: one function per tool and step; $ds is the data set (A/B),
# $src its directory. Each runs as one && chain (errexit does not apply
# inside a function called from `||`).

store() { echo "$W/pfs-$ds"; }
gitdir() { echo "$W/git-$ds"; }
resticrepo() { echo "$W/restic-$ds"; }
cpcopy() { echo "$W/cp-$ds"; }

reset_pfs() { rm -rf "$(store)" && pfs "$(store)" init --backend portable >/dev/null; }
reset_git() {
  local g; g=$(gitdir)
  rm -rf "$g" && git init -q --bare "$g" && git --git-dir="$g" config core.bare false &&
  git --git-dir="$g" config gc.auto 0 && git --git-dir="$g" config maintenance.auto false &&
  if [[ -n "$GIT_COMPRESSION" ]]; then git --git-dir="$g" config core.compression "$GIT_COMPRESSION"; fi
}
reset_restic() {
  rm -rf "$(resticrepo)" "$W/restic-cache" &&
  restic -r "$(resticrepo)" init >/dev/null 2>&1
}
reset_cp() { rm -rf "$(cpcopy)"; }

# git under a time limit (only ever reached on data set B).
git_commit() {
  timeout "$GIT_TIMEOUT" env GIT_DIR="$(gitdir)" GIT_WORK_TREE="$src" \
    bash -c 'git add -A && git commit -q -m "$1"' _ "$1"
}
restic_backup() { RESTIC_CACHE_DIR="$W/restic-cache" restic -r "$(resticrepo)" backup "$src"; }

first_pfs() { pfs "$(store)" put-file -r data "$src" && pfs "$(store)" commit -m first; }
first_git() { git_commit first; }
first_restic() { restic_backup; }
first_cp() { cp -r "$src" "$(cpcopy)"; }

change_pfs() {
  if [[ $ds == A ]]; then
    pfs "$(store)" put-file -r data "$W/chg" || return
  else
    local f off len
    while read -r f off len; do
      dd if="$src/$f" iflag=skip_bytes,count_bytes skip="$off" count="$len" bs=1M status=none |
        pfs "$(store)" put-file --offset "$off" "data/$f" || return
    done < "$W/B.regions"
  fi
  pfs "$(store)" commit -m "change $round"
}
change_git() { git_commit "change $round"; }
change_restic() { restic_backup; }
change_cp() {
  if [[ $ds == A ]]; then cp -r "$W/chg/." "$(cpcopy)/"; else cp "${big_paths[@]}" "$(cpcopy)/"; fi
}

read_pfs() { pfs "$(store)" get-file -c "$2" -r . "$1"; }   # read_pfs OUT COMMIT
read_git() { timeout "$GIT_TIMEOUT" git --git-dir="$(gitdir)" worktree add -q --detach "$1" "$2"; }
read_restic() { RESTIC_CACHE_DIR="$W/restic-cache" restic -r "$(resticrepo)" restore latest --target "$1"; }
read_cp() { cp -r "$src" "$1"; }

# Where each tool's restored copy of the data set lands, for the check.
restored_root() {
  case $1 in pfs) echo "$2/data" ;; git) echo "$2" ;; restic) echo "$2$src" ;; cp) echo "$2" ;; esac
}

# ---- data sets and changes

make_small() {   # 100 directories of 1000 files of 4 KiB (by default)
  local n=$(( SMALL_FILES / SMALL_PER_DIR )) i w=3
  (( SMALL_PER_DIR > 1000 )) && w=${#SMALL_PER_DIR}
  mkdir -p "$src"
  for ((i = 0; i < n; i++)); do random_files "$(printf '%s/d%03d' "$src" "$i")" "$SMALL_PER_DIR" "$w"; done
  # A fixed random permutation of all files; round k changes its k-th 1%.
  (cd "$src" && find . -type f -printf '%P\n' | sort) |
    perl -e 'srand($ARGV[0]); my @l = <STDIN>;
             for (my $i = @l - 1; $i > 0; $i--) { my $j = int rand($i + 1); @l[$i, $j] = @l[$j, $i]; }
             print @l' "$SEED" > "$W/A.perm"
}

make_big() {
  local f
  mkdir -p "$src"
  for f in "${big_names[@]}"; do head -c $(( BIG_MB * 1048576 )) /dev/urandom > "$src/$f"; done
}

# change_data ROUND: changes 1% of the data set in place (see the header).
change_data() {
  local k=$1
  if [[ $ds == A ]]; then
    local n=$(( SMALL_FILES / 100 ))
    sed -n "$(( (k - 1) * n + 1 )),$(( k * n ))p" "$W/A.perm" > "$W/chg.list"
    (cd "$src" && perl -e 'open(my $r, "<", "/dev/urandom") or die;
        while (my $p = <STDIN>) { chomp $p; read($r, my $b, 4096) == 4096 or die;
          open(my $f, ">", $p) or die "$p: $!"; print $f $b or die; close($f) or die; }' < "$W/chg.list")
    rm -rf "$W/chg" && mkdir "$W/chg"
    (cd "$src" && xargs -d '\n' cp -l --parents -t "$W/chg" < "$W/chg.list")
  else
    # Also lists the regions ("NAME OFFSET LENGTH") for pfs's put-file --offset.
    perl -e 'my ($seed, @files) = @ARGV; srand($seed);
      open(my $r, "<", "/dev/urandom") or die;
      for my $p (@files) {
        my $size = -s $p; my $len = int($size / 1024); my $slice = int($size / 10);
        open(my $f, "+<", $p) or die "$p: $!"; binmode $f;
        (my $name = $p) =~ s{.*/}{};
        for my $i (0 .. 9) {
          my $off = $i * $slice + int(rand(($slice - $len) / 4096)) * 4096;
          read($r, my $b, $len) == $len or die;
          seek($f, $off, 0) or die; print $f $b or die;
          print "$name $off $len\n";
        }
        close($f) or die;
      }' "$(( SEED * 1000 + k ))" "${big_paths[@]}" > "$W/B.regions"
  fi
}

# ------------------------------------------------------------------ the run --

run_start=$EPOCHREALTIME
echo "pfs portable backend benchmark"
echo "  pachctl: $pachctl_orig ($("$PACHCTL" --version 2>/dev/null | head -1)), run from a copy in $W/bin"
build_info " (run: ninja -C build)"
echo "  machine: $(machine_desc), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  scratch: $img ($IMAGE_SIZE sparse) on $loopdev, ext4 mounted at $mnt"
echo "  tools: $(git --version), $(restic version | cut -d' ' -f1-2), $(cp --version | head -1)"
echo "  data: A = $SMALL_FILES files of 4 KiB in $(( SMALL_FILES / SMALL_PER_DIR )) directories;" \
  "$( ((small_only)) && echo "B skipped (--small-only)" || echo "B = $BIG_FILES files of $BIG_MB MiB")"
echo "  reps: first commit A: $REPS, B: $BIG_REPS; 1%-change commits: $ROUNDS rounds (median);" \
  "read A: pfs $PFS_READ_REPS, others $REPS; read B: 1"
echo "  1% change, A: $(( SMALL_FILES / 100 )) files (a different 1% each round, spread over all directories) get new random content in place;"
echo "    pfs: put-file -r of a directory holding only those files (hard links), then commit"
echo "  1% change, B: in each file, ten regions of $(( BIG_MB )) KiB (file size / 1024) at random 4 KiB-aligned offsets, one per tenth of the file, overwritten with random bytes;"
echo "    pfs: put-file --offset of each changed region, then commit; git: add -A + commit; restic: backup again; cp: copies the changed files"
echo "  git: default settings$([[ -n $GIT_COMPRESSION ]] && echo ", core.compression $GIT_COMPRESSION"), gc.auto 0; time limit on B: $GIT_TIMEOUT s per command"
quick_note
echo

big_names=()
for ((i = 0; i < BIG_FILES; i++)); do big_names+=("f$i"); done
datasets=(A)
((small_only)) || datasets+=(B)
tools=(pfs git restic cp)
declare -A commit2    # data set -> the pfs commit id read back in step 3
per_get=""

for ds in "${datasets[@]}"; do
  src="$W/src-$ds"
  big_paths=()
  for f in "${big_names[@]}"; do big_paths+=("$src/$f"); done
  if [[ $ds == A ]]; then
    log "data set A: generating $SMALL_FILES files of 4 KiB"
    make_small; reps=$REPS
  else
    log "data set B: generating $BIG_FILES files of $BIG_MB MiB"
    make_big; reps=$BIG_REPS
  fi
  SZ[$ds.data]=$(du -sb "$src" | cut -f1)
  sync

  # ---- 1. first commit
  log "$ds 1. first commit of the whole data set (+ sync), $reps run(s) per tool"
  for ((rep = 0; rep < reps; rep++)); do
    for tool in $(rotated "$rep" "${tools[@]}"); do
      "reset_$tool"
      [[ -n "${TO[$ds.$tool.first]:-}" ]] && continue
      run_timed "$ds.$tool.first" "first_$tool"
    done
  done
  for tool in pfs git restic; do
    case $tool in pfs) d=$(store) ;; git) d=$(gitdir) ;; restic) d=$(resticrepo) ;; esac
    [[ -z "${TO[$ds.$tool.first]:-}" ]] && size_of "$ds.$tool.1" "$d"
  done

  # ---- 2. (and 4.) 1%-change commits; 3. read back after the first of them
  for ((round = 1; round <= ROUNDS; round++)); do
    change_data "$round"
    log "$ds 2. round $round/$ROUNDS: commit after changing 1% (+ sync)"
    for tool in $(rotated "$round" "${tools[@]}"); do
      if [[ $ds == B && $round -gt 1 && ( $tool == git || $tool == cp ) ]]; then continue; fi
      [[ -n "${TO[$ds.$tool.first]:-}${TO[$ds.$tool.change]:-}" ]] && continue
      run_timed "$ds.$tool.change" "change_$tool"
    done
    if [[ $round -eq 1 ]]; then
      [[ $ds == B && -z "${TO[B.git.first]:-}${TO[B.git.change]:-}" ]] && size_of "B.git.2" "$(gitdir)"
      commit2[$ds]=$(pfs "$(store)" --json inspect-commit master | jq -r .id)
      gitc=$(git --git-dir="$(gitdir)" rev-parse HEAD 2>/dev/null || true)

      # ---- 3. read the commit back
      log "$ds 3. read commit 2 back into an empty directory (cold cache, + sync)"
      rreps=1; [[ $ds == A ]] && rreps=$REPS
      pfs_rreps=1; [[ $ds == A ]] && pfs_rreps=$PFS_READ_REPS
      for ((rep = 0; rep < rreps; rep++)); do
        for tool in $(rotated "$rep" "${tools[@]}"); do
          if [[ $tool == pfs && $rep -ge $pfs_rreps ]]; then continue; fi
          [[ $tool == git && -n "${TO[$ds.git.first]:-}${TO[$ds.git.change]:-}${TO[$ds.git.read]:-}" ]] && continue
          out="$W/out-$tool"
          rm -rf "$out"
          case $tool in
            pfs) run_timed "$ds.pfs.read" read_pfs "$out" "${commit2[$ds]}" ;;
            git) run_timed "$ds.git.read" read_git "$out" "$gitc" ;;
            restic) run_timed "$ds.restic.read" read_restic "$out" ;;
            cp) run_timed "$ds.cp.read" read_cp "$out" ;;
          esac
          if [[ -z "${TO[$ds.$tool.read]:-}" ]]; then
            # The tools must give back exactly the data set (git's checkout
            # also has a .git file, which names its git-dir).
            diff -r -q -x .git "$src" "$(restored_root "$tool" "$out")" >/dev/null ||
              die "$tool restored other content than the data set ($ds)"
          fi
          rm -rf "$out"
          [[ $tool == git ]] && git --git-dir="$(gitdir)" worktree prune
        done
      done
    fi
  done

  # ---- 4. storage after the first commit and ten 1%-change commits
  for tool in pfs git restic; do
    case $tool in pfs) d=$(store) ;; git) d=$(gitdir) ;; restic) d=$(resticrepo) ;; esac
    [[ $ds == B && $tool == git ]] && continue
    [[ -n "${TO[$ds.$tool.first]:-}${TO[$ds.$tool.change]:-}" ]] && continue
    size_of "$ds.$tool.N" "$d"
  done
  ncommits=$(pfs "$(store)" --json list-commit | jq length)
  log "$ds 4. storage (du -sb), after 1 and after $ncommits commits (pfs)"
  # Where pfs's growth went: directory manifests (a "pfs-tree" manifest or
  # page, or a "pfs-dir" page index) vs file contents, chunks, chunk lists.
  read -r man_n man_b dat_n dat_b < <(find "$(store)/portable/objects" -type f ! -name '.tmp.*' -print0 |
    perl -0ne 'chomp; open(my $f, "<", $_) or next; read($f, my $h, 11);
      my $s = -s $_; if ($h =~ /^pfs-(tree|dir) 1\n/) { $mn++; $mb += $s } else { $dn++; $db += $s }
      END { printf "%d %d %d %d\n", $mn, $mb, $dn, $db }')
  echo "    pfs objects: $man_n manifests ($(mib "$man_b") MiB), $dat_n contents, chunks and chunk lists ($(mib "$dat_b") MiB)"
  for tool in pfs git restic; do
    [[ -n "${SZ[$ds.$tool.1]:-}" ]] || continue
    printf '    %-6s after 1 commit: %9s MiB (allocated %9s MiB)   after %d: %9s MiB (allocated %9s MiB)\n' "$tool" \
      "$(mib "${SZ[$ds.$tool.1]}")" "$(mib "${SZA[$ds.$tool.1]}")" "$(( ROUNDS + 1 ))" \
      "$( [[ -n "${SZ[$ds.$tool.N]:-}" ]] && mib "${SZ[$ds.$tool.N]}" || echo -)" \
      "$( [[ -n "${SZA[$ds.$tool.N]:-}" ]] && mib "${SZA[$ds.$tool.N]}" || echo -)"
  done
  if [[ $ds == B && -n "${SZ[B.git.2]:-}" ]]; then
    # git keeps every version of a file above core.bigFileThreshold whole:
    # each round adds what round 1 added.
    SZ[B.git.N]=$(( SZ[B.git.1] + ROUNDS * (SZ[B.git.2] - SZ[B.git.1]) ))
    SZ[B.git.Nest]=1
    echo "    git    after 2 commits: $(mib "${SZ[B.git.2]}") MiB; after $(( ROUNDS + 1 )) extrapolated: $(mib "${SZ[B.git.N]}") MiB (not run)"
  fi
  t0=$EPOCHREALTIME
  gc_out=$(pfs "$(store)" gc)
  echo "    (info) pachctl gc: $gc_out, in $(since "$t0" 2) s; store now $(mib "$(du -sb "$(store)" | cut -f1)") MiB"

  # Free the space for the next data set.
  rm -rf "$src" "$(store)" "$(gitdir)" "$(resticrepo)" "$W/restic-cache" "$(cpcopy)" "$W/chg"
  echo
done

# ------------------------------------------------------------------ summary --

total=$(since "$run_start" 0)
echo "Summary (times: wall seconds incl. sync, cold cache; speed-up = other tool's time / pfs's time, > 1: pfs faster)"
{
  echo "DATA|STEP|pfs|git|restic|cp|git/pfs|restic/pfs|cp/pfs"
  for ds in "${datasets[@]}"; do
    for step in first change read; do
      case $step in
        first) label="1. first commit" ;;
        change) label="2. 1%-change commit (median)" ;;
        read) label="3. read commit back" ;;
      esac
      p=$(med "$ds.pfs.$step"); g=$(med "$ds.git.$step"); r=$(med "$ds.restic.$step"); c=$(med "$ds.cp.$step")
      echo "$ds|$label|$(fmt_t "$p")|$(fmt_t "$g")|$(fmt_t "$r")|$(fmt_t "$c")|$(ratio "$g" "$p")|$(ratio "$r" "$p")|$(ratio "$c" "$p")"
      if [[ $step == change ]]; then
        first_of() { local v=${T[$1]:-}; echo "${v%% *}"; }
        echo "$ds|   (round 1 only)|$(fmt_t "$(first_of "$ds.pfs.change")")|$(fmt_t "$(first_of "$ds.git.change")")|$(fmt_t "$(first_of "$ds.restic.change")")|$(fmt_t "$(first_of "$ds.cp.change")")|||"
      fi
    done
  done
} | column -t -s '|'
echo
echo "Storage (du -sb, MiB; size ratio = other / pfs, > 1: pfs smaller)"
{
  echo "DATA|AFTER|pfs|git|restic|git/pfs|restic/pfs"
  for ds in "${datasets[@]}"; do
    echo "$ds|data set itself|$(mib "${SZ[$ds.data]}")|||| "
    for when in 1 N; do
      row=()
      for tool in pfs git restic; do
        v=${SZ[$ds.$tool.$when]:-}
        if [[ -z "$v" ]]; then row+=("-")
        elif [[ $tool == git && $when == N && -n "${SZ[$ds.git.Nest]:-}" ]]; then row+=("$(mib "$v") (extrapolated)")
        else row+=("$(mib "$v")"); fi
      done
      label=$([[ $when == 1 ]] && echo "1 commit" || echo "$(( ROUNDS + 1 )) commits (1 + $ROUNDS changes)")
      echo "$ds|$label|${row[0]}|${row[1]}|${row[2]}|$(ratio "${SZ[$ds.git.$when]:-}" "${SZ[$ds.pfs.$when]:-}")|$(ratio "${SZ[$ds.restic.$when]:-}" "${SZ[$ds.pfs.$when]:-}")"
    done
    echo "$ds|growth ratio N/1|$(ratio "${SZ[$ds.pfs.N]:-}" "${SZ[$ds.pfs.1]:-}")|$(ratio "${SZ[$ds.git.N]:-}" "${SZ[$ds.git.1]:-}")|$(ratio "${SZ[$ds.restic.N]:-}" "${SZ[$ds.restic.1]:-}")||"
  done
} | column -t -s '|'

# ---- targets
p=$(med A.pfs.first); g=$(med A.git.first); c=$(med A.cp.first)
r=$(ratio "$g" "$p")
verdict "(a) A first commit: pfs vs git" "$(fmt_t "$p") vs $(fmt_t "$g")" "git/pfs $r" ">= 1.5" "$(meets "$r" ">= 1.5")"
r=$(ratio "$p" "$c")
verdict "(b) A first commit: pfs vs cp -r" "$(fmt_t "$p") vs $(fmt_t "$c")" "pfs/cp $r" "<= 1.5" "$(meets "$r" "<= 1.5")"
for ds in "${datasets[@]}"; do
  p1=$(med "$ds.pfs.first"); pc=$(med "$ds.pfs.change")
  r=$(ratio "$p1" "$pc")
  verdict "(c) $ds 1%-change commit vs first (pfs)" "$(fmt_t "$pc") vs $(fmt_t "$p1")" "first/change $r" ">= 10" "$(meets "$r" ">= 10")"
done
for ds in "${datasets[@]}"; do
  r=$(ratio "${SZ[$ds.pfs.N]}" "${SZ[$ds.pfs.1]}")
  verdict "(d) $ds storage $(( ROUNDS + 1 )) vs 1 commit (pfs)" \
    "$(mib "${SZ[$ds.pfs.N]}") vs $(mib "${SZ[$ds.pfs.1]}") MiB" "N/1 $r" "<= 1.2" "$(meets "$r" "<= 1.2")"
done
echo
echo "Targets"
print_targets "TARGET|FIGURES (pfs vs reference)|RATIO|GOAL|RESULT"
echo
run_time_line "$total"
bench_result
