// replicate.cc: clone, push and pull on two Clients (local or remote).
//
// 1. Both sides list their commits; the commits the source's branches
//    reach and the destination lacks are sent parents first, each as a
//    stream against its first parent (which the destination has by then),
//    through a bounded pipe: one thread sends, this one receives.
// 2. Each branch moves on the destination by compare-and-swap against the
//    head it had when listed: a branch that moved meanwhile, diverged, or
//    has uncommitted writes is refused (unless forced), the others move.
// A commit becomes visible on the destination only when whole, so running
// replicate again after any failure continues where it stopped.
#include <pfs/replicate.h>

#include <map>
#include <set>
#include <thread>

#include "fail.h"
#include "pipe.h"

namespace pfs {
namespace {

using detail::BytePipe;

// The send side of the pipe, counting bytes for the progress reports.
class PipeSink final : public Sink {
 public:
  PipeSink(BytePipe& pipe, std::function<void(std::uint64_t)> on_bytes)
      : pipe_(pipe), on_bytes_(std::move(on_bytes)) {}
  Result<void> write(std::span<const char> data) override {
    if (!pipe_.push(data.data(), data.size())) {
      receiver_gone = true;
      return Error{ErrorCode::kIo, "the receiver stopped reading the stream"};
    }
    on_bytes_(data.size());
    return {};
  }
  // The send failed because the receiver had failed: its error is the one
  // to report.
  bool receiver_gone = false;

 private:
  BytePipe& pipe_;
  std::function<void(std::uint64_t)> on_bytes_;
};

template <class T>
T take(Result<T> r) {
  if (!r) throw detail::Fail{r.error()};
  return std::move(*r);
}

}  // namespace

Result<ReplicateResult> replicate(Client& from, Client& to, const ReplicateOptions& opts) {
  try {
    ReplicateResult out;
    LogOptions all;
    all.all = true;
    std::map<std::string, CommitInfo> src;
    for (auto& c : take(from.list_commits(all))) src.emplace(c.id, std::move(c));
    std::set<std::string> have;
    for (auto& c : take(to.list_commits(all))) have.insert(c.id);
    std::vector<BranchInfo> branches;
    if (opts.branch.empty()) {
      branches = take(from.list_branches());
    } else {
      branches.push_back(take(from.inspect_branch(opts.branch)));
    }
    std::map<std::string, BranchInfo> dst_branches;
    for (auto& b : take(to.list_branches())) dst_branches.emplace(b.name, b);

    // The commits to send, parents before children (iteratively: histories
    // may be long).
    std::vector<const CommitInfo*> order;
    std::set<std::string> placed;
    for (const auto& b : branches) {
      if (b.head.empty()) continue;
      std::vector<std::pair<std::string, bool>> stack{{b.head, false}};
      while (!stack.empty()) {
        auto [id, expanded] = stack.back();
        stack.pop_back();
        if (have.count(id) || placed.count(id)) continue;
        auto it = src.find(id);
        if (it == src.end())
          detail::failf(ErrorCode::kCorruption,
                        "the source lacks commit {}, which its history needs (run pachctl fsck "
                        "there)",
                        id);
        if (expanded) {
          placed.insert(id);
          order.push_back(&it->second);
          continue;
        }
        stack.push_back({id, true});
        for (const auto* p : {&it->second.merge_parent, &it->second.parent})
          if (!p->empty() && !have.count(*p) && !placed.count(*p)) stack.push_back({*p, false});
      }
    }

    ReplicateProgress progress;
    progress.commits_total = order.size();
    auto report = [&] {
      if (opts.progress) opts.progress(progress);
    };
    for (const CommitInfo* c : order) {
      progress.commit = c->id;
      report();
      BytePipe pipe;
      std::optional<Error> send_error;
      PipeSink sink(pipe, [&](std::uint64_t n) {
        progress.bytes += n;  // only the sending thread touches progress until join
        out.bytes += n;
        report();
      });
      std::thread sender([&] {
        SendOptions so;
        so.parent = c->parent;
        auto r = from.send(c->id, sink, so);
        if (r) {
          pipe.finish(true);
        } else {
          send_error = r.error();
          pipe.finish(false, r.error().message, r.error().code);
        }
      });
      ReceiveOptions ro;
      ro.parent = c->parent;
      ro.as_commit = *c;
      auto got = to.receive(pipe, ro);
      pipe.close();  // a receiver that failed early stops the sender
      sender.join();
      if (!got && got.error().code != ErrorCode::kAlreadyExists) {  // exists: a racing copy
        if (send_error && !sink.receiver_gone) return *send_error;
        return got.error();
      }
      out.commits.push_back(c->id);
      progress.commits_done++;
      report();
    }

    // The branches.
    auto reaches = [&](const std::string& from_id, const std::string& target) {
      std::vector<std::string> todo{from_id};
      std::set<std::string> seen;
      while (!todo.empty()) {
        std::string id = todo.back();
        todo.pop_back();
        if (id == target) return true;
        if (id.empty() || !seen.insert(id).second) continue;
        auto it = src.find(id);
        if (it == src.end()) continue;
        todo.push_back(it->second.parent);
        todo.push_back(it->second.merge_parent);
      }
      return false;
    };
    for (const auto& b : branches) {
      if (b.head.empty()) continue;  // no commits: nothing to point at
      auto d = dst_branches.find(b.name);
      std::string dst_head = d == dst_branches.end() ? "" : d->second.head;
      if (d != dst_branches.end() && dst_head == b.head) {
        out.up_to_date.push_back(b.name);
        continue;
      }
      bool fast_forward = dst_head.empty() || reaches(b.head, dst_head);
      if (!fast_forward && !opts.force) {
        out.refused.push_back(fmt::format(
            "branch \"{}\" has commits the source lacks (it diverged at {}); pull them first, or "
            "--force to move it anyway",
            b.name, dst_head));
        continue;
      }
      SetHeadOptions so;
      so.expected_head = dst_head;
      so.force = opts.force;
      auto r = to.set_branch_head(b.name, b.head, so);
      if (r) {
        out.updated.push_back(b.name);
      } else if (r.error().code == ErrorCode::kConflict) {
        out.refused.push_back(r.error().message);
      } else {
        return r.error();
      }
    }
    progress.commit.clear();
    progress.finished = true;
    report();
    return out;
  } catch (const detail::Fail& f) {
    return f.error;
  } catch (const std::exception& e) {
    return Error{ErrorCode::kInternal, e.what()};
  }
}

}  // namespace pfs
