// s3.h: reading a job's S3 input: ListObjectsV2 and GET, signed with AWS
// Signature Version 4 by libcurl (CURLOPT_AWS_SIGV4), path-style URLs, any
// endpoint and region. Credentials come from the environment or a file,
// never from a job's descriptor, and appear in no log or error message.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <pfs/io.h>

namespace pfs::detail::jobs {

struct S3Config {
  std::string endpoint;  // "https://s3.eu-west-1.amazonaws.com", "http://127.0.0.1:4569"
  std::string region = "us-east-1";
  std::string access_key, secret_key, session_token;
  // Test hook: a fixed x-amz-date ("20130524T000000Z") makes signatures
  // reproducible (the unit test checks AWS's published example).
  std::string fixed_date;
};

// The configuration from the environment: AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION (or
// AWS_DEFAULT_REGION), AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL); missing
// keys are then read from `credentials_file` (the AWS shared credentials
// format, profile [default], or KEY=VALUE lines), when one is given.
// Throws kUnsupported saying what to set when there are no keys.
S3Config s3_config(const std::string& credentials_file);

struct S3Object {
  std::string key;
  std::uint64_t size = 0;
};

class S3Client {
 public:
  explicit S3Client(S3Config c);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  // Every object under `prefix` (all pages of ListObjectsV2), sorted by key.
  // Throws kNotFound (no such bucket), kPermissionDenied (refused), kIo.
  std::vector<S3Object> list(const std::string& bucket, const std::string& prefix);
  // The object's bytes into `out`. Throws as list.
  void get(const std::string& bucket, const std::string& key, Sink& out);

  // For the unit test: the Authorization header libcurl sends for a GET of
  // `url` with `headers` (to a listener of its own on 127.0.0.1, whatever
  // the URL's host).
  static std::string authorization_for(const S3Config& c, const std::string& url,
                                       const std::vector<std::string>& headers);

 private:
  long request(const std::string& url, Sink& out, std::string& error_body);
  S3Config c_;
  void* curl_;
};

// RFC 3986 percent-encoding of a query value or (keep_slash) an object key.
std::string s3_encode(const std::string& s, bool keep_slash);

// The <Key>/<Size> entries, IsTruncated and NextContinuationToken of a
// ListObjectsV2 answer (XML entities decoded). For the unit test.
struct ListPage {
  std::vector<S3Object> objects;
  bool truncated = false;
  std::string next_token;
};
ListPage parse_list_page(const std::string& xml);

}  // namespace pfs::detail::jobs
