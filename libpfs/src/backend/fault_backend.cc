// fault_backend.cc: the fault-injecting Backend wrapper (fault_backend.h).
#include "fault_backend.h"

#include <fmt/format.h>

#include "fault.h"

namespace pfs::detail {

namespace {

std::string on_branch(const std::string& branch) { return fmt::format("branch \"{}\"", branch); }
std::string of_commit(const std::string& id) { return "commit " + id; }

// A Staging whose writes are fault points. The wrapped backend gets its own
// Staging back at publish (backends downcast it).
class FaultStaging final : public Staging {
 public:
  FaultStaging(std::unique_ptr<Staging> inner, std::string branch)
      : inner_(std::move(inner)), branch_(std::move(branch)) {}
  Staging& inner() { return *inner_; }

  std::uint64_t add(const std::string& rel, Source& src) override {
    fault_point("write staged data", rel.empty()
                                         ? "for " + on_branch(branch_)
                                         : fmt::format("\"{}\" for {}", rel, on_branch(branch_)));
    return inner_->add(rel, src);
  }
  void sync() override {
    fault_point("sync staged data", "for " + on_branch(branch_));
    inner_->sync();
  }

 private:
  std::unique_ptr<Staging> inner_;
  std::string branch_;
};

// A WorkTree whose writes are fault points; readers pass through.
class FaultWorkTree final : public WorkTree {
 public:
  FaultWorkTree(std::unique_ptr<WorkTree> inner, std::string id)
      : inner_(std::move(inner)), id_(std::move(id)) {}
  WorkTree& inner() { return *inner_; }

  TreeReader& reader() override { return inner_->reader(); }
  using WorkTree::copy_file_from;
  void copy_file_from(TreeReader& from, const std::string& from_path,
                      const std::string& path) override {
    fault_point("copy", fmt::format("\"{}\" to \"{}\" of {}", from_path, path, of_commit(id_)));
    inner_->copy_file_from(from, from_path, path);
  }
  void make_dir(const std::string& path) override {
    fault_point("make directory", fmt::format("\"{}\" of {}", path, of_commit(id_)));
    inner_->make_dir(path);
  }
  void remove(const std::string& path) override {
    fault_point("remove", fmt::format("\"{}\" from {}", path, of_commit(id_)));
    inner_->remove(path);
  }
  UniqueFd open_scratch(std::uint64_t n, bool create) override {
    if (create) fault_point("create scratch file", fmt::format("{} for {}", n, of_commit(id_)));
    return inner_->open_scratch(n, create);
  }
  void place_scratch(std::uint64_t n, const std::string& path) override {
    fault_point("place scratch file", fmt::format("{} at \"{}\" of {}", n, path, of_commit(id_)));
    inner_->place_scratch(n, path);
  }

 private:
  std::unique_ptr<WorkTree> inner_;
  std::string id_;
};

// NOTE: like leveldb's EnvWrapper, every call is forwarded, so that a
// backend's own overrides of the defaulted calls (open_commit_file,
// send_native) still run; only the calls that write get a fault point.
class FaultBackend final : public Backend {
 public:
  explicit FaultBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  std::string_view name() const override { return inner_->name(); }

  std::unique_ptr<TreeReader> open_commit(const std::string& id) override {
    return inner_->open_commit(id);
  }
  std::unique_ptr<TreeReader> open_branch(const std::string& branch) override {
    return inner_->open_branch(branch);
  }
  std::unique_ptr<FileReader> open_commit_file(const std::string& id,
                                               const std::string& path) override {
    return inner_->open_commit_file(id, path);
  }
  std::unique_ptr<FileReader> open_branch_file(const std::string& branch,
                                               const std::string& path) override {
    return inner_->open_branch_file(branch, path);
  }
  bool has_commit_tree(const std::string& id) override { return inner_->has_commit_tree(id); }
  bool has_branch_tree(const std::string& branch) override {
    return inner_->has_branch_tree(branch);
  }
  std::vector<std::string> list_commit_trees() override { return inner_->list_commit_trees(); }
  std::vector<std::string> list_branch_trees() override { return inner_->list_branch_trees(); }

  void create_branch_tree(const std::string& branch, const std::string& from) override {
    fault_point("create the working tree of",
                from.empty() ? on_branch(branch)
                             : fmt::format("{} from {}", on_branch(branch), of_commit(from)));
    inner_->create_branch_tree(branch, from);
  }
  void delete_branch_tree(const std::string& branch) override {
    fault_point("delete the working tree of", on_branch(branch));
    inner_->delete_branch_tree(branch);
  }
  void reset_branch_tree(const std::string& branch, const std::string& id) override {
    fault_point("reset the working tree of",
                fmt::format("{} to {}", on_branch(branch), of_commit(id)));
    inner_->reset_branch_tree(branch, id);
  }

  std::unique_ptr<Staging> stage(const std::string& branch, StageKind kind) override {
    fault_point("stage",
                fmt::format("{} for {}", kind == StageKind::kDir ? "a directory" : "a file",
                            on_branch(branch)));
    return std::make_unique<FaultStaging>(inner_->stage(branch, kind), branch);
  }
  StatsDelta publish(const std::string& branch, Staging& staged, const std::string& path,
                     const Placement& where) override {
    fault_point("publish", fmt::format("\"{}\" on {}", path, on_branch(branch)));
    return inner_->publish(branch, unwrap(staged), path, where);
  }
  TreeStats remove(const std::string& branch, const std::string& path) override {
    fault_point("remove", fmt::format("\"{}\" from {}", path, on_branch(branch)));
    return inner_->remove(branch, path);
  }
  void sweep_staging(const std::string& branch) override {
    fault_point("sweep the staged data of", on_branch(branch));
    inner_->sweep_staging(branch);
  }

  void snapshot(const std::string& branch, const std::string& id) override {
    fault_point("snapshot", fmt::format("{} as {}", on_branch(branch), of_commit(id)));
    inner_->snapshot(branch, id);
  }
  std::unique_ptr<WorkTree> work_tree(const std::string& base, const std::string& id) override {
    fault_point(
        "make the tree of",
        base.empty() ? of_commit(id) : fmt::format("{} from {}", of_commit(id), of_commit(base)));
    return std::make_unique<FaultWorkTree>(inner_->work_tree(base, id), id);
  }
  void freeze(WorkTree& tree, const std::string& id) override {
    fault_point("freeze the tree of", of_commit(id));
    auto* wrapped = dynamic_cast<FaultWorkTree*>(&tree);
    inner_->freeze(wrapped ? wrapped->inner() : tree, id);
  }
  void delete_commit_tree(const std::string& id) override {
    fault_point("delete the tree of", of_commit(id));
    inner_->delete_commit_tree(id);
  }
  void discard_work(const std::string& id) override {
    fault_point("discard the unfinished tree of", of_commit(id));
    inner_->discard_work(id);
  }

  bool send_native(const std::string& id, const std::string& parent, Sink& out) override {
    return inner_->send_native(id, parent, out);
  }

  GcReport gc() override {
    fault_point("collect garbage in", fmt::format("the {} store", inner_->name()));
    return inner_->gc();
  }
  void check(FsckReport& report, bool repair) override {
    if (repair) fault_point("repair", fmt::format("the {} store's data", inner_->name()));
    inner_->check(report, repair);
  }

 private:
  static Staging& unwrap(Staging& staged) {
    auto* wrapped = dynamic_cast<FaultStaging*>(&staged);
    return wrapped ? wrapped->inner() : staged;
  }

  std::unique_ptr<Backend> inner_;
};

}  // namespace

std::unique_ptr<Backend> with_faults(std::unique_ptr<Backend> backend) {
  if (!faults_enabled()) return backend;
  return std::make_unique<FaultBackend>(std::move(backend));
}

}  // namespace pfs::detail
