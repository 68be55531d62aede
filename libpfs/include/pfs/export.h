// pfs/export.h: PFS_EXPORT marks what libpfs.so exports: the public API.
// The library is built with hidden visibility, so everything else (the
// internals in pfs::detail) stays inside it.
#pragma once

#define PFS_EXPORT __attribute__((visibility("default")))
