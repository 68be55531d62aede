// pachctl: the command-line tool of pfs.
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>

#include <fmt/core.h>
#include <pfs/remote.h>

#include "cli.h"

namespace pachctl {

namespace {
std::map<CLI::App*, Runner>& runners() {
  static std::map<CLI::App*, Runner> r;
  return r;
}
}  // namespace

void add_runner(CLI::App* sub, Runner run) { runners()[sub] = std::move(run); }

int run_selected(CLI::App& app) {
  for (auto* sub : app.get_subcommands()) {
    auto it = runners().find(sub);
    if (it != runners().end()) return it->second();
  }
  fmt::print(stderr, "{}", app.help());
  return 2;
}

std::string Context::store_dir() const {
  if (!globals.store.empty()) return globals.store;
  if (const char* s = std::getenv("PFS_STORE"); s && *s) return s;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return std::string(x) + "/pfs";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/share/pfs";
  return "pfs";
}

std::string Context::address() const {
  if (!globals.address.empty()) return globals.address;
  if (const char* a = std::getenv("PFS_ADDRESS"); a && *a) return a;
  return "";
}

void ProgressBar::update(const pfs::Progress& p, std::string_view label) {
  auto now = std::chrono::steady_clock::now();
  if (!started_) {
    start_ = now;
    started_ = true;
  }
  double secs = std::chrono::duration<double>(now - start_).count();
  if (secs < 0.5 && p.total < (64u << 20)) return;  // short transfers show nothing
  if (shown_ && now - last_ < std::chrono::milliseconds(100) && !p.finished) return;
  last_ = now;
  double rate = static_cast<double>(p.done) / secs;
  std::string line = fmt::format("  {} {}", label.empty() ? (p.upload ? "up" : "down") : label,
                                 human_size(p.done));
  if (p.total > 0) {
    line += fmt::format(" / {}  {:3}%", human_size(p.total), p.done * 100 / p.total);
  }
  line += fmt::format("  {}/s", human_size(static_cast<std::uint64_t>(rate)));
  if (p.total > p.done && rate > 0) {
    auto eta = static_cast<std::uint64_t>(static_cast<double>(p.total - p.done) / rate);
    line += fmt::format("  ETA {}:{:02}", eta / 60, eta % 60);
  }
  fmt::print(stderr, "\r{:<70}", line);
  std::fflush(stderr);
  shown_ = true;
}

ProgressBar::~ProgressBar() {
  if (shown_) fmt::print(stderr, "\r{:<70}\r", "");
}

bool read_token_file(const std::string& path, std::string& token) {
  std::ifstream in(path);
  if (!in) return false;
  std::getline(in, token);
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  return true;
}

pfs::Client* Context::client() {
  if (client_) return client_.get();
  if (std::string addr = address(); !addr.empty()) {
    pfs::RemoteOptions opts;
    if (!token(opts.token)) return nullptr;
    if (::isatty(STDERR_FILENO)) {
      auto bar = std::make_shared<std::unique_ptr<ProgressBar>>();
      opts.progress = [bar](const pfs::Progress& p) {
        if (p.finished) {
          bar->reset();  // clears its line
          return;
        }
        if (!*bar) *bar = std::make_unique<ProgressBar>();
        (*bar)->update(p);
      };
    }
    auto c = pfs::connect(addr, opts);
    if (!c) {
      fail(c.error());
      return nullptr;
    }
    client_ = std::move(*c);
    return client_.get();
  }
  auto c = pfs::open_store(store_dir());
  if (!c) {
    fail(c.error());
    return nullptr;
  }
  client_ = std::move(*c);
  return client_.get();
}

pfs::Jobs* Context::jobs() {
  if (jobs_) return jobs_.get();
  if (std::string addr = address(); !addr.empty()) {
    pfs::RemoteOptions opts;
    if (!token(opts.token)) return nullptr;
    auto j = pfs::connect_jobs(addr, opts);
    if (!j) {
      fail(j.error());
      return nullptr;
    }
    jobs_ = std::move(*j);
    return jobs_.get();
  }
  auto* c = client();
  if (!c) return nullptr;
  // This process is short-lived: pipelines run here only when a command
  // waits for them (flush-commit); a server runs them on every commit.
  pfs::JobsOptions jo;
  jo.pipelines_on_commit = false;
  auto j = pfs::open_jobs(*c, jo);
  if (!j) {
    fail(j.error());
    return nullptr;
  }
  jobs_ = std::move(*j);
  return jobs_.get();
}

bool Context::token(std::string& out) {
  if (!globals.token_file.empty()) {
    if (!read_token_file(globals.token_file, out)) {
      fail(pfs::ErrorCode::kNotFound,
           fmt::format("cannot read the token file {}", globals.token_file));
      return false;
    }
  } else if (const char* t = std::getenv("PFS_TOKEN"); t && *t) {
    out = t;
  }
  return true;
}

bool is_url(std::string_view where) {
  return where.rfind("http://", 0) == 0 || where.rfind("https://", 0) == 0;
}

std::unique_ptr<pfs::Client> Context::open_end(const std::string& where) {
  if (is_url(where)) {
    pfs::RemoteOptions opts;
    if (!token(opts.token)) return nullptr;
    auto c = pfs::connect(where, opts);
    if (!c) {
      fail(c.error());
      return nullptr;
    }
    return std::move(*c);
  }
  auto c = pfs::open_store(where);
  if (!c) {
    fail(c.error());
    return nullptr;
  }
  return std::move(*c);
}

int Context::fail(const pfs::Error& e) {
  fmt::print(stderr, "pachctl: {}\n", e.message);
  status_ = pfs::exit_status(e.code);
  return status_;
}

void Context::print_json(const nlohmann::json& j) const { fmt::print("{}\n", j.dump(2)); }

std::string footer(std::initializer_list<std::string_view> examples, std::string_view exit_status) {
  std::string out = "\nExamples:\n";
  for (auto e : examples) out += fmt::format("  {}\n", e);
  // Wrapped at 78 columns: CLI11 prints footers as they are.
  out += "\n";
  std::string line = "Exit status:";
  std::size_t start = 0;
  while (start < exit_status.size()) {
    std::size_t end = exit_status.find(' ', start);
    if (end == std::string_view::npos) end = exit_status.size();
    std::string_view word = exit_status.substr(start, end - start);
    if (line.size() + 1 + word.size() > 78) {
      out += line + "\n";
      line = "  ";
    } else {
      line += ' ';
    }
    line += word;
    start = end + 1;
  }
  out += line + "\n";
  return out;
}

// The library's table, so that a local file and the store fail alike.
pfs::ErrorCode errno_code(int err) { return pfs::code_of_errno(err); }

std::string os_error(std::string_view what, int err) { return pfs::errno_message(what, err); }

bool read_input_file(const std::string& file, std::string& text, Context& ctx) {
  if (file == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    return true;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    ctx.fail(pfs::ErrorCode::kNotFound, os_error(fmt::format("cannot read {}", file), errno));
    return false;
  }
  text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

std::string human_size(std::uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return fmt::format("{} B", bytes);
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string short_time(std::int64_t ns) {
  std::string t = pfs::format_time_utc(ns);  // 2026-11-24T19:02:28.123456789Z
  return t.substr(0, 10) + " " + t.substr(11, 8);
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    fmt::print("{}\n", line);
  }
}

pfs::Ref read_ref(const std::string& commit, const std::string& branch) {
  if (!commit.empty()) return pfs::Ref::commit(commit);
  return pfs::Ref::branch(branch.empty() ? "master" : branch);
}

}  // namespace pachctl

int main(int argc, char** argv) {
  using namespace pachctl;
  CLI::App app{
      "pachctl: version-controlled file system for data (pfs)\n\n"
      "Every command works on a store: --store DIR, or $PFS_STORE, or\n"
      "$XDG_DATA_HOME/pfs, or ~/.local/share/pfs. Run 'pachctl help COMMAND'\n"
      "or 'man pachctl-COMMAND'."};
  app.name("pachctl");
  app.require_subcommand(0, 1);
  app.fallthrough();  // global options may follow the command: pachctl log --json
  app.set_version_flag("--version", std::string("pachctl ") + std::string(pfs::version()));
  Context ctx;
  app.add_option("-s,--store", ctx.globals.store,
                 "The store's directory (default: $PFS_STORE, else $XDG_DATA_HOME/pfs, else "
                 "~/.local/share/pfs)")
      ->type_name("DIR");
  app.add_option("-a,--address", ctx.globals.address,
                 "Work on the pfs server at this URL instead of a local store (default: "
                 "$PFS_ADDRESS), e.g. http://127.0.0.1:8080")
      ->type_name("URL");
  app.add_option("--token-file", ctx.globals.token_file,
                 "With --address: the server's bearer token is in this file (default: $PFS_TOKEN)")
      ->type_name("FILE");
  app.add_flag("--json", ctx.globals.json, "Print results as JSON, for scripts");

  setup_store_commands(app, ctx);
  setup_file_commands(app, ctx);
  setup_commit_commands(app, ctx);
  setup_branch_commands(app, ctx);
  setup_serve_command(app, ctx);
  setup_wait_commands(app, ctx);
  setup_job_commands(app, ctx);
  setup_pipeline_commands(app, ctx);
  setup_replication_commands(app, ctx);

  auto* help = app.add_subcommand("help", "Show the help of pachctl or of one command");
  std::string topic;
  help->add_option("COMMAND", topic, "The command to explain");
  help->footer(footer({"pachctl help", "pachctl help put-file"}, "0 success; 2 unknown command."));
  add_runner(help, [&]() -> int {
    // NOTE: App::help() follows the parsed subcommand ("help" itself), so
    // format through the formatter with the names a user typed.
    auto fmt_help = app.get_formatter();
    if (topic.empty()) {
      fmt::print("{}", fmt_help->make_help(&app, "pachctl", CLI::AppFormatMode::Normal));
      return 0;
    }
    for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      if (sub->get_name() == topic || sub->check_name(topic)) {
        fmt::print("{}", fmt_help->make_help(sub, "pachctl " + sub->get_name(),
                                             CLI::AppFormatMode::Normal));
        return 0;
      }
    }
    return ctx.fail(
        pfs::ErrorCode::kInvalidArgument,
        fmt::format("unknown command \"{}\" (list commands with: pachctl help)", topic));
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string cmd;
    for (auto* sub : app.get_subcommands()) cmd = " " + sub->get_name();
    fmt::print(stderr, "pachctl: {} (see: pachctl help{})\n", e.what(), cmd);
    return 2;
  }
  if (app.get_subcommands().empty()) {
    fmt::print("{}", app.help());
    return 0;
  }
  return run_selected(app);
}
