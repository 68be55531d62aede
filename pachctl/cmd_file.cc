// put-file, get-file, delete-file, list-file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "cli.h"

namespace pachctl {

namespace {

// A byte count or offset: digits only (CLI11 would read "-1" as 2^64-1).
CLI::Validator bytes_check() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos)
          return "must be a number of bytes, 0 or more, not \"" + v + "\"";
        return {};
      },
      "");
}

struct PutOptions {
  std::string branch = "master";
  bool append = false;
  std::optional<std::uint64_t> offset;
  bool recursive = false;
  std::string path;
  std::string local;
};

int run_put(const PutOptions& o, Context& ctx) {
  auto* c = ctx.client();
  if (!c) return ctx.status();
  if (o.recursive) {
    if (o.local.empty() || o.local == "-")
      return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                      "put-file -r needs a local directory: pachctl put-file -r PATH DIR");
    if (o.append || o.offset)
      return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                      fmt::format("--{} cannot be used with -r", o.append ? "append" : "offset"));
    auto r = c->put_dir(o.branch, o.path, o.local);
    if (!r) return ctx.fail(r.error());
    for (const auto& s : r->skipped)
      fmt::print(stderr, "pachctl: skipped {}/{}: not a regular file or directory\n", o.local, s);
    if (ctx.globals.json) ctx.print_json(*r);
    return 0;
  }
  int fd = 0;
  if (!o.local.empty() && o.local != "-") {
    fd = ::open(o.local.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      return ctx.fail(errno_code(err),
                      os_error(fmt::format("cannot read {}", o.local), err));
    }
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
      ::close(fd);
      return ctx.fail(
          pfs::ErrorCode::kInvalidArgument,
          fmt::format("{} is a directory; copy a directory with: pachctl put-file -r {} {}",
                      o.local, o.path, o.local));
    }
  } else if (::isatty(0)) {
    fmt::print(stderr, "pachctl: reading {} from standard input (end with Ctrl-D)\n", o.path);
  }
  auto src = pfs::Source::from_fd(fd);
  pfs::PutOptions opts;
  opts.append = o.append;
  opts.offset = o.offset;
  auto r = c->put_file(o.branch, o.path, *src, opts);
  if (fd > 0) ::close(fd);
  if (!r) return ctx.fail(r.error());
  if (ctx.globals.json) ctx.print_json(*r);
  return 0;
}

struct GetOptions {
  std::string commit, branch, out, path, local_dir, job;
  bool recursive = false;
  std::uint64_t offset = 0;
  std::optional<std::uint64_t> length;
};

// --job NAME -c COMMIT: what the job computed from that commit.
bool check_job_read(const std::string& job, const std::string& commit, const std::string& branch,
                    Context& ctx) {
  if (job.empty()) return true;
  if (commit.empty() || !branch.empty()) {
    ctx.fail(pfs::ErrorCode::kInvalidArgument,
             fmt::format("--job reads a job's output at a commit: add -c COMMIT (e.g. pachctl get-file "
                         "--job {} -c master PATH)",
                         job));
    return false;
  }
  return true;
}

int run_get(const GetOptions& o, Context& ctx) {
  if (!check_job_read(o.job, o.commit, o.branch, ctx)) return ctx.status();
  if (!o.job.empty() && (o.recursive || o.offset || o.length))
    return ctx.fail(pfs::ErrorCode::kInvalidArgument, "--job reads whole files: drop -r, --offset and --length");
  pfs::Jobs* j = o.job.empty() ? nullptr : ctx.jobs();
  if (!o.job.empty() && !j) return ctx.status();
  auto* c = ctx.client();
  if (!c) return ctx.status();
  if (o.recursive) {
    if (o.local_dir.empty())
      return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                      "get-file -r needs a local directory: pachctl get-file -r PATH DIR");
    if (!o.out.empty() || o.offset || o.length)
      return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                      "-o, --offset and --length cannot be used with -r");
    auto r = c->get_dir(read_ref(o.commit, o.branch), o.path, o.local_dir);
    if (!r) return ctx.fail(r.error());
    if (ctx.globals.json) ctx.print_json(*r);
    return 0;
  }
  if (!o.local_dir.empty())
    return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                    fmt::format("unexpected argument {}: write a file with -o FILE, a directory "
                                "with -r PATH DIR",
                                o.local_dir));
  int fd = 1;
  std::string tmp;
  if (!o.out.empty() && o.out != "-") {
    // Write beside the target and rename, so a failed read leaves no half file.
    tmp = o.out + ".pachctl-XXXXXX";
    fd = ::mkostemp(tmp.data(), O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      return ctx.fail(errno_code(err),
                      os_error(fmt::format("cannot write {}", o.out), err));
    }
    mode_t mask = ::umask(0);  // mkostemp makes 0600; give the usual 0666 & ~umask
    ::umask(mask);
    ::fchmod(fd, 0666 & ~mask);
  }
  auto sink = pfs::Sink::to_fd(fd);
  pfs::ReadRange range;
  range.offset = o.offset;
  range.length = o.length;
  auto r = j ? j->get_output(o.commit, o.job, o.path, *sink)
             : c->get_file(read_ref(o.commit, o.branch), o.path, *sink, range);
  if (!tmp.empty()) {
    int err = 0;
    if (r && ::fsync(fd) != 0) err = errno;
    ::close(fd);
    if (r && !err && ::rename(tmp.c_str(), o.out.c_str()) != 0) err = errno;
    if (!r || err) ::unlink(tmp.c_str());
    if (err)
      return ctx.fail(errno_code(err),
                      os_error(fmt::format("cannot write {}", o.out), err));
  }
  if (!r) return ctx.fail(r.error());
  return 0;
}

struct DeleteOptions {
  std::string branch = "master", path;
};

int run_delete(const DeleteOptions& o, Context& ctx) {
  auto* c = ctx.client();
  if (!c) return ctx.status();
  auto r = c->delete_file(o.branch, o.path);
  if (!r) return ctx.fail(r.error());
  if (ctx.globals.json) ctx.print_json(*r);
  return 0;
}

struct ListOptions {
  std::string commit, branch, path, job;
  bool recursive = false;
};

int run_list(const ListOptions& o, Context& ctx) {
  if (!check_job_read(o.job, o.commit, o.branch, ctx)) return ctx.status();
  pfs::Result<std::vector<pfs::FileInfo>> r = std::vector<pfs::FileInfo>{};
  if (!o.job.empty()) {
    auto* j = ctx.jobs();
    if (!j) return ctx.status();
    pfs::OutputOptions oo;
    oo.recursive = o.recursive;
    r = j->list_output(o.commit, o.job, o.path, oo);
  } else {
    auto* c = ctx.client();
    if (!c) return ctx.status();
    pfs::ListOptions opts;
    opts.recursive = o.recursive;
    r = c->list_files(read_ref(o.commit, o.branch), o.path, opts);
  }
  if (!r) return ctx.fail(r.error());
  if (ctx.globals.json) {
    ctx.print_json(*r);
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"NAME", "TYPE", "SIZE"}};
  for (const auto& f : *r) {
    bool dir = f.type == pfs::FileInfo::Type::kDirectory;
    rows.push_back(
        {dir ? f.path + "/" : f.path, dir ? "dir" : "file", dir ? "-" : human_size(f.size)});
  }
  print_table(rows);
  return 0;
}

void add_read_options(CLI::App* s, std::string& commit, std::string& branch) {
  auto* c = s->add_option("-c,--commit", commit,
                          "Read this commit (id, unique prefix, or branch name for its head)")
                ->type_name("COMMIT");
  auto* b =
      s->add_option("-b,--branch", branch, "Read this branch's working state (default: master)")
          ->type_name("BRANCH");
  c->excludes(b);
}

}  // namespace

void setup_file_commands(CLI::App& app, Context& ctx) {
  auto put = std::make_shared<PutOptions>();
  auto* s = app.add_subcommand("put-file", "Write a file (or, with -r, a directory) to a branch");
  s->add_option("-b,--branch", put->branch, "The branch to write to")
      ->capture_default_str()
      ->type_name("BRANCH");
  auto* append =
      s->add_flag("-a,--append", put->append, "Append to the file instead of replacing it");
  s->add_option("--offset", put->offset,
                "Write into the existing file from this byte on, keeping the rest of it")
      ->type_name("BYTES")
      ->check(bytes_check())
      ->excludes(append);
  s->add_flag("-r,--recursive", put->recursive,
              "LOCAL is a directory: copy all of it to PATH (\".\" for the root)");
  s->add_option("PATH", put->path, "The path in the branch")->required();
  s->add_option("LOCAL", put->local, "A local file (default: standard input; \"-\" too)");
  s->footer(
      footer({"pachctl put-file data/sales.csv ./sales.csv",
              "echo hello | pachctl put-file -b dev notes/hello.txt",
              "pachctl put-file --append logs/today.log ./new-lines.log",
              "pachctl put-file --offset 4096 data/big.bin ./page.bin",
              "pachctl put-file -r images ./images"},
             "0 success; 2 invalid path or branch name, a file where a directory is (or back), "
             "-r without a directory, --offset past the end of the file; 3 branch or LOCAL not "
             "found, or no file at PATH with --offset; 5 the branch was reverted or merged into "
             "during the upload (upload again); 7 LOCAL not readable; 9 I/O error."));
  add_runner(s, [put, &ctx] { return run_put(*put, ctx); });

  auto get = std::make_shared<GetOptions>();
  s = app.add_subcommand("get-file", "Print a file of a commit or branch (or write it with -o)");
  add_read_options(s, get->commit, get->branch);
  s->add_option("-o,--output", get->out, "Write to this local file instead of standard output")
      ->type_name("FILE");
  s->add_option("--offset", get->offset, "Start at this byte (default 0)")
      ->type_name("BYTES")
      ->check(bytes_check());
  s->add_option("--length", get->length, "Read at most this many bytes (default: to the end)")
      ->type_name("BYTES")
      ->check(bytes_check());
  s->add_option("--job", get->job, "Read the output of this job at the commit -c names")->type_name("NAME");
  s->add_flag("-r,--recursive", get->recursive,
              "PATH is a directory: copy all of it into the new or empty local directory DIR");
  s->add_option("PATH", get->path, "The file's path (with -r: a directory, \".\" for the root)")
      ->required();
  s->add_option("DIR", get->local_dir, "With -r: the local directory to copy into");
  s->footer(footer(
      {"pachctl get-file data/sales.csv", "pachctl get-file -c 3f2a9c1d data/sales.csv > old.csv",
       "pachctl get-file -b dev -o hello.txt notes/hello.txt",
       "pachctl get-file --offset 1048576 --length 4096 data/big.bin | xxd",
       "pachctl get-file -c 3f2a9c1d -r . ./restore", "pachctl get-file --job upper -c 3f2a9c1d a.txt"},
      "0 success; 2 invalid path, PATH is a directory (without -r) or a file (with -r), DIR "
      "not empty, -c with -b, --offset past the end; 3 commit, branch or file not found, or "
      "OUT's directory missing; 7 OUT or DIR not writable; 8 the store is damaged (run pachctl "
      "fsck); 9 I/O error. With --job: 3 no such run, or no such file in its output; 5 the run failed or "
      "was skipped (the message says why); 6 still running after a minute."));
  add_runner(s, [get, &ctx] { return run_get(*get, ctx); });

  auto del = std::make_shared<DeleteOptions>();
  s = app.add_subcommand("delete-file", "Delete a file or directory from a branch");
  s->add_option("-b,--branch", del->branch, "The branch")
      ->capture_default_str()
      ->type_name("BRANCH");
  s->add_option("PATH", del->path, "The file or directory")->required();
  s->footer(footer({"pachctl delete-file data/old.csv", "pachctl delete-file -b dev scratch"},
                   "0 success; 2 invalid path or branch name; 3 branch or path not found."));
  add_runner(s, [del, &ctx] { return run_delete(*del, ctx); });

  auto list = std::make_shared<ListOptions>();
  s = app.add_subcommand("list-file", "List a directory, a file, or the paths a glob matches");
  add_read_options(s, list->commit, list->branch);
  s->add_flag("-R,--recursive", list->recursive, "List everything below the directory");
  s->add_option("--job", list->job, "List the output of this job at the commit -c names")->type_name("NAME");
  s->add_option(
      "PATH", list->path,
      "A directory (default: the root), a file, or a glob such as 'data/*.csv' or '**/*.json'");
  s->footer(
      footer({"pachctl list-file", "pachctl list-file -R data",
              "pachctl list-file -c 3f2a9c1d 'data/*.csv'", "pachctl list-file '**/*.json' --json",
              "pachctl list-file --job upper -c 3f2a9c1d"},
             "0 success (also when a glob matches nothing); 2 invalid path, -c with -b; "
             "3 commit, branch or path not found. With --job: 3 no such run; 5 the run failed or was "
             "skipped; 6 still running after a minute."));
  add_runner(s, [list, &ctx] { return run_list(*list, ctx); });
}

}  // namespace pachctl
