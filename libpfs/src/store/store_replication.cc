// store_replication.cc: the store's side of send and receive. A commit is
// sent as a btrfs send stream (the kernel's, or one written from its tree:
// stream/); a received stream is applied to a work tree, frozen as a new
// commit (or as a replica of the sender's commit) and, for a branch, made
// its head. One receive runs at a time; a crashed one is swept.
#include "local_store.h"

#include <cstdlib>

#include <fmt/format.h>

#include "names.h"
#include "replication.h"

namespace pfs::detail {

namespace {

// PFS_SEND_NATIVE=0 makes the btrfs backend write streams as the
// portable one does (to test that writer; and where the kernel's sender
// misbehaves).
bool use_native_send() {
  const char* v = std::getenv("PFS_SEND_NATIVE");
  return !(v && std::string_view(v) == "0");
}

}  // namespace

Result<CommitInfo> LocalStore::send(std::string_view commit, Sink& out, const SendOptions& opts) {
  return guard([&] {
    CommitInfo c = must_read_commit(resolve_commit(commit));
    std::optional<CommitInfo> p;
    if (!opts.parent.empty()) {
      p = must_read_commit(resolve_commit(opts.parent));
      if (p->id == c.id)
        failf(ErrorCode::kInvalidArgument,
              "commit {} cannot be sent against itself; name an older commit as the parent", c.id);
    }
    if (use_native_send() && backend_->send_native(c.id, p ? p->id : "", out)) return c;
    stream::StreamWriter w(out);
    auto tree = tree_of(c.id);
    StreamName self = stream_name_of(c);
    if (p) {
      auto parent_tree = tree_of(p->id);
      StreamName pn = stream_name_of(*p);
      send_tree(*tree, parent_tree.get(), self, &pn, w);
    } else {
      send_tree(*tree, nullptr, self, nullptr, w);
    }
    return c;
  });
}

Result<ReceiveResult> LocalStore::receive(Source& in, const ReceiveOptions& opts) {
  return guard([&] {
    stream::StreamReader reader(in);
    stream::Command first;
    reader.next(first);  // subvol or snapshot: the reader allows nothing else first
    bool replica = opts.as_commit.has_value();
    CommitInfo c;
    if (replica) {
      c = *opts.as_commit;
      check_replica(c);
    } else {
      check_branch_name(opts.branch);
    }
    FileLock graph(locks_.get(), "graph", false);
    // A branch that receives is locked throughout, so that its head
    // cannot move under the new commit.
    std::optional<FileLock> branch_lock;
    std::optional<BranchState> st;
    if (!replica) {
      branch_lock.emplace(locks_.get(), "branch." + opts.branch, true);
      if (read_state_if_exists(opts.branch)) {
        st = load_and_recover(opts.branch);
        if (st->info.dirty)
          failf(ErrorCode::kConflict,
                "branch \"{}\" has uncommitted changes; commit them first (pachctl commit -b "
                "{}) or receive on another branch (-b)",
                opts.branch, opts.branch);
      }
      c.id = random_hex(kCommitIdLength / 2);
      c.parent = st ? st->info.head : "";
      c.branch = opts.branch;
      c.time_ns = now_ns();
      c.message = fmt::format("received {}", first.path);
    }
    std::string base = receive_base(first, opts.parent);
    CommitInfo base_info;
    if (!base.empty()) base_info = must_read_commit(base);
    // One receive at a time; the one in progress is recorded so that the
    // next one (or fsck --repair) removes what a crashed one left.
    FileLock receiving(locks_.get(), "receive", true);
    if (replica && read_commit(c.id))
      failf(ErrorCode::kAlreadyExists, "commit {} exists already in this store", c.id);
    sweep_receive();
    // Not synced: it only tells what to sweep after a killed process (a
    // power failure also loses what it would name: the work is not synced).
    write_file_atomic(meta_.get(), "receiving", c.id + "\n", false);
    ReceiveResult res;
    try {
      auto base_tree = tree_of(base);  // the empty tree when there is no base
      auto work = backend_->work_tree(base, c.id);
      crash_point("receive.after-work-tree");
      AppliedStream applied = naming(
          [&] { return replica ? "receiving commit " + c.id : fmt::format("receiving on branch \"{}\"", opts.branch); },
          [&] { return apply_stream(reader, first, *base_tree, base_info.stats, *work); });
      if (replica && (applied.stats.files != c.stats.files || applied.stats.bytes != c.stats.bytes))
        failf(ErrorCode::kInvalidArgument,
              "the received tree holds {} files / {} bytes, but commit {} has {} / {}: the stream "
              "does not match the commit",
              applied.stats.files, applied.stats.bytes, c.id, c.stats.files, c.stats.bytes);
      c.stats = applied.stats;
      res.skipped = std::move(applied.skipped);
      backend_->freeze(*work, c.id);
      work.reset();
      crash_point("receive.after-freeze");
      write_commit(c);  // the commit point
    } catch (...) {
      try {
        if (!read_commit(c.id)) {
          backend_->delete_commit_tree(c.id);
          backend_->discard_work(c.id);
        }
        unlink_if_exists(meta_.get(), "receiving");
      } catch (...) {  // the next receive or fsck --repair sweeps it
      }
      throw;
    }
    unlink_if_exists(meta_.get(), "receiving");
    if (!replica) {
      crash_point("receive.after-meta");
      point_branch(opts.branch, c, st, c.parent, false);
    }
    res.commit = c;
    res.stream_bytes = reader.bytes_read();
    return res;
  });
}

// A replica commit must be whole and fit the graph: its parents here.
void LocalStore::check_replica(const CommitInfo& c) {
  if (!is_commit_id(c.id))
    failf(ErrorCode::kInvalidArgument, "\"{}\" is not a commit id (32 hex digits)", c.id);
  check_branch_name(c.branch);
  for (const auto* p : {&c.parent, &c.merge_parent}) {
    if (p->empty()) continue;
    if (!is_commit_id(*p))
      failf(ErrorCode::kInvalidArgument, "\"{}\" is not a commit id (32 hex digits)", *p);
    if (!read_commit(*p))
      failf(ErrorCode::kNotFound,
            "commit {} needs its parent {}, which this store does not have; send that first", c.id,
            *p);
  }
}

// The commit an incremental stream applies to: the one given, else the
// one the stream names (pfs streams name it by id).
std::string LocalStore::receive_base(const stream::Command& first, const std::string& given) {
  if (first.cmd != stream::Cmd::kSnapshot) return {};
  std::string named = id_of_uuid(first.clone_uuid);
  if (!given.empty()) {
    std::string id = resolve_commit(given);
    if (id != named && read_commit(named))
      failf(ErrorCode::kInvalidArgument,
            "the stream was made against commit {}, not {}; receive it with -p {}", named, id,
            named);
    return id;
  }
  if (!read_commit(named))
    failf(ErrorCode::kNotFound,
          "the stream holds the changes since commit {}, which this store does not have; "
          "receive that commit first, or name the stream's parent with -p",
          named);
  return named;
}

// Removes what a receive that crashed left (no receive runs: the caller
// holds the receive lock).
void LocalStore::sweep_receive() {
  auto text = read_small_file(meta_.get(), "receiving");
  if (!text) return;
  std::string id = text->substr(0, text->find('\n'));
  if (is_commit_id(id) && !read_commit(id)) {
    backend_->delete_commit_tree(id);
    backend_->discard_work(id);
  }
  unlink_if_exists(meta_.get(), "receiving");
}

}  // namespace pfs::detail
