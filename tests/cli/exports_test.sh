#!/usr/bin/env bash
# libpfs.so exports the public API only: symbols of namespace pfs (and the
# typeinfo of its classes), nothing of pfs::detail, nothing of the libraries
# inside it (Boost.Asio, std instances). STYLE.md: the split is enforced.
set -eu -o pipefail
LIB=${LIBPFS_SO:?}
syms=$(nm -D --defined-only "$LIB" | c++filt | awk '{$1=""; $2=""; sub(/^ +/, ""); print}')
FAILS=0 CHECKS=0
check() { if [ -z "$2" ]; then CHECKS=$((CHECKS+1)); else echo "FAIL: $1:" >&2; echo "$2" | head -20 >&2; FAILS=$((FAILS+1)); fi; }
check "internal symbols exported" "$(grep 'pfs::detail' <<<"$syms" || true)"
check "symbols outside namespace pfs exported" "$(grep -v '^pfs::\|^typeinfo for pfs::\|^typeinfo name for pfs::\|^vtable for pfs::' <<<"$syms" || true)"
for s in 'pfs::open_store(' 'pfs::connect(' 'pfs::Server::create(' 'pfs::replicate(' 'typeinfo for pfs::Client'; do
  grep -qF "$s" <<<"$syms" && CHECKS=$((CHECKS+1)) || { echo "FAIL: $s is not exported" >&2; FAILS=$((FAILS+1)); }
done
# libcurl and libarchive are loaded on first use (src/base/lazy_lib.h), not
# at every start: a local command maps none of their 40 libraries.
needed=$(readelf -d "$LIB" | awk '/NEEDED/ {print $NF}')
check "libpfs.so links libcurl or libarchive" "$(grep -E 'libcurl|libarchive' <<<"$needed" || true)"
echo "$CHECKS passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
