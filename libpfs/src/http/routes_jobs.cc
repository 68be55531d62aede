// routes_jobs.cc: the routes of jobs (docs/http.md, "Jobs"), over the
// public pfs::Jobs API: the v0.8 ones (/job/<name>, /commit?run,
// /job/<name>/file/<path>?commit=) and those v0.8 lacked (/runs: the runs
// of a commit, one run, its log, rerun).
#include "routes.h"

#include <fmt/format.h>

#include "fsutil.h"
#include "names.h"

namespace pfs::detail::routes {

namespace {

constexpr std::size_t kMaxDescriptor = 64 * 1024;

std::string body_text(const Request& req, std::size_t max) {
  std::string text;
  if (!req.body) return text;
  char buf[16384];
  for (;;) {
    std::size_t n = take(req.body->read(std::span<char>(buf, sizeof buf)));
    if (n == 0) break;
    text.append(buf, n);
    if (text.size() > max)
      failf(ErrorCode::kInvalidArgument, "the job descriptor is larger than {} bytes", max);
  }
  return text;
}

std::string need_commit(const Request& req) {
  std::string c = req.param("commit");
  if (c.empty())
    fail(ErrorCode::kInvalidArgument,
         "add ?commit=<id>: a job's output is read at a commit whose jobs ran (POST /commit?run)");
  return c;
}

OutputOptions output_options(const Request& req) {
  OutputOptions o;
  if (req.has("wait")) o.wait = std::chrono::milliseconds(std::min<std::uint64_t>(number(req, "wait"), 600000));
  o.recursive = req.has("recursive") && flag(req, "recursive");
  return o;
}

// A run that failed or was skipped has no output: its 409 says how it ended.
template <class Fn>
void with_run_state(Jobs& j, const std::string& commit, const std::string& job, Response& res, Fn&& fn) {
  try {
    fn();
  } catch (Fail& f) {
    if (f.error.code != ErrorCode::kConflict) throw;
    auto r = j.inspect_run(commit, job);
    if (!r) throw;
    res.json(409, json{{"error", f.error.message},
                       {"code", code_name(f.error.code)},
                       {"state", run_state_name(r->state)},
                       {"reason", r->reason},
                       {"commit", r->commit},
                       {"job", r->job}});
  }
}

// Streams files of a job's output into a Sink that writes to the response.
class BodySink final : public Sink {
 public:
  explicit BodySink(http::BodyWriter& out) : out_(out) {}
  Result<void> write(std::span<const char> d) override {
    if (!out_.write(d.data(), d.size())) return Error{ErrorCode::kIo, "the client went away"};
    return {};
  }

 private:
  http::BodyWriter& out_;
};

}  // namespace

void commit_maybe_run(Client& c, Jobs& j, const Request& req, Response& res) {
  if (!req.has("run")) return create_commit(c, req, res);
  // v0.8: POST /commit?run (a bare "run": flag() takes it as true).
  if (!flag(req, "run")) return create_commit(c, req, res);
  res.json(200, json(take(j.commit_and_run(write_branch(req), req.param("message")))));
}

void create_job(Client&, Jobs& j, const Request& req, Response& res) {
  std::string text = body_text(req, kMaxDescriptor);
  if (text.empty())
    fail(ErrorCode::kInvalidArgument,
         "send the job descriptor as the body: curl -XPOST HOST/job/NAME -T job.json");
  res.json(201, json(take(j.create_job(write_branch(req), req.matches[1], text))));
}

void inspect_job(Client&, Jobs& j, const Request& req, Response& res) {
  res.json(200, json(take(j.inspect_job(read_ref(req), req.matches[1]))));
}

void list_jobs(Client&, Jobs& j, const Request& req, Response& res) {
  res.json(200, json(take(j.list_jobs(read_ref(req)))));
}

void delete_job(Client&, Jobs& j, const Request& req, Response& res) {
  take(j.delete_job(write_branch(req), req.matches[1]));
  res.json(200, json::object());
}

// GET /job/<name>/file/<path or glob>?commit=C[&wait=ms]: one file of the
// job's output at C; a glob answers every match as multipart/mixed.
void job_file(Client&, Jobs& j, const Request& req, Response& res) {
  std::string job = req.matches[1], raw = req.matches[2], commit = need_commit(req);
  OutputOptions o = output_options(req);
  with_run_state(j, commit, job, res, [&] {
    if (is_glob(raw) || raw.empty()) {
      auto all = take(j.list_output(commit, job, raw.empty() ? "*" : raw, o));
      auto files = std::make_shared<std::vector<FileInfo>>();
      for (auto& f : all)
        if (f.type == FileInfo::Type::kFile) files->push_back(std::move(f));
      std::string boundary = "pfs-" + random_hex(24);
      res.content_type = "multipart/mixed; boundary=" + boundary;
      Jobs* jp = &j;
      o.wait = std::chrono::milliseconds(0);  // it has ended: the listing said so
      res.stream = [jp, commit, job, files, boundary, o, &res](http::BodyWriter& out) {
        BodySink sink(out);
        for (const auto& info : *files) {
          std::string head = fmt::format(
              "--{}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n"
              "Content-Disposition: attachment; filename=\"{}\"\r\n\r\n",
              boundary, info.size, info.path);
          if (!out.write(head.data(), head.size())) return false;
          auto g = jp->get_output(commit, job, info.path, sink, o);
          if (!g) {
            res.cut_reason = g.error().message;
            return false;
          }
          if (!out.write("\r\n", 2)) return false;
        }
        std::string tail = "--" + boundary + "--\r\n";
        return out.write(tail.data(), tail.size());
      };
      return;
    }
    std::string p = normalize_path(raw);
    auto listed = take(j.list_output(commit, job, p, o));
    if (listed.size() != 1 || listed[0].type != FileInfo::Type::kFile || listed[0].path != p)
      failf(ErrorCode::kInvalidArgument, "\"{}\" is a directory of the output of job {}; list it with GET "
            "/job/{}/list/{}?commit={}", p, job, job, p, commit);
    res.content_type = "application/octet-stream";
    res.set_header("X-Pfs-Size", std::to_string(listed[0].size));
    if (listed[0].size <= kPiece) {
      auto sink = Sink::to_string(&res.body);
      o.wait = std::chrono::milliseconds(0);
      take(j.get_output(commit, job, p, *sink, o));
      return;
    }
    res.stream_length = listed[0].size;
    Jobs* jp = &j;
    o.wait = std::chrono::milliseconds(0);
    res.stream = [jp, commit, job, p, o, &res](http::BodyWriter& out) {
      BodySink sink(out);
      auto g = jp->get_output(commit, job, p, sink, o);
      if (!g) res.cut_reason = g.error().message;
      return g.ok();
    };
  });
}

// GET /job/<name>/list[/<dir or glob>]?commit=C[&recursive=true][&wait=ms]
void job_list(Client&, Jobs& j, const Request& req, Response& res) {
  std::string job = req.matches[1], commit = need_commit(req);
  std::string p = req.matches.size() > 2 ? req.matches[2] : std::string();
  with_run_state(j, commit, job, res, [&] { res.json(200, json(take(j.list_output(commit, job, p, output_options(req))))); });
}

// GET /runs[?commit=C], GET /runs/<commit>: runs of one commit or all.
void list_runs(Client&, Jobs& j, const Request& req, Response& res) {
  std::string c = req.matches.size() > 1 ? req.matches[1] : req.param("commit");
  res.json(200, json(take(j.list_runs(c))));
}

// GET /runs/<commit>/<job>[?wait=ms]: one run (when it has ended, with ?wait).
void inspect_run(Client&, Jobs& j, const Request& req, Response& res) {
  if (req.has("wait")) {
    auto ms = std::chrono::milliseconds(std::min<std::uint64_t>(number(req, "wait"), 600000));
    res.json(200, json(take(j.wait_run(req.matches[1], req.matches[2], ms))));
    return;
  }
  res.json(200, json(take(j.inspect_run(req.matches[1], req.matches[2]))));
}

// GET /runs/<commit>/<job>/log: the container's output.
void run_log(Client&, Jobs& j, const Request& req, Response& res) {
  res.content_type = "text/plain; charset=utf-8";
  auto sink = Sink::to_string(&res.body);
  take(j.get_logs(req.matches[1], req.matches[2], *sink));
}

// POST /runs/<commit>/rerun[?job=J]
void rerun(Client&, Jobs& j, const Request& req, Response& res) {
  RerunOptions o;
  o.job = req.param("job");
  res.json(200, json(take(j.rerun(req.matches[1], o))));
}

}  // namespace pfs::detail::routes
