#!/bin/bash
# check-layers.sh SRC_DIR STAMP: refuses an #include "..." in libpfs/src that
# names a path instead of a file. Each layer's library sees only its own
# folder and the folders of the layers below it (libpfs/meson.build), so a
# plain "file.h" of a higher layer does not compile; a path such as
# "../http/http_engine.h" would step around that, and is refused here.
# Run by every build (the layer-check target); docs/architecture.md.
set -euo pipefail
src=$1 stamp=$2
bad=$(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*/' "$src" || true)
if [[ -n $bad ]]; then
  echo "check-layers: an include in libpfs/src names a path; include the file by name" >&2
  echo "(a layer may use only the layers below it: docs/architecture.md):" >&2
  echo "$bad" >&2
  exit 1
fi
touch "$stamp"
