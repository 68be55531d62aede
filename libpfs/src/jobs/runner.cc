// runner.cc: one run: its datums (the input's files at the commit), its
// container, the map or reduce protocol of v0.8 over HTTP, and its output
// moved onto branch _jobs in one step when, and only when, it succeeded.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <thread>

#include <fmt/format.h>

#include "container_http.h"
#include "datum_pool.h"
#include "engine.h"
#include "fail.h"
#include "names.h"
#include "s3.h"

namespace pfs::detail::jobs {

namespace fs = std::filesystem;

namespace {

UniqueFd create_output(const fs::path& file) {
  fs::create_directories(file.parent_path());
  UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) fail_errno(errno, "create " + file.string());
  return fd;
}

// What a run reads from S3: where, and as whom (never written anywhere).
struct S3Input {
  S3Config config;
  std::string bucket;
};

// One input file of a map job (a datum of v0.8).
struct MapItem {
  std::string name;  // relative to the input: the output file's name and the URL path
  Ref ref;           // where it is read
  std::string path;  // its path there (for S3: the object's key)
  std::uint64_t size = 0;
  bool s3 = false;
};

// A local file (an S3 object fetched into the scratch space) as a FileHandle.
class LocalFile final : public FileHandle {
 public:
  LocalFile(UniqueFd fd, FileInfo info) : fd_(std::move(fd)), info_(std::move(info)) {}
  const FileInfo& info() const override { return info_; }
  Result<std::size_t> read_at(std::uint64_t offset, std::span<char> buf) override {
    for (;;) {
      ssize_t n = ::pread(fd_.get(), buf.data(), buf.size(), static_cast<off_t>(offset));
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) return Error{ErrorCode::kIo, errno_message("read " + info_.path, errno)};
    }
  }

 private:
  UniqueFd fd_;
  FileInfo info_;
};

// A datum's bytes: from the store, or from S3 through a file in `tmp`.
std::unique_ptr<FileHandle> open_datum(Client& store, const MapItem& d, const S3Input* s3, const fs::path& tmp) {
  if (!d.s3) return unwrap(store.open_file(d.ref, d.path));
  fs::path file = tmp / d.name;
  UniqueFd fd = create_output(file);
  auto sink = Sink::to_fd(fd.get());
  S3Client client(s3->config);
  client.get(s3->bucket, d.path, *sink);
  FileInfo fi;
  fi.path = d.name;
  fi.size = static_cast<std::uint64_t>(::lseek(fd.get(), 0, SEEK_END));
  return std::make_unique<LocalFile>(std::move(fd), fi);
}

std::string describe(const Answer& a, std::uint64_t max) {
  if (a.too_big) return fmt::format("its answer was larger than {} bytes", max);
  if (a.status == 0) return "no answer: " + a.error;
  std::string body = a.error;
  for (char& c : body)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  return fmt::format("HTTP {}{}{}", a.status, body.empty() ? "" : ": ", body);
}

}  // namespace

RunInfo LocalJobs::execute(RunInfo run) {
  const JobSpec& spec = run.spec;
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + opts_.run_timeout;
  fs::path scratch = work_ / "runs" / fmt::format("{}.{}.{}", run.commit, run.job, run.attempt);
  fs::path out_dir = scratch / "out";
  Key key{run.commit, run.job};
  auto publish = [&] {
    std::lock_guard lk(mu_);
    progress_[key] = run;
  };
  run.state = RunState::kRunning;
  run.started_ns = now_ns();
  try {
    fs::remove_all(scratch);
    fs::create_directories(out_dir);
    write_record(run);
    publish();

    // ---- the datums
    std::vector<MapItem> datums;
    Input in = parse_input(spec.input);
    std::optional<S3Input> s3;
    if (in.kind == Input::Kind::kS3) {
      // Every object under the prefix, named by its key less the prefix's
      // directory part ("logs/2026/" or "logs/2026/a" leaves "a.txt").
      s3 = S3Input{s3_config(opts_.s3_credentials_file), in.bucket};
      std::size_t strip = in.prefix.rfind('/') == std::string::npos ? 0 : in.prefix.rfind('/') + 1;
      S3Client client(s3->config);
      for (auto& o : client.list(in.bucket, in.prefix)) {
        std::string name = o.key.substr(strip);
        try {
          name = normalize_path(name);
        } catch (Fail&) {
          failf(ErrorCode::kInvalidArgument, "the S3 object \"{}\" has a key that is not a valid file name here", o.key);
        }
        datums.push_back({name, Ref{}, o.key, o.size, true});
      }
    } else if (in.kind == Input::Kind::kJob) {
      std::string base = fmt::format("out/{}/{}", run.commit, in.path);
      ListOptions lo;
      lo.recursive = true;
      auto l = store_.list_files(Ref::branch(kJobsBranch), base, lo);
      if (l) {
        for (const auto& f : *l)
          if (f.type == FileInfo::Type::kFile)
            datums.push_back({f.path.substr(base.size() + 1), Ref::branch(kJobsBranch), f.path, f.size});
      } else if (l.error().code != ErrorCode::kNotFound) {
        throw Fail{std::move(l).error()};
      }
    } else {
      Ref ref = Ref::commit(run.commit);
      auto st = store_.stat_file(ref, in.path);
      if (!st) {
        if (st.error().code == ErrorCode::kNotFound)
          failf(ErrorCode::kNotFound, "its input \"{}\" does not exist in commit {}", spec.input, run.commit);
        throw Fail{std::move(st).error()};
      }
      if (st->type == FileInfo::Type::kFile) {
        datums.push_back({path_base(in.path), ref, in.path, st->size});
      } else {
        // Every file below the input directory, at any depth (v0.8 read
        // only the top level): its output file has the same relative path.
        ListOptions lo;
        lo.recursive = true;
        for (const auto& f : unwrap(store_.list_files(ref, in.path, lo)))
          if (f.type == FileInfo::Type::kFile)
            datums.push_back({in.path.empty() ? f.path : f.path.substr(in.path.size() + 1), ref, f.path, f.size});
      }
    }
    if (spec.limit && datums.size() > spec.limit) datums.resize(spec.limit);
    run.datums_total = spec.type == JobType::kMap ? datums.size() : 1;
    publish();

    // ---- the container
    Image image = images_->get(spec.image);
    ContainerSpec cs;
    cs.image = image;
    cs.command = spec.command;
    cs.memory = spec.memory ? spec.memory : opts_.default_memory;
    cs.cpu_shares = spec.cpu_shares;
    cs.pids = opts_.pids_limit;
    cs.max_log_bytes = opts_.max_log_bytes;
    cs.log_file = scratch / "log";
    auto container = runtime_->start(cs);
    {
      std::lock_guard lk(mu_);
      if (stopping_) ::kill(container->pid(), SIGKILL);
      live_.insert(container->pid());
    }
    struct Unregister {
      LocalJobs* self;
      pid_t pid;
      ~Unregister() {
        std::lock_guard lk(self->mu_);
        self->live_.erase(pid);
      }
    } unregister{this, container->pid()};
    auto stopped = [&](const std::string& what) {
      failf(ErrorCode::kIo, "{}: the container stopped ({}); its last output: {}", what, container->why_stopped(),
            container->log_tail(400));
    };
    {
      ContainerHttp probe(container->net_fd());
      auto until = std::chrono::steady_clock::now() + opts_.start_timeout;
      for (int i = 0;; i++) {
        if (probe.listening()) break;
        if (!container->running()) stopped("its web server never listened on port 80");
        if (std::chrono::steady_clock::now() > until)
          failf(ErrorCode::kIo,
                "nothing listened on port 80 in the container within {} s (does \"command\" start a web "
                "server on port 80?); its output: {}",
                opts_.start_timeout.count(), container->log_tail(400));
        std::this_thread::sleep_for(std::chrono::milliseconds(i < 50 ? 2 : 20));
      }
    }
    const auto timeout = std::chrono::seconds(spec.timeout ? spec.timeout : opts_.default_timeout);
    // An answer that never ends must not fill the store's disk.
    constexpr std::uint64_t kMaxAnswer = std::uint64_t{16} << 30;
    auto left = [&] {
      auto l = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      return std::max(std::chrono::milliseconds(1), std::min<std::chrono::milliseconds>(l, timeout));
    };

    // ---- the datums through the same loop as a pipeline's (datum_pool.h),
    // HTTP connections into the one container its executors. A map job's
    // datums are its files, each POSTed to /<name> and answered with its
    // output file; a reduce job's only datum is the whole input, POSTed to
    // /<input> (multipart when it is several files) and answered with one
    // file named after the job.
    const bool map = spec.type == JobType::kMap;
    std::string url = spec.input;
    while (!url.empty() && url.front() == '/') url.erase(0, 1);
    std::mutex err_mu;
    std::string error;
    std::uint64_t done = 0, bytes = 0;
    DatumLoop<ContainerHttp> loop;
    loop.count = map ? datums.size() : 1;
    loop.parallel = map ? (spec.parallel ? spec.parallel : opts_.default_parallel) : 1;
    loop.tries = opts_.tries;
    loop.backoff = std::chrono::milliseconds(100);
    loop.make = [&](std::size_t) { return std::make_unique<ContainerHttp>(container->net_fd()); };
    loop.run = [&](std::size_t i, std::uint32_t, ContainerHttp& http) -> DatumTry {
      if (std::chrono::steady_clock::now() > deadline)
        return {false, fmt::format("the run took longer than {} s (the engine's limit per run)", opts_.run_timeout.count()),
                false, true};
      std::string what;
      Answer a;
      if (map) {
        const MapItem& d = datums[i];
        what = "file " + d.name;
        auto fh = open_datum(store_, d, s3 ? &*s3 : nullptr, scratch / "in");
        UniqueFd out = create_output(out_dir / d.name);
        a = http.post("/" + d.name, *fh, fh->info().size, out.get(), kMaxAnswer, left());
      } else {
        what = fmt::format("the reduce of {} files", datums.size());
        std::vector<Part> parts;
        for (const auto& d : datums) {
          auto fh = open_datum(store_, d, s3 ? &*s3 : nullptr, scratch / "in");
          std::uint64_t size = fh->info().size;
          parts.push_back({d.name, std::move(fh), size});
        }
        UniqueFd out = create_output(out_dir / run.job);
        if (parts.size() == 1)
          a = http.post("/" + url, *parts[0].file, parts[0].size, out.get(), kMaxAnswer, left());
        else
          a = http.post_multipart("/" + url, parts, out.get(), kMaxAnswer, left());
      }
      if (a.ok()) {
        std::lock_guard lk(mu_);
        run.datums_done = ++done;
        bytes += a.bytes;
        progress_[key] = run;
        return {true, {}, false, false};
      }
      // A container that stopped is not tried again: it was the only one.
      if (container->out_of_memory())
        return {false,
                fmt::format("{}: the container ran out of memory (its limit is {} MiB; raise the job's \"memory\")",
                            what, container->memory_limit() >> 20),
                false, true};
      if (!container->running())
        return {false,
                fmt::format("{}: the container stopped ({}); its last output: {}", what, container->why_stopped(),
                            container->log_tail(400)),
                false, true};
      return {false, fmt::format("{}: {}", what, describe(a, kMaxAnswer)), false, false};
    };
    loop.ended = [&](std::size_t, const DatumTry& last, std::uint32_t tries, bool cut) {
      if (last.ok || cut) return;
      std::lock_guard lk(err_mu);
      if (error.empty()) error = last.last ? last.error : fmt::format("{} (after {} tries)", last.error, tries);
    };
    DatumPool<ContainerHttp> pool(std::move(loop));
    pool.join();
    if (pool.failed()) {
      run.datums_failed = 1;
      fail(ErrorCode::kIo, error);
    }
    run.output = {done, bytes};
    container.reset();  // stopped and removed before the output is published

    // ---- the output, all at once
    if (run.output.files > 0)
      unwrap(store_.put_dir(kJobsBranch, fmt::format("out/{}/{}", run.commit, run.job), out_dir));
    run.state = RunState::kSuccess;
  } catch (Fail& f) {
    run.state = RunState::kFailure;
    run.reason = f.error.message;
    std::lock_guard lk(mu_);
    if (stopping_)
      run.reason = fmt::format("interrupted: the engine stopped during the run; run it again with: pachctl rerun {} {}",
                               run.commit, run.job);
  } catch (const std::exception& e) {
    run.state = RunState::kFailure;
    run.reason = std::string("internal error: ") + e.what();
  }
  run.finished_ns = now_ns();
  return run;
}

}  // namespace pfs::detail::jobs
