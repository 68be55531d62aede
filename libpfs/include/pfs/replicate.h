// pfs/replicate.h: clone, push and pull -- copying commits with their
// history from one store to another, each a local store or a server.
//
//   auto from = pfs::open_store("/data/a"), to = pfs::connect("http://b:8080");
//   auto r = pfs::replicate(**from, **to);   // pushes every branch
//
// Only the commits the destination lacks travel, parents first, each as a
// btrfs send stream against its parent (Client::send / Client::receive),
// keeping ids, parents, messages and times. Then each branch's head moves
// on the destination, by compare-and-swap.
#pragma once

#include <pfs/export.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <pfs/client.h>
#include <pfs/result.h>

namespace pfs {

struct ReplicateProgress {
  std::uint64_t commits_done = 0;   // commits received so far
  std::uint64_t commits_total = 0;  // commits to send
  std::uint64_t bytes = 0;          // stream bytes sent so far (all commits)
  std::string commit;               // the commit on its way ("" at the end)
  bool finished = false;            // the last call
};

struct ReplicateOptions {
  // Only this branch (and the commits its head reaches); empty: every
  // branch of the source.
  std::string branch;
  // Move a destination branch that has commits the source's lacks (it
  // diverged) or uncommitted writes: its commits stay in the store, its
  // writes are lost. Without it such a branch is refused (kConflict) and
  // the others still move.
  bool force = false;
  // Called after each commit and now and then during one (from the
  // calling thread or the one that sends).
  std::function<void(const ReplicateProgress&)> progress;
};

struct ReplicateResult {
  std::vector<std::string> commits;     // ids sent, in the order sent
  std::uint64_t bytes = 0;              // stream bytes sent
  std::vector<std::string> updated;     // branches created or moved
  std::vector<std::string> up_to_date;  // branches already at the source's head
  // Branches refused (diverged, moved meanwhile, or with uncommitted
  // writes), each with why; everything else is done. Check it: a refusal is
  // not an error of the call.
  std::vector<std::string> refused;
};

// Copies what `to` lacks of `from`'s history and moves `to`'s branches to
// `from`'s heads. Safe to run again after a failure or interruption: it
// continues where it stopped. Branches it may not move are listed in
// `refused`. Errors: kNotFound (opts.branch), and what send and receive
// return.
PFS_EXPORT Result<ReplicateResult> replicate(Client& from, Client& to, const ReplicateOptions& opts = {});

}  // namespace pfs
