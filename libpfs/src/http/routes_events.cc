// routes_events.cc: GET and POST /commits/wait, the long-poll of commit
// events (docs/http.md, "Commit events").
#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "routes.h"

namespace pfs::detail::routes {

namespace {

constexpr std::int64_t kMaxWaitMs = 60000;
constexpr std::size_t kMaxBody = 1 << 20;  // a cursor of ~20,000 branches

// The JSON body of POST /commits/wait: {"branch", "since", "timeout_ms"},
// each optional; anything else is refused, naming it.
void read_body(const Request& req, WaitOptions& o) {
  std::string text;
  std::array<char, 16384> buf{};
  while (req.body) {
    std::size_t n = take(req.body->read(buf));
    if (n == 0) break;
    text.append(buf.data(), n);
    if (text.size() > kMaxBody)
      failf(ErrorCode::kInvalidArgument, "the body is over {} bytes; send {{\"branch\", \"since\", "
                                         "\"timeout_ms\"}}", kMaxBody);
  }
  if (text.empty()) return;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    failf(ErrorCode::kInvalidArgument,
          "the body is not a JSON object; send {{\"branch\": ..., \"since\": ..., \"timeout_ms\": ...}}");
  for (const auto& [key, value] : j.items()) {
    if (key == "branch" && value.is_string()) o.branch = value.get<std::string>();
    else if (key == "since" && value.is_string()) o.since = value.get<std::string>();
    else if (key == "timeout_ms" && value.is_number_integer()) o.timeout_ms = value.get<std::int64_t>();
    else if (key == "branch" || key == "since" || key == "timeout_ms")
      failf(ErrorCode::kInvalidArgument, "\"{}\" has the wrong type ({}); branch and since are "
                                         "strings, timeout_ms an integer", key, value.type_name());
    else
      failf(ErrorCode::kInvalidArgument, "unknown field \"{}\" (known: branch, since, timeout_ms)", key);
  }
}

}  // namespace

void wait_commits(Client& c, const Request& req, Response& res, WaitGate& gate) {
  WaitOptions o;
  o.branch = req.param("branch");
  o.since = req.param("since");
  if (req.has("timeout_ms")) {
    std::string v = req.param("timeout_ms");
    if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos)
      failf(ErrorCode::kInvalidArgument, "query parameter timeout_ms={}: use milliseconds, 0 to {}", v,
            kMaxWaitMs);
    o.timeout_ms = std::stoll(v);
  }
  if (req.method == "POST") read_body(req, o);
  if (o.timeout_ms < 0)
    failf(ErrorCode::kInvalidArgument, "timeout_ms {} is negative (0 answers at once)", o.timeout_ms);
  o.timeout_ms = std::min(o.timeout_ms, kMaxWaitMs);
  // A waiting request holds a worker thread: at most half of them wait, so
  // that waiters never starve the other requests.
  if (gate.waiting.fetch_add(1) >= gate.max_waiting) {
    gate.waiting.fetch_sub(1);
    res.set_header("Retry-After", "1");
    res.error(503, "busy",
              fmt::format("{} requests are waiting for commits already, the most this server allows "
                          "(half of pachctl serve --threads); retry in a second",
                          gate.max_waiting));
    return;
  }
  struct Leave {
    WaitGate& g;
    ~Leave() { g.waiting.fetch_sub(1); }
  } leave{gate};
  o.cancelled = [&gate] { return gate.stopping.load(); };
  res.json(200, json(take(c.wait_commits(o))));
}

}  // namespace pfs::detail::routes
