// jobs_spec_test.cc: job descriptors and their pieces (src/jobs/spec.h):
// what parse_job accepts, what it refuses (naming the field), command
// splitting, image references, sizes, inputs, cycles, URL paths.
#include <doctest/doctest.h>

#include <pfs/jobs.h>
#include <pfs/json.h>

#include "container_http.h"
#include "engine.h"
#include "fail.h"
#include "spec.h"

using namespace pfs;
using namespace pfs::detail::jobs;

namespace {

// The message of parse_job's error for `text`, "" when it parses.
std::string refusal(const std::string& text, const std::string& name = "j") {
  auto r = parse_job(name, text);
  if (r) return "";
  CHECK(r.error().code == ErrorCode::kInvalidArgument);
  return r.error().message;
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

const std::string kOk =
    R"({"type": "map", "input": "data", "image": "localhost/upper:1", "command": ["/upper", "-v"]})";

}  // namespace

TEST_CASE("parse_job reads v0.8's descriptor and every optional field") {
  auto j = parse_job("upper", kOk);
  REQUIRE(j);
  CHECK(j->name == "upper");
  CHECK(j->type == JobType::kMap);
  CHECK(j->input == "data");
  CHECK(j->command == std::vector<std::string>{"/upper", "-v"});
  CHECK(j->parallel == 0);
  auto k = parse_job("count", R"({"type": "reduce", "input": "job/upper", "image": "debian@sha256:)" +
                                  std::string(64, 'a') +
                                  R"(", "command": "/bin/count --words 'a b'", "parallel": 4, "timeout": 30,
                                  "limit": 100, "cpu-shares": 512, "memory": "256m"})");
  REQUIRE(k);
  CHECK(k->type == JobType::kReduce);
  CHECK(k->command == std::vector<std::string>{"/bin/count", "--words", "a b"});
  CHECK(k->parallel == 4);
  CHECK(k->timeout == 30);
  CHECK(k->limit == 100);
  CHECK(k->cpu_shares == 512);
  CHECK(k->memory == 256ull << 20);
  // The stored form reads back to the same descriptor.
  auto again = parse_job("count", job_json(*k));
  REQUIRE(again);
  CHECK(job_json(*again) == job_json(*k));
  nlohmann::json js = *k;
  CHECK(js.get<JobSpec>().memory == k->memory);
}

TEST_CASE("parse_job refuses bad descriptors, naming the field") {
  CHECK(refusal("not json").find("not JSON") != std::string::npos);
  CHECK(refusal("[1, 2]").find("JSON object") != std::string::npos);
  CHECK(refusal(R"({"input": "d", "image": "a", "command": ["/a"]})").rfind("type: missing", 0) == 0);
  CHECK(refusal(R"({"type": "sort", "input": "d", "image": "a", "command": ["/a"]})").rfind("type:", 0) == 0);
  CHECK(refusal(R"({"type": 1, "input": "d", "image": "a", "command": ["/a"]})").rfind("type:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "image": "a", "command": ["/a"]})").rfind("input: missing", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "../x", "image": "a", "command": ["/a"]})").rfind("input:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "job/j", "image": "a", "command": ["/a"]})").find("own output") !=
        std::string::npos);
  CHECK(refusal(R"({"type": "map", "input": "ftp://x/y", "image": "a", "command": ["/a"]})").rfind("input:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "s3://A_B/x", "image": "a", "command": ["/a"]})").rfind("input:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "Upper/Case", "command": ["/a"]})").rfind("image:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "a b", "command": ["/a"]})").rfind("image:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "oci-archive:rel.tar", "command": ["/a"]})").rfind("image:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "a"})").rfind("command: missing", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "a", "command": []})").rfind("command:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "a", "command": [1]})").rfind("command:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "a", "command": "  "})").rfind("command:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "a", "command": ["/a"], "parallel": -1})").rfind("parallel:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "a", "command": ["/a"], "parallel": 1.5})").rfind("parallel:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "a", "command": ["/a"], "parallel": 100000})").rfind("parallel:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "a", "command": ["/a"], "timeout": "1m"})").rfind("timeout:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "a", "command": ["/a"], "cpu-shares": 1})").rfind("cpu-shares:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "a", "command": ["/a"], "memory": "lots"})").rfind("memory:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "a", "command": ["/a"], "memory": 1024})").rfind("memory:", 0) == 0);
  CHECK(refusal(R"({"type": "map", "input": "d", "image": "a", "command": ["/a"], "colour": "red"})").rfind("colour: unknown", 0) == 0);
  CHECK(refusal(R"({"name": "other", "type": "map", "input": "d", "image": "a", "command": ["/a"]})").rfind("name:", 0) == 0);
  CHECK(refusal(kOk, "bad/name").find("invalid job name") != std::string::npos);
  CHECK(refusal(kOk, ".hidden").find("invalid job name") != std::string::npos);
}

TEST_CASE("split_command splits as a shell, expanding nothing") {
  CHECK(split_command("/bin/a  b\tc") == std::vector<std::string>{"/bin/a", "b", "c"});
  CHECK(split_command(R"(a 'b c' "d \"e\" $HOME" f\ g)") ==
        std::vector<std::string>{"a", "b c", "d \"e\" $HOME", "f g"});
  CHECK(split_command(R"(a '')") == std::vector<std::string>{"a", ""});
  CHECK(split_command("*.txt") == std::vector<std::string>{"*.txt"});
  CHECK(thrown([] { split_command("a 'b"); }).find("single quote") != std::string::npos);
  CHECK(thrown([] { split_command("a \"b"); }).find("double quote") != std::string::npos);
  CHECK(thrown([] { split_command("a \\"); }).find("backslash") != std::string::npos);
  CHECK(thrown([] { split_command(""); }).find("empty") != std::string::npos);
}

TEST_CASE("check_image_ref takes Docker/OCI references and archives") {
  for (const char* ok : {"debian", "debian:12", "library/debian:12-slim", "localhost/upper:1",
                         "localhost:5000/team/upper:v1.2", "registry.example.com/a/b/c", "a_b__c-d.e",
                         "oci-archive:/srv/i.tar", "docker-archive:/srv/i.tar"})
    CHECK_MESSAGE(thrown([&] { check_image_ref(ok); }) == "", ok);
  for (const char* bad : {"", "Debian", "a b", "a:", ":tag", "a//b", "-a", "a:tag with space", "a@sha256:xyz",
                          "oci-archive:", "oci-archive:relative.tar", "docker-archive:/a/../b"})
    CHECK_MESSAGE(thrown([&] { check_image_ref(bad); }) != "", bad);
}

TEST_CASE("parse_size takes bytes and 1024-based units") {
  CHECK(parse_size("0") == 0);
  CHECK(parse_size("4096") == 4096);
  CHECK(parse_size("64k") == 65536);
  CHECK(parse_size("256m") == 256ull << 20);
  CHECK(parse_size("256MiB") == 256ull << 20);
  CHECK(parse_size("2G") == 2ull << 30);
  CHECK(thrown([] { parse_size("m"); }) != "");
  CHECK(thrown([] { parse_size("12q"); }) != "");
  CHECK(thrown([] { parse_size("99999999999999999999"); }) != "");
  CHECK(thrown([] { parse_size("99999999999t"); }) != "");
}

TEST_CASE("parse_input: a directory, a job, an S3 prefix") {
  Input d = parse_input("/data/2026/");
  CHECK(d.kind == Input::Kind::kDir);
  CHECK(d.path == "data/2026");
  CHECK(parse_input("").path == "");
  CHECK(parse_input("/").path == "");
  Input j = parse_input("job/upper");
  CHECK(j.kind == Input::Kind::kJob);
  CHECK(j.path == "upper");
  Input s = parse_input("s3://my-bucket/logs/2026/");
  CHECK(s.kind == Input::Kind::kS3);
  CHECK(s.bucket == "my-bucket");
  CHECK(s.prefix == "logs/2026/");
  CHECK(thrown([] { parse_input("data/../../etc"); }) != "");
  CHECK(thrown([] { parse_input("job/"); }) != "");
  CHECK(thrown([] { parse_input("s3://x/y"); }) != "");
}

TEST_CASE("find_cycles names the jobs on a cycle and only those") {
  auto mk = [](const std::string& name, const std::string& input) {
    FoundJob f;
    f.name = name;
    f.spec = JobSpec{};
    f.spec->name = name;
    f.spec->input = input;
    return f;
  };
  std::vector<FoundJob> jobs{mk("a", "job/b"), mk("b", "job/c"), mk("c", "job/a"), mk("d", "job/a"), mk("e", "data")};
  auto cycles = find_cycles(jobs);
  CHECK(cycles.size() == 3);
  CHECK(cycles.count("a"));
  CHECK(cycles.count("c"));
  CHECK_FALSE(cycles.count("d"));
  CHECK(cycles.at("a").find("->") != std::string::npos);
  CHECK(find_cycles({mk("a", "job/b"), mk("b", "data")}).empty());
  CHECK(find_cycles({mk("a", "job/missing")}).empty());
}

TEST_CASE("url_path percent-encodes each segment") {
  CHECK(url_path("a b/c.txt") == "/a%20b/c.txt");
  CHECK(url_path("ü?#%") == "/%C3%BC%3F%23%25");
  CHECK(url_path("plain-name_1.csv") == "/plain-name_1.csv");
}

TEST_CASE("short_hash is the first 16 hex digits of SHA-256") {
  CHECK(short_hash("") == "e3b0c44298fc1c14");
  CHECK(short_hash("abc") == "ba7816bf8f01cfea");
}

// ---- S3 (src/jobs/s3.h)

#include "s3.h"

TEST_CASE("S3 requests are signed as AWS's published SigV4 example (GET Object)") {
  // docs.aws.amazon.com, "Signature Calculations for the Authorization
  // Header", example: GET Object.
  S3Config c;
  c.access_key = "AKIAIOSFODNN7EXAMPLE";
  c.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  c.region = "us-east-1";
  c.fixed_date = "20130524T000000Z";
  std::string auth = S3Client::authorization_for(
      c, "http://examplebucket.s3.amazonaws.com/test.txt",
      {"Range: bytes=0-9", "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"});
  CHECK(auth ==
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST_CASE("S3 listings are read from ListObjectsV2's XML") {
  ListPage p = parse_list_page(
      "<?xml version=\"1.0\"?><ListBucketResult><Name>b</Name><IsTruncated>true</IsTruncated>"
      "<Contents><Key>logs/a&amp;b.txt</Key><Size>12</Size></Contents>"
      "<Contents><Key>logs/&#233;t&#xE9;</Key><Size>3</Size></Contents>"
      "<NextContinuationToken>1/x+y=</NextContinuationToken></ListBucketResult>");
  REQUIRE(p.objects.size() == 2);
  CHECK(p.objects[0].key == "logs/a&b.txt");
  CHECK(p.objects[0].size == 12);
  CHECK(p.objects[1].key == "logs/\xc3\xa9t\xc3\xa9");
  CHECK(p.truncated);
  CHECK(p.next_token == "1/x+y=");
  CHECK(s3_encode("1/x+y= é", false) == "1%2Fx%2By%3D%20%C3%A9");
  CHECK(s3_encode("a b/c", true) == "a%20b/c");
}
