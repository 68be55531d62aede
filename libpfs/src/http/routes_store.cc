// routes_store.cc: the routes of the store as a whole: /health and /info;
// replication (a commit out as a send stream, /send; one in, /receive; a
// branch head moved by compare-and-swap, /branch/<name>/head); and upkeep
// (/fsck, /gc).
#include "routes.h"

#include <charconv>
#include <memory>
#include <span>
#include <string_view>
#include <thread>
#include <vector>

#include "pipe.h"

namespace pfs::detail::routes {
namespace {

// A parameter that must be there, as number() reads it; `why` says what needs it.
std::uint64_t required_number(const Request& req, const char* key, std::string_view why) {
  if (!req.has(key)) failf(ErrorCode::kInvalidArgument, "query parameter {} is missing: {}", key, why);
  return number(req, key);
}

// The same for a signed integer (a time, which may be before 1970).
std::int64_t required_signed(const Request& req, const char* key, std::string_view why) {
  if (!req.has(key)) failf(ErrorCode::kInvalidArgument, "query parameter {} is missing: {}", key, why);
  std::string v = req.param(key);
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size())
    failf(ErrorCode::kInvalidArgument, "query parameter {}={}: not an integer", key, v);
  return n;
}

// POST /receive's options: ?branch=&parent=, and for replication the exact
// commit to record, one query parameter per CommitInfo field.
ReceiveOptions receive_options(const Request& req) {
  static constexpr const char* kCommitFields[] = {"commit_parent", "merge_parent", "commit_branch",
                                                  "time_ns",       "message",      "files",
                                                  "bytes"};
  ReceiveOptions o;
  o.branch = write_branch(req);
  o.parent = req.param("parent");
  if (!req.has("id")) {
    for (const char* key : kCommitFields)
      if (req.has(key))
        failf(ErrorCode::kInvalidArgument,
              "query parameter {} describes the commit to record: give it with id= (and "
              "time_ns=, files=, bytes=)",
              key);
    return o;
  }
  constexpr std::string_view why = "receiving as an exact commit (id=) needs time_ns, files and bytes";
  CommitInfo ci;
  ci.id = req.param("id");
  ci.parent = req.param("commit_parent");
  ci.merge_parent = req.param("merge_parent");
  ci.branch = req.param("commit_branch");
  ci.message = req.param("message");
  ci.time_ns = required_signed(req, "time_ns", why);
  ci.stats.files = required_number(req, "files", why);
  ci.stats.bytes = required_number(req, "bytes", why);
  o.as_commit = std::move(ci);
  return o;
}

}  // namespace

void health(Client&, const Request&, Response& res) { res.json(200, json{{"status", "ok"}}); }

void info(Client& c, const Request&, Response& res) { res.json(200, json(take(c.info()))); }

// ---- replication: send streams out and in, branch heads by compare-and-swap

// GET /send/<commit>?parent=P: the commit's tree as a btrfs send stream,
// chunked. Both commits are looked up first (404 as JSON), and sent by id:
// a branch that moves meanwhile does not change what is sent. NOTE: the
// stream is written by Client::send on a thread of its own into a bounded
// pipe; the route waits for its first bytes (or its end) before it
// answers, so that an error found before any byte is still a JSON error
// with its own status, as locally; once bytes are out, an error can only
// cut the response short.
void send_commit(Client& store, const Request& req, Response& res) {
  CommitInfo commit = take(store.inspect_commit(req.matches[1]));
  SendOptions o;
  if (std::string parent = req.param("parent"); !parent.empty()) o.parent = take(store.inspect_commit(parent)).id;
  struct Job {
    BytePipe pipe;
    std::thread worker;
    ~Job() {
      pipe.close();  // a send still writing fails (kIo) and ends
      if (worker.joinable()) worker.join();
    }
  };
  class Out final : public Sink {
   public:
    explicit Out(BytePipe& p) : p_(p) {}
    Result<void> write(std::span<const char> data) override {
      if (!p_.push(data.data(), data.size())) return Error{ErrorCode::kIo, "the client closed the connection"};
      return {};
    }

   private:
    BytePipe& p_;
  };
  auto job = std::make_shared<Job>();
  Client* c = &store;
  job->worker = std::thread([job = job.get(), c, id = commit.id, o] {
    Out out(job->pipe);
    auto r = c->send(id, out, o);
    if (r) job->pipe.finish(true);
    else job->pipe.finish(false, r.error().message, r.error().code);
  });
  auto first = std::make_shared<std::string>(kPiece, '\0');
  first->resize(take(job->pipe.read(std::span<char>(first->data(), first->size()))));
  res.content_type = "application/octet-stream";
  res.set_header("Accept-Ranges", "none");  // a stream is sent whole (RFC 9110 allows it)
  res.set_header("X-Pfs-Commit", commit.id);
  if (!o.parent.empty()) res.set_header("X-Pfs-Parent", o.parent);
  res.stream = [job, first, &res](http::BodyWriter& out) {
    if (!out.write(first->data(), first->size())) return false;
    std::vector<char> buf(kPiece);
    for (;;) {
      auto n = job->pipe.read(std::span<char>(buf.data(), buf.size()));
      if (!n) {
        res.cut_reason = n.error().message;
        return false;
      }
      if (*n == 0) return true;
      if (!out.write(buf.data(), *n)) return false;
    }
  };
}

// POST /receive: the body is a send stream, recorded as a new commit (or,
// with id= and the commit's fields, as exactly that commit).
void receive_commit(Client& c, const Request& req, Response& res) {
  ReceiveOptions o = receive_options(req);
  res.json(200, json(take(c.receive(*req.body, o))));
}

void set_branch_head(Client& c, const Request& req, Response& res) {
  if (!req.has("commit"))
    fail(ErrorCode::kInvalidArgument,
         "name the commit: POST /branch/NAME/head?commit=C[&expect=HEAD][&force=true]");
  SetHeadOptions o;
  if (req.has("expect")) o.expected_head = req.param("expect");  // "": no commits yet
  o.force = flag(req, "force");
  res.json(200, json(take(c.set_branch_head(req.matches[1], req.param("commit"), o))));
}

// ---- upkeep

void fsck_check(Client& c, const Request&, Response& res) { res.json(200, json(take(c.fsck(false)))); }

void fsck_run(Client& c, const Request& req, Response& res) {
  res.json(200, json(take(c.fsck(flag(req, "repair")))));
}

void gc(Client& c, const Request&, Response& res) { res.json(200, json(take(c.gc()))); }

}  // namespace pfs::detail::routes
