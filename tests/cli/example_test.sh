#!/usr/bin/env bash
# libpfs as another program uses it: the example built by meson through
# dependency('libpfs') runs, and the installed headers, library and
# pkg-config file build a program with nothing but pkg-config.
source "$(dirname "$0")/lib.sh"
out=$("$EXAMPLE" "$T/example-store")
expect_contains "example output" "branch hello-" "$out"
expect_contains "example history" "master has 1 commit(s)" "$out"
expect_eq "store made by example is usable by pachctl" "hello, versioned world" \
  "$(pachctl --store "$T/example-store" get-file -c master greeting.txt)"

DEST=$LOCAL/destdir
meson install -C "$BUILD_ROOT" --destdir "$DEST" --quiet >/dev/null
PC=$(dirname "$(find "$DEST" -name libpfs.pc | head -1)")
[ -n "$PC" ] && ok || fail "libpfs.pc installed"
PREFIX=$(sed -n 's/^prefix=//p' "$PC/libpfs.pc")
flags=$(PKG_CONFIG_PATH=$PC PKG_CONFIG_SYSROOT_DIR=$DEST pkg-config --cflags --libs libpfs)
expect_contains "pkg-config libs" "-lpfs" "$flags"
# A sanitizer build of libpfs needs its program built with the same runtime.
SAN=()
[ "${PFS_SANITIZE:-}" = 1 ] && SAN=(-fsanitize=address,undefined)
g++ -std=c++20 "${SAN[@]}" "$SOURCE_ROOT/examples/hello_pfs.cc" -o "$LOCAL/hello" $flags
LIBDIR=$(dirname "$(find "$DEST" -name 'libpfs.so' | head -1)")
out=$(LD_LIBRARY_PATH=$LIBDIR "$LOCAL/hello" "$T/example-store-2")
expect_contains "pkg-config build runs" "master has 1 commit(s)" "$out"
# The static library links too.
g++ -std=c++20 "${SAN[@]}" "$SOURCE_ROOT/examples/hello_pfs.cc" -o "$LOCAL/hello-static" \
  $(PKG_CONFIG_PATH=$PC PKG_CONFIG_SYSROOT_DIR=$DEST pkg-config --cflags libpfs) \
  "$LIBDIR/libpfs.a" $(pkg-config --libs $(PKG_CONFIG_PATH=$PC PKG_CONFIG_SYSROOT_DIR=$DEST pkg-config --print-requires-private libpfs))
out=$("$LOCAL/hello-static" "$T/example-store-3")
expect_contains "static build runs" "master has 1 commit(s)" "$out"
finish
