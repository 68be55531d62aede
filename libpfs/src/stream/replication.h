// replication.h: trees as btrfs send streams and back, for any backend.
//
// send_tree writes a stream from TreeReaders (the portable backend's trees,
// or btrfs trees where the kernel's sender may not be used). apply_stream
// reads one into a WorkTree: it replays the stream's commands on a model of
// the tree held in memory -- names, hard links, file contents in scratch
// files -- so no path of a stream ever reaches the file system, and only
// at the end puts what changed into the work tree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <pfs/types.h>

#include "backend.h"
#include "send_stream.h"

namespace pfs::detail {

// How a stream names a commit: the subvolume's name, UUID and transid.
// pfs uses the commit id (32 hex digits = 16 bytes) as the UUID and the
// commit time as the transid.
struct StreamName {
  std::string name;
  stream::Uuid uuid{};
  std::uint64_t ctransid = 0;
};
StreamName stream_name_of(const CommitInfo& c);
// The commit id a UUID stands for (32 lower-case hex digits).
std::string id_of_uuid(const stream::Uuid& u);

// Writes `tree` as a full stream, or as the changes from `parent` (with
// `parent_name`) when parent is not null; ends the stream.
void send_tree(TreeReader& tree, TreeReader* parent, const StreamName& self,
               const StreamName* parent_name, stream::StreamWriter& out);

struct AppliedStream {
  TreeStats stats;                   // of the tree built
  std::vector<std::string> skipped;  // entries a pfs tree cannot hold
};

// Applies the rest of a stream whose first command (subvol or snapshot) is
// `first` onto `work`, a writable copy of `base` (whose figures are
// base_stats). Throws kInvalidArgument on any command that does not apply
// (a missing or existing path, a path through a symbolic link, a clone
// from an unknown subvolume, a final name pfs refuses); the work tree is
// then to be discarded.
AppliedStream apply_stream(stream::StreamReader& in, const stream::Command& first,
                           TreeReader& base, const TreeStats& base_stats, WorkTree& work);

}  // namespace pfs::detail
