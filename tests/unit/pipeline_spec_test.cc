// pipeline_spec_test.cc: Pachyderm pipeline specs (pfs/pipelines.h,
// src/jobs/pipeline_spec.h): what parse_pipeline accepts (Pachyderm's own
// examples), what it refuses (naming the field), durations, globs, names,
// memory sizes, CPUs, and the canonical JSON's round trip.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <pfs/pipelines.h>

#include "fail.h"
#include "names.h"
#include "pipeline_spec.h"

using namespace pfs;
using namespace pfs::detail::jobs;
using namespace std::chrono_literals;

namespace {

// The message of parse_pipeline's error for `text`, "" when it parses.
std::string refusal(const std::string& text) {
  auto r = parse_pipeline(text);
  if (r) return "";
  CHECK(r.error().code == ErrorCode::kInvalidArgument);
  CHECK_MESSAGE(r.error().message.find("docs/pipelines.md") != std::string::npos, r.error().message);
  return r.error().message;
}

// True when parse_pipeline refuses `text` with a message that starts with
// `start` (the field's path).
bool refused_at(const std::string& text, const std::string& start) {
  std::string m = refusal(text);
  INFO(text);
  INFO(m);
  return !m.empty() && m.rfind(start, 0) == 0;
}

template <class Fn>
std::string thrown(Fn&& fn) {
  try {
    fn();
  } catch (pfs::detail::Fail& f) {
    return f.error.message;
  }
  return "";
}

// A valid spec with `extra` (JSON members, with a leading comma) added at
// the top level; `transform` and `input` replace the defaults when given.
std::string spec(const std::string& extra = "", const std::string& transform = "",
                 const std::string& input = "") {
  return R"({"pipeline": {"name": "p"}, "transform": )" +
         (transform.empty() ? std::string(R"({"image": "localhost/p:1", "cmd": ["/p"]})") : transform) +
         R"(, "input": )" + (input.empty() ? std::string(R"({"pfs": {"repo": "data", "glob": "/*"}})") : input) +
         extra + "}";
}

std::string with_input(const std::string& input) { return spec("", "", input); }
std::string with_transform(const std::string& transform) { return spec("", transform); }

void same_input(const PipelineInput& a, const PipelineInput& b) {
  CHECK(a.kind == b.kind);
  CHECK(a.name == b.name);
  CHECK(a.repo == b.repo);
  CHECK(a.branch == b.branch);
  CHECK(a.glob == b.glob);
  REQUIRE(a.inputs.size() == b.inputs.size());
  for (std::size_t i = 0; i < a.inputs.size(); i++) same_input(a.inputs[i], b.inputs[i]);
}

// parse_pipeline(pipeline_json(s)) gives back s, field by field.
void round_trips(const PipelineSpec& s) {
  std::string text = pipeline_json(s);
  INFO(text);
  CHECK(text.back() == '\n');
  auto again = parse_pipeline(text);
  REQUIRE_MESSAGE(again, again.error().message);
  const PipelineSpec& t = *again;
  CHECK(t.name == s.name);
  CHECK(t.description == s.description);
  CHECK(t.image == s.image);
  CHECK(t.cmd == s.cmd);
  CHECK(t.stdin_lines == s.stdin_lines);
  CHECK(t.env == s.env);
  same_input(t.input, s.input);
  CHECK(t.parallelism == s.parallelism);
  CHECK(t.datum_tries == s.datum_tries);
  CHECK(t.datum_timeout == s.datum_timeout);
  CHECK(t.job_timeout == s.job_timeout);
  CHECK(t.memory == s.memory);
  CHECK(t.cpu == s.cpu);
  CHECK(t.reprocess == s.reprocess);
  CHECK(pipeline_json(t) == text);
}

const char* const kEdges =
    R"({"pipeline":{"name":"edges"},"description":"A pipeline that performs image edge detection by using the OpenCV library.","transform":{"cmd":["python3","/edges.py"],"image":"pachyderm/opencv:1.0"},"input":{"pfs":{"repo":"images","glob":"/*"}}})";

const char* const kMontage = R"({
  "pipeline": {"name": "montage"},
  "description": "A pipeline that combines images from the `images` and `edges` repositories into a montage.",
  "input": {
    "cross": [
      {"pfs": {"glob": "/", "repo": "images"}},
      {"pfs": {"glob": "/", "repo": "edges"}}
    ]
  },
  "transform": {
    "cmd": ["sh"],
    "image": "v4tech/imagemagick",
    "stdin": ["montage -shadow -background SkyBlue -geometry 300x300+2+2 $(find -L /pfs/images /pfs/edges -type f | sort) /pfs/out/montage.png"]
  }
})";

}  // namespace

TEST_CASE("parse_pipeline reads Pachyderm's edges and montage examples") {
  auto e = parse_pipeline(kEdges);
  REQUIRE_MESSAGE(e, e.error().message);
  CHECK(e->name == "edges");
  CHECK(e->description == "A pipeline that performs image edge detection by using the OpenCV library.");
  CHECK(e->image == "pachyderm/opencv:1.0");
  CHECK(e->cmd == std::vector<std::string>{"python3", "/edges.py"});
  CHECK(e->input.kind == PipelineInput::Kind::kPfs);
  CHECK(e->input.repo == "images");
  CHECK(e->input.name == "images");
  CHECK(e->input.branch == "");
  CHECK(e->input.glob == "/*");
  CHECK(e->parallelism == 1);
  CHECK(e->datum_tries == 3);
  CHECK(e->datum_timeout == 0s);
  CHECK(e->job_timeout == 0s);
  CHECK(e->memory == 0);
  CHECK(e->cpu == 0);
  CHECK(e->reprocess == ReprocessSpec::kUntilSuccess);
  CHECK(pipeline_inputs(*e) == std::vector<std::string>{"images"});

  auto m = parse_pipeline(kMontage);
  REQUIRE_MESSAGE(m, m.error().message);
  CHECK(m->name == "montage");
  CHECK(m->cmd == std::vector<std::string>{"sh"});
  REQUIRE(m->stdin_lines.size() == 1);
  CHECK(m->stdin_lines[0].rfind("montage -shadow", 0) == 0);
  CHECK(m->input.kind == PipelineInput::Kind::kCross);
  REQUIRE(m->input.inputs.size() == 2);
  CHECK(m->input.inputs[0].repo == "images");
  CHECK(m->input.inputs[0].glob == "/");
  CHECK(m->input.inputs[1].name == "edges");
  CHECK(pipeline_inputs(*m) == std::vector<std::string>{"edges", "images"});
  round_trips(*e);
  round_trips(*m);
}

TEST_CASE("parse_pipeline reads every optional field") {
  auto s = parse_pipeline(R"({
    "pipeline": {"name": "All_fields-2"},
    "description": "every field",
    "transform": {"image": "localhost:5000/team/t:v1", "cmd": "/bin/run --name 'a b'", "stdin": ["one", "two"],
                  "env": {"MODE": "fast", "_X1": ""}},
    "input": {"union": [{"pfs": {"repo": "a.b", "branch": "master", "glob": "/**", "name": "in"}},
                        {"cross": [{"pfs": {"repo": "c", "glob": "/*/*.csv"}},
                                   {"pfs": {"repo": "d", "glob": "/[!.]*", "name": "in"}}]}]},
    "parallelism_spec": {"constant": 4},
    "datum_tries": 1,
    "datum_timeout": "1m30s",
    "job_timeout": "1.5h",
    "resource_limits": {"memory": "1.5G", "cpu": "500m"},
    "reprocess_spec": "every_job"})");
  REQUIRE_MESSAGE(s, s.error().message);
  CHECK(s->name == "All_fields-2");
  CHECK(s->cmd == std::vector<std::string>{"/bin/run", "--name", "a b"});
  CHECK(s->stdin_lines == std::vector<std::string>{"one", "two"});
  CHECK(s->env == std::map<std::string, std::string>{{"MODE", "fast"}, {"_X1", ""}});
  CHECK(s->input.kind == PipelineInput::Kind::kUnion);
  CHECK(s->input.inputs[0].branch == "master");
  CHECK(s->input.inputs[0].name == "in");
  CHECK(s->input.inputs[1].inputs[1].name == "in");
  CHECK(s->parallelism == 4);
  CHECK(s->datum_tries == 1);
  CHECK(s->datum_timeout == 90s);
  CHECK(s->job_timeout == 5400s);
  CHECK(s->memory == 1500000000);
  CHECK(s->cpu == 0.5);
  CHECK(s->reprocess == ReprocessSpec::kEveryJob);
  CHECK(pipeline_inputs(*s) == std::vector<std::string>{"a.b", "c", "d"});
  round_trips(*s);

  // Empty optional objects leave the defaults; the same repo read twice is listed once.
  auto d = parse_pipeline(spec(R"(, "parallelism_spec": {}, "resource_limits": {}, "description": "")", "",
                               R"({"union": [{"pfs": {"repo": "x", "glob": "/"}}, {"pfs": {"repo": "x", "glob": "/*"}}]})"));
  REQUIRE_MESSAGE(d, d.error().message);
  CHECK(d->parallelism == 1);
  CHECK(d->memory == 0);
  CHECK(d->cpu == 0);
  CHECK(pipeline_inputs(*d) == std::vector<std::string>{"x"});
  round_trips(*d);

  auto c = parse_pipeline(spec(R"(, "resource_limits": {"memory": 268435456, "cpu": 2}, "datum_timeout": "0s")"));
  REQUIRE_MESSAGE(c, c.error().message);
  CHECK(c->memory == 256ull << 20);
  CHECK(c->cpu == 2);
  CHECK(c->datum_timeout == 0s);
  round_trips(*c);
}

TEST_CASE("pipeline_json writes Pachyderm's shape") {
  auto s = parse_pipeline(spec(R"(, "datum_timeout": "2m", "resource_limits": {"memory": "64Mi", "cpu": 1.25})"));
  REQUIRE(s);
  std::string text = pipeline_json(*s);
  CHECK(text.find("\n  \"pipeline\": {\n") != std::string::npos);  // two spaces of indent
  auto j = nlohmann::json::parse(text);
  CHECK(j["pipeline"]["name"] == "p");
  CHECK(!j.contains("description"));
  CHECK(j["transform"]["image"] == "localhost/p:1");
  CHECK(j["transform"]["cmd"] == nlohmann::json::array({"/p"}));
  CHECK(!j["transform"].contains("stdin"));
  CHECK(!j["transform"].contains("env"));
  CHECK(j["input"]["pfs"]["repo"] == "data");
  CHECK(j["input"]["pfs"]["name"] == "data");
  CHECK(j["input"]["pfs"]["glob"] == "/*");
  CHECK(j["parallelism_spec"]["constant"] == 1);
  CHECK(j["datum_tries"] == 3);
  CHECK(j["datum_timeout"] == "120s");
  CHECK(!j.contains("job_timeout"));
  CHECK(j["resource_limits"]["memory"] == 64ull << 20);
  CHECK(j["resource_limits"]["cpu"] == 1.25);
  CHECK(j["reprocess_spec"] == "until_success");
  round_trips(*s);
}

TEST_CASE("parse_pipeline refuses what is not a spec") {
  CHECK(refusal("{\"pipeline\": ").find("not JSON") != std::string::npos);
  CHECK(refusal("{\"pipeline\": ").find("line 1, column") != std::string::npos);  // nlohmann's position
  CHECK(refusal("[1]").find("JSON object") != std::string::npos);
  CHECK(refusal("\"edges\"").find("JSON object") != std::string::npos);
}

TEST_CASE("parse_pipeline refuses unknown fields, naming their path") {
  CHECK(refused_at(spec(R"(, "salt": "x")"), "unknown field \"salt\""));
  CHECK(refused_at(R"({"pipeline": {"name": "p", "project": {"name": "default"}}, "transform": {"image": "a", "cmd": ["/a"]}, "input": {"pfs": {"repo": "d", "glob": "/"}}})",
                   "unknown field \"pipeline.project\""));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": ["/a"], "image_pull_secrets": ["s"]})"),
                   "unknown field \"transform.image_pull_secrets\""));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "d", "glob": "/"}, "lazy": true})"), "unknown field \"input.lazy\""));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "d", "glob": "/", "lazy": true}})"),
                   "unknown field \"input.pfs.lazy\""));
  CHECK(refused_at(with_input(R"({"join": [{"pfs": {"repo": "d", "glob": "/"}}]})"), "unknown field \"input.join\""));
  CHECK(refused_at(with_input(R"({"cross": [{"pfs": {"repo": "d", "glob": "/"}}, {"pfs": {"repo": "e", "glob": "/", "lazy": 1}}]})"),
                   "unknown field \"input.cross[1].pfs.lazy\""));
  CHECK(refused_at(spec(R"(, "parallelism_spec": {"coefficient": 1})"), "unknown field \"parallelism_spec.coefficient\""));
  CHECK(refused_at(spec(R"(, "resource_limits": {"gpu": {"number": 1}})"), "unknown field \"resource_limits.gpu\""));
}

TEST_CASE("parse_pipeline refuses missing and mistyped fields, naming them") {
  CHECK(refused_at(R"({"transform": {"image": "a", "cmd": ["/a"]}, "input": {"pfs": {"repo": "d", "glob": "/"}}})",
                   "pipeline: missing"));
  CHECK(refused_at(R"({"pipeline": {}, "transform": {"image": "a", "cmd": ["/a"]}, "input": {"pfs": {"repo": "d", "glob": "/"}}})",
                   "pipeline.name: missing"));
  CHECK(refused_at(R"({"pipeline": "p", "transform": {"image": "a", "cmd": ["/a"]}, "input": {"pfs": {"repo": "d", "glob": "/"}}})",
                   "pipeline: must be an object"));
  CHECK(refused_at(R"({"pipeline": {"name": 1}, "transform": {"image": "a", "cmd": ["/a"]}, "input": {"pfs": {"repo": "d", "glob": "/"}}})",
                   "pipeline.name: must be a string"));
  CHECK(refused_at(R"({"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "d", "glob": "/"}}})", "transform: missing"));
  CHECK(refused_at(R"({"pipeline": {"name": "p"}, "transform": {"image": "a", "cmd": ["/a"]}})", "input: missing"));
  CHECK(refused_at(spec(R"(, "description": 5)"), "description: must be a string"));
  CHECK(refused_at(with_transform(R"(["a"])"), "transform: must be an object"));
  CHECK(refused_at(with_transform(R"({"cmd": ["/a"]})"), "transform.image: missing"));
  CHECK(refused_at(with_transform(R"({"image": 1, "cmd": ["/a"]})"), "transform.image: must be a string"));
  CHECK(refused_at(with_transform(R"({"image": "Upper/Case", "cmd": ["/a"]})"), "transform.image: \"Upper/Case\""));
  CHECK(refused_at(with_transform(R"({"image": "a"})"), "transform.cmd: missing"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": []})"), "transform.cmd: is empty"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": [""]})"), "transform.cmd: is empty"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": "  "})"), "transform.cmd: is empty"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": "a 'b"})"), "transform.cmd: a single quote"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": ["/a", 1]})"), "transform.cmd[1]: must be a string"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": {"a": 1}})"), "transform.cmd: must be an array of strings"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": ["/a\u0000"]})"), "transform.cmd: contains a NUL"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": ["/a"], "stdin": "echo"})"), "transform.stdin: must be an array"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": ["/a"], "stdin": [1]})"), "transform.stdin[0]: must be a string"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": ["/a"], "env": ["A=1"]})"), "transform.env: must be an object"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": ["/a"], "env": {"A": 1}})"), "transform.env.A: must be a string"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": ["/a"], "env": {"1A": "x"}})"), "transform.env.1A: \"1A\" is not a variable name"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": ["/a"], "env": {"A-B": "x"}})"), "transform.env.A-B:"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": ["/a"], "env": {"": "x"}})"), "transform.env.:"));
  CHECK(refused_at(with_transform(R"({"image": "a", "cmd": ["/a"], "env": {"A": "x\u0000"}})"), "transform.env.A: contains a NUL"));
  CHECK(refused_at(spec(R"(, "parallelism_spec": 4)"), "parallelism_spec: must be an object"));
  CHECK(refused_at(spec(R"(, "parallelism_spec": {"constant": 0})"), "parallelism_spec.constant: 0 is out of range"));
  CHECK(refused_at(spec(R"(, "parallelism_spec": {"constant": 65})"), "parallelism_spec.constant: 65 is out of range"));
  CHECK(refused_at(spec(R"(, "parallelism_spec": {"constant": -1})"), "parallelism_spec.constant: -1 is out of range"));
  CHECK(refused_at(spec(R"(, "parallelism_spec": {"constant": 1.5})"), "parallelism_spec.constant: must be an integer"));
  CHECK(refused_at(spec(R"(, "parallelism_spec": {"constant": "4"})"), "parallelism_spec.constant: must be an integer"));
  CHECK(refused_at(spec(R"(, "datum_tries": 0)"), "datum_tries: 0 is out of range"));
  CHECK(refused_at(spec(R"(, "datum_tries": 101)"), "datum_tries: 101 is out of range"));
  CHECK(refused_at(spec(R"(, "datum_tries": true)"), "datum_tries: must be an integer"));
  CHECK(refused_at(spec(R"(, "datum_timeout": 30)"), "datum_timeout: must be a duration string"));
  CHECK(refused_at(spec(R"(, "datum_timeout": "soon")"), "datum_timeout: \"soon\" is not a duration"));
  CHECK(refused_at(spec(R"(, "job_timeout": "-1h")"), "job_timeout: \"-1h\" is not a duration: it is negative"));
  CHECK(refused_at(spec(R"(, "resource_limits": [])"), "resource_limits: must be an object"));
  CHECK(refused_at(spec(R"(, "resource_limits": {"memory": "lots"})"), "resource_limits.memory: \"lots\""));
  CHECK(refused_at(spec(R"(, "resource_limits": {"memory": "256mb"})"), "resource_limits.memory: \"256mb\""));
  CHECK(refused_at(spec(R"(, "resource_limits": {"memory": 1024})"), "resource_limits.memory: 1024 bytes is too little"));
  CHECK(refused_at(spec(R"(, "resource_limits": {"memory": "1Ki"})"), "resource_limits.memory: 1024 bytes is too little"));
  CHECK(refused_at(spec(R"(, "resource_limits": {"memory": -5})"), "resource_limits.memory: -5 is negative"));
  CHECK(refused_at(spec(R"(, "resource_limits": {"memory": 1.5e9})"), "resource_limits.memory: must be a size"));
  CHECK(refused_at(spec(R"(, "resource_limits": {"memory": "2000Ti"})"), "resource_limits.memory:"));
  CHECK(refused_at(spec(R"(, "resource_limits": {"cpu": 0})"), "resource_limits.cpu: 0 is out of range"));
  CHECK(refused_at(spec(R"(, "resource_limits": {"cpu": -1})"), "resource_limits.cpu: -1 is out of range"));
  CHECK(refused_at(spec(R"(, "resource_limits": {"cpu": 1025})"), "resource_limits.cpu: 1025 is out of range"));
  CHECK(refused_at(spec(R"(, "resource_limits": {"cpu": "0m"})"), "resource_limits.cpu:"));
  CHECK(refused_at(spec(R"(, "resource_limits": {"cpu": "half"})"), "resource_limits.cpu: \"half\""));
  CHECK(refused_at(spec(R"(, "resource_limits": {"cpu": true})"), "resource_limits.cpu: must be a number"));
  CHECK(refused_at(spec(R"(, "reprocess_spec": "sometimes")"), "reprocess_spec: \"sometimes\""));
  CHECK(refused_at(spec(R"(, "reprocess_spec": 1)"), "reprocess_spec: must be a string"));
}

TEST_CASE("parse_pipeline refuses bad names") {
  auto named = [](const std::string& name) {
    return R"({"pipeline": {"name": ")" + name +
           R"("}, "transform": {"image": "a", "cmd": ["/a"]}, "input": {"pfs": {"repo": "d", "glob": "/"}}})";
  };
  CHECK(refusal(named("edges_2-B")) == "");
  CHECK(refusal(named(std::string(63, 'a'))) == "");
  for (std::string bad : {std::string(""), std::string(64, 'a'), std::string("_p"), std::string("-p"),
                          std::string("a.b"), std::string("a b"), std::string("a/b"), std::string("é")})
    CHECK_MESSAGE(refused_at(named(bad), "pipeline.name: \"" + bad + "\" is not a valid pipeline name"), bad);
}

TEST_CASE("parse_pipeline checks inputs") {
  // Exactly one of pfs, cross and union.
  CHECK(refused_at(with_input("{}"), "input: must have exactly one of pfs, cross and union, not none"));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "d", "glob": "/"}, "union": []})"), "input: must have exactly one"));
  CHECK(refused_at(with_input("[]"), "input: must be an object"));
  CHECK(refused_at(with_input(R"({"pfs": "d"})"), "input.pfs: must be an object"));
  CHECK(refused_at(with_input(R"({"cross": []})"), "input.cross: is empty"));
  CHECK(refused_at(with_input(R"({"union": {"pfs": {}}})"), "input.union: must be an array"));
  CHECK(refused_at(with_input(R"({"union": [1]})"), "input.union[0]: must be an object"));
  // pfs's fields.
  CHECK(refused_at(with_input(R"({"pfs": {"glob": "/"}})"), "input.pfs.repo: missing"));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "d"}})"), "input.pfs.glob: missing"));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": 1, "glob": "/"}})"), "input.pfs.repo: must be a string"));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "_d", "glob": "/"}})"), "input.pfs.repo: invalid branch name"));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": ".d", "glob": "/"}})"), "input.pfs.repo: invalid branch name"));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "a..b", "glob": "/"}})"), "input.pfs.repo: invalid branch name"));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "a/b", "glob": "/"}})"), "input.pfs.repo: invalid branch name"));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "d", "glob": "*"}})"), "input.pfs.glob: \"*\" is not a glob"));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "d", "glob": 1}})"), "input.pfs.glob: must be a string"));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "d", "glob": "/", "branch": "dev"}})"), "input.pfs.branch: \"dev\""));
  CHECK(refusal(with_input(R"({"pfs": {"repo": "d", "glob": "/", "branch": "dev"}})")).find("pfs branch") !=
        std::string::npos);
  CHECK(refusal(with_input(R"({"pfs": {"repo": "d", "glob": "/", "branch": ""}})")) == "");
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "d", "glob": "/", "branch": 1}})"), "input.pfs.branch: must be a string"));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "d", "glob": "/", "name": "out"}})"), "input.pfs.name: \"out\""));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "out", "glob": "/"}})"), "input.pfs.name (absent"));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "d", "glob": "/", "name": ".d"}})"), "input.pfs.name: \".d\""));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "d", "glob": "/", "name": "a/b"}})"), "input.pfs.name: \"a/b\""));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "d", "glob": "/", "name": ""}})"), "input.pfs.name: \"\""));
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "d", "glob": "/", "name": 2}})"), "input.pfs.name: must be a string"));
  CHECK(refusal(with_input(R"({"pfs": {"repo": "d", "glob": "/", "name": "a.b-c_D"}})")) == "");
  // Reading its own output.
  CHECK(refused_at(with_input(R"({"pfs": {"repo": "p", "glob": "/"}})"), "input.pfs.repo: pipeline \"p\" cannot read its own output"));
  CHECK(refused_at(with_input(R"({"union": [{"pfs": {"repo": "d", "glob": "/"}}, {"pfs": {"repo": "p", "glob": "/", "name": "x"}}]})"),
                   "input.union[1].pfs.repo: pipeline \"p\" cannot read its own output"));
}

TEST_CASE("parse_pipeline: a cross mounts each name once, a union may repeat one") {
  CHECK(refused_at(with_input(R"({"cross": [{"pfs": {"repo": "a", "glob": "/"}}, {"pfs": {"repo": "a", "glob": "/*"}}]})"),
                   "input.cross: two of its inputs are named \"a\""));
  CHECK(refused_at(with_input(R"({"cross": [{"pfs": {"repo": "a", "glob": "/"}}, {"pfs": {"repo": "b", "glob": "/", "name": "a"}}]})"),
                   "input.cross: two of its inputs are named \"a\""));
  // Through a union inside the cross.
  CHECK(refused_at(with_input(R"({"cross": [{"pfs": {"repo": "a", "glob": "/"}},
                                            {"union": [{"pfs": {"repo": "b", "glob": "/"}}, {"pfs": {"repo": "a", "glob": "/"}}]}]})"),
                   "input.cross: two of its inputs are named \"a\""));
  // Nested: the inner cross is named in the message.
  CHECK(refused_at(with_input(R"({"union": [{"cross": [{"pfs": {"repo": "a", "glob": "/"}}, {"pfs": {"repo": "b", "glob": "/", "name": "a"}}]}]})"),
                   "input.union[0].cross: two of its inputs are named \"a\""));
  CHECK(refusal(with_input(R"({"union": [{"pfs": {"repo": "a", "glob": "/"}}, {"pfs": {"repo": "b", "glob": "/", "name": "a"}}]})")) == "");
  // A union of two same-named inputs crossed with another name is fine.
  CHECK(refusal(with_input(R"({"cross": [{"union": [{"pfs": {"repo": "a", "glob": "/"}}, {"pfs": {"repo": "b", "glob": "/", "name": "a"}}]},
                                         {"pfs": {"repo": "c", "glob": "/"}}]})")) == "");
}

TEST_CASE("parse_pipeline limits inputs' nesting and number") {
  auto nested = [](int depth) {
    std::string in = R"({"pfs": {"repo": "d", "glob": "/"}})";
    for (int i = 1; i < depth; i++) in = R"({"union": [)" + in + "]}";
    return with_input(in);
  };
  CHECK(refusal(nested(16)) == "");
  CHECK(refusal(nested(17)).find("nested more than 16 deep") != std::string::npos);
  auto many = [](int n) {
    std::string in = R"({"union": [)";
    for (int i = 0; i < n; i++) in += std::string(i ? "," : "") + R"({"pfs": {"repo": "r)" + std::to_string(i) + R"(", "glob": "/"}})";
    return with_input(in + "]}");
  };
  auto ok = parse_pipeline(many(64));
  REQUIRE_MESSAGE(ok, ok.error().message);
  CHECK(pipeline_inputs(*ok).size() == 64);
  round_trips(*ok);
  CHECK(refused_at(many(65), "input.union[64].pfs: a spec may have at most 64 pfs inputs"));
}

TEST_CASE("parse_duration reads Go's durations") {
  CHECK(parse_duration("0s") == 0s);
  CHECK(parse_duration("0") == 0s);
  CHECK(parse_duration("30s") == 30s);
  CHECK(parse_duration("90") == 90s);
  CHECK(parse_duration("5m") == 300s);
  CHECK(parse_duration("1h30m") == 5400s);
  CHECK(parse_duration("1.5h") == 5400s);
  CHECK(parse_duration("30m1h") == 5400s);
  CHECK(parse_duration("+2s") == 2s);
  CHECK(parse_duration("500ms500ms") == 1s);
  CHECK(parse_duration("2000ms") == 2s);
  CHECK(parse_duration("1000000us") == 1s);
  CHECK(parse_duration("1000000\u00b5s") == 1s);
  CHECK(parse_duration("1000000000ns") == 1s);
  CHECK(parse_duration(".5m") == 30s);
  CHECK(parse_duration("1.m") == 60s);
  CHECK(parse_duration("1.0000000001s") == 1s);  // below a nanosecond, dropped as Go does
  CHECK(parse_duration("2562047h") == std::chrono::seconds(2562047ll * 3600));
  CHECK(parse_duration("9223372036s") == std::chrono::seconds(9223372036ll));
  for (const char* bad : {"", "-1s", "-0s", "+", "s", "1x", "1h 30m", " 1s", "1s ", "1hh", "1.5", "500ms",
                          "1.5s", "1h30", "..5s", "1.2.3s", "2562048h", "9223372037s", "99999999999999999999s",
                          "1e3s", "0x10s", "1S", "1H", "1d"})
    CHECK_MESSAGE(thrown([&] { parse_duration(bad); }).find("is not a duration") != std::string::npos, bad);
  CHECK(thrown([] { parse_duration("-5s"); }).find("negative") != std::string::npos);
  CHECK(thrown([] { parse_duration("1.5s"); }).find("whole number of seconds") != std::string::npos);
  CHECK(thrown([] { parse_duration("3000000h"); }).find("too long") != std::string::npos);
}

TEST_CASE("check_glob takes Pachyderm's globs") {
  for (const char* ok : {"/", "/*", "/*/*", "/**", "/data/*.csv", "/[abc]*", "/[!.]*", "/[]a]", "/[!]a]", "/a\\[b",
                         "/?", "/a b/c", "/.hidden", "/a..b", "/é*"})
    CHECK_MESSAGE(thrown([&] { check_glob(ok); }) == "", ok);
  for (const char* bad : {"", "*", "data/*", "//", "/a//b", "/a/", "/.", "/./a", "/..", "/a/../b", "/[ab",
                          "/[a/b]", "/a[", "/[]", "/a\\", "/a\nb", "/a\tb", "/\x7f"})
    CHECK_MESSAGE(thrown([&] { check_glob(bad); }).find("is not a glob") != std::string::npos, bad);
  CHECK(thrown([] { check_glob(std::string_view("/a\0b", 4)); }) != "");
  CHECK(thrown([] { check_glob("/\xff"); }).find("UTF-8") != std::string::npos);
  CHECK(thrown([] { check_glob("/" + std::string(4096, 'a')); }) != "");
}

TEST_CASE("check_pipeline_name accepts only names the store takes as branches") {
  for (const char* ok : {"a", "edges", "Edges_2", "a-b", "0day", "A"}) {
    CHECK_MESSAGE(thrown([&] { check_pipeline_name("pipeline.name", ok); }) == "", ok);
    CHECK_MESSAGE(thrown([&] { pfs::detail::check_branch_name(ok); }) == "", ok);
  }
  CHECK(thrown([] { check_pipeline_name("pipeline.name", std::string(63, 'x')); }) == "");
  for (const char* bad : {"", "_a", "-a", ".a", "a.b", "a..b", "a/b", "a b", "a:b", "é"})
    CHECK_MESSAGE(thrown([&] { check_pipeline_name("pipeline.name", bad); }).rfind("pipeline.name: ", 0) == 0, bad);
  CHECK(thrown([] { check_pipeline_name("x", std::string(64, 'x')); }).find("63") != std::string::npos);
}

TEST_CASE("parse_quantity_bytes reads Kubernetes memory sizes") {
  CHECK(parse_quantity_bytes("0") == 0);
  CHECK(parse_quantity_bytes("4096") == 4096);
  CHECK(parse_quantity_bytes("64Ki") == 64ull << 10);
  CHECK(parse_quantity_bytes("512Mi") == 512ull << 20);
  CHECK(parse_quantity_bytes("2Gi") == 2ull << 30);
  CHECK(parse_quantity_bytes("1Ti") == 1ull << 40);
  CHECK(parse_quantity_bytes("1K") == 1000);
  CHECK(parse_quantity_bytes("512M") == 512000000);
  CHECK(parse_quantity_bytes("1G") == 1000000000);
  CHECK(parse_quantity_bytes("1.5G") == 1500000000);
  CHECK(parse_quantity_bytes("2T") == 2000000000000);
  CHECK(parse_quantity_bytes("1.5Gi") == 3ull << 29);
  CHECK(parse_quantity_bytes("0.5Ki") == 512);
  CHECK(parse_quantity_bytes("1.000001Ki") == 1025);  // a fraction of a byte rounds up
  CHECK(parse_quantity_bytes("1.5") == 2);
  // Lower case as parse_size (pfs job descriptors): powers of 1024.
  CHECK(parse_quantity_bytes("64k") == 64ull << 10);
  CHECK(parse_quantity_bytes("256m") == 256ull << 20);
  CHECK(parse_quantity_bytes("1g") == 1ull << 30);
  CHECK(parse_quantity_bytes("1t") == 1ull << 40);
  for (const char* bad : {"", "G", ".G", "1 G", "1GB", "1gib", "1Mb", "1e9", "-1G", "1.1234567G", "1KI", "1m ",
                          "99999999999999999999", "99999999Ti", "0x10"})
    CHECK_MESSAGE(thrown([&] { parse_quantity_bytes(bad); }).find("is not a memory size") != std::string::npos, bad);
}

TEST_CASE("parse_cpu reads CPUs and millicores") {
  CHECK(parse_cpu("1") == 1);
  CHECK(parse_cpu("0.5") == 0.5);
  CHECK(parse_cpu("2.25") == 2.25);
  CHECK(parse_cpu(".5") == 0.5);
  CHECK(parse_cpu("500m") == 0.5);
  CHECK(parse_cpu("1500m") == 1.5);
  CHECK(parse_cpu("100m") == 0.1);
  for (const char* bad : {"", "m", "0.5m", "-1", "1e3", "inf", "nan", "1..2", "1.2.3", "half", " 1", "1 ", "0x1", "."})
    CHECK_MESSAGE(thrown([&] { parse_cpu(bad); }).find("is not a number of CPUs") != std::string::npos, bad);
  auto s = parse_pipeline(spec(R"(, "resource_limits": {"cpu": "250m"})"));
  REQUIRE(s);
  CHECK(s->cpu == 0.25);
  round_trips(*s);
  auto t = parse_pipeline(spec(R"(, "resource_limits": {"cpu": 0.1})"));
  REQUIRE(t);
  CHECK(t->cpu == 0.1);
  round_trips(*t);
  auto u = parse_pipeline(spec(R"(, "resource_limits": {"cpu": 1024})"));
  REQUIRE(u);
  round_trips(*u);
}

TEST_CASE("state names") {
  CHECK(pipeline_run_state_name(PipelineRunState::kQueued) == "queued");
  CHECK(pipeline_run_state_name(PipelineRunState::kRunning) == "running");
  CHECK(pipeline_run_state_name(PipelineRunState::kSuccess) == "success");
  CHECK(pipeline_run_state_name(PipelineRunState::kFailure) == "failure");
  CHECK(pipeline_run_state_name(PipelineRunState::kKilled) == "killed");
  CHECK(pipeline_run_state_name(PipelineRunState::kUnrunnable) == "unrunnable");
  CHECK(datum_state_name(DatumState::kPending) == "pending");
  CHECK(datum_state_name(DatumState::kRunning) == "running");
  CHECK(datum_state_name(DatumState::kProcessed) == "processed");
  CHECK(datum_state_name(DatumState::kSkipped) == "skipped");
  CHECK(datum_state_name(DatumState::kRecovered) == "recovered");
  CHECK(datum_state_name(DatumState::kFailed) == "failed");
}
