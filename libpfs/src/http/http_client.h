// http_client.h: the Client that pfs::connect() returns: the Client
// interface over the HTTP API (docs/http.md). Every call is one request (or
// a few) through a Transport (http_transport.h); its errors are the same
// pfs::Error a local store returns. Thread-safe, as the Transport is.
//
// The calls on files and directories are in http_client_files.cc; those on
// commits, branches, replication and the store in http_client.cc.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <pfs/client.h>
#include <pfs/remote.h>

#include "http_transport.h"

namespace pfs::detail::remote {

class RemoteClient final : public Client {
 public:
  RemoteClient(std::string base, RemoteOptions opts) : http_(std::move(base), std::move(opts)) {}

  Transport& transport() { return http_; }

  // ---- the store (http_client.cc)
  Result<StoreInfo> info() override;

  // ---- files and directories (http_client_files.cc)
  Result<FileInfo> put_file(std::string_view branch, std::string_view path, Source& src,
                            const PutOptions& opts) override;
  Result<PutDirResult> put_dir(std::string_view branch, std::string_view path,
                               const std::filesystem::path& local_dir) override;
  Result<PutDirResult> put_files(std::string_view branch, std::string_view path,
                                 FileBatch& batch) override;
  Result<std::unique_ptr<FileHandle>> open_file(const Ref& ref, std::string_view path) override;
  Result<FileInfo> get_file(const Ref& ref, std::string_view path, Sink& sink,
                            const ReadRange& range) override;
  Result<TreeStats> get_dir(const Ref& ref, std::string_view path,
                            const std::filesystem::path& local_dir) override;
  Result<FileInfo> stat_file(const Ref& ref, std::string_view path) override;
  Result<TreeStats> delete_file(std::string_view branch, std::string_view path) override;
  Result<std::vector<FileInfo>> list_files(const Ref& ref, std::string_view dir_or_glob,
                                           const ListOptions& opts) override;

  // ---- commits and branches (http_client.cc)
  Result<CommitInfo> commit(std::string_view branch, std::string_view message) override;
  Result<std::vector<CommitInfo>> list_commits(const LogOptions& opts) override;
  Result<CommitInfo> inspect_commit(std::string_view commit) override;
  Result<void> delete_commit(std::string_view commit) override;
  Result<BranchInfo> create_branch(std::string_view name, std::string_view from_commit) override;
  Result<std::vector<BranchInfo>> list_branches() override;
  Result<BranchInfo> inspect_branch(std::string_view name) override;
  Result<void> delete_branch(std::string_view name) override;
  Result<std::vector<DiffEntry>> diff(const Ref& from, const Ref& to) override;
  Result<CommitInfo> revert(std::string_view branch, std::string_view commit,
                            const RevertOptions& opts) override;
  Result<MergeResult> merge(std::string_view into, std::string_view from,
                            const MergeOptions& opts) override;

  // ---- replication and the store's upkeep (http_client.cc)
  Result<CommitInfo> send(std::string_view commit, Sink& out, const SendOptions& opts) override;
  Result<ReceiveResult> receive(Source& in, const ReceiveOptions& opts) override;
  Result<BranchInfo> set_branch_head(std::string_view name, std::string_view commit,
                                     const SetHeadOptions& opts) override;
  Result<FsckReport> fsck(bool repair) override;
  Result<GcReport> gc() override;

  // ---- commit events (http_client.cc): long-polls of POST /commits/wait
  Result<CommitEvents> wait_commits(const WaitOptions& opts) override;

 private:
  Transport http_;
};

}  // namespace pfs::detail::remote
