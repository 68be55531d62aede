#!/usr/bin/env bash
# Every command has a man page and a README entry, and its options appear in
# its man page (help and man say the same thing).
set -eu -o pipefail
PACHCTL=${PACHCTL:?}
FAILS=0 CHECKS=0
cmds=$("$PACHCTL" --help | awk '/^Subcommands:/{on=1; next} on && /^  [a-z]/{sub(",", "", $1); print $1}')
[ -n "$cmds" ] || { echo "no commands found in --help" >&2; exit 1; }
for c in $cmds; do
  page=$SOURCE_ROOT/man/pachctl-$c.1
  if [ -f "$page" ]; then CHECKS=$((CHECKS+1)); else echo "FAIL: no man page for $c" >&2; FAILS=$((FAILS+1)); continue; fi
  grep -q "pachctl $c" "$SOURCE_ROOT/README.md" && CHECKS=$((CHECKS+1)) || { echo "FAIL: README lacks 'pachctl $c'" >&2; FAILS=$((FAILS+1)); }
  # Every example of the help is in the man page (roff escapes "-" as "\-").
  plain=$(sed -e 's/\\-/-/g' -e 's/\\(dq/"/g' -e 's/\\e/\\/g' "$page")
  while IFS= read -r ex; do
    [ -z "$ex" ] && continue
    if grep -qF -- "$ex" <<<"$plain"; then CHECKS=$((CHECKS+1)); else echo "FAIL: $page lacks the example: $ex" >&2; FAILS=$((FAILS+1)); fi
  done < <("$PACHCTL" help "$c" | awk '/^Examples:/{on=1; next} /^$/{on=0} on{sub(/^  /, ""); print}')
  for opt in $("$PACHCTL" help "$c" | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
    [ "$opt" = "--help" ] && continue
    if grep -q -- "${opt//-/\\\\-}\|$opt" "$page"; then CHECKS=$((CHECKS+1)); else echo "FAIL: $page lacks $opt" >&2; FAILS=$((FAILS+1)); fi
  done
done
[ -f "$SOURCE_ROOT/man/pachctl.1" ] && [ -f "$SOURCE_ROOT/man/libpfs.3" ] && CHECKS=$((CHECKS+1)) || { echo "FAIL: pachctl.1 or libpfs.3 missing" >&2; FAILS=$((FAILS+1)); }
echo "$CHECKS passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
