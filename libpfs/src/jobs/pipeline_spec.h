// pipeline_spec.h: the pieces of a Pachyderm pipeline spec that
// parse_pipeline() checks (pfs/pipelines.h), for the engine and the unit
// tests: durations, globs, names, Kubernetes quantities.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace pfs::detail::jobs {

// A duration as Go's time.ParseDuration and protobuf's JSON write them:
// "30s", "5m", "1h30m", "1.5h", "500ms" ... (units ns, us, µs, ms, s, m,
// h; a leading '+' is allowed), or a bare number of seconds ("90", "0").
// It must come to whole seconds and fit Go's limit (2562047h47m16s).
// Throws kInvalidArgument (empty, negative, junk, fractional seconds, too
// long); the message does not name a field: callers prefix it.
std::chrono::seconds parse_duration(std::string_view text);

// A Pachyderm glob: "/", or '/' followed by components separated by '/',
// none empty, "." or ".."; '[' opens a class closed by ']' within the
// component ("[]a]" and "[!]a]" hold a ']'); '\' escapes the next
// character; no control characters. Throws kInvalidArgument.
void check_glob(std::string_view glob);

// A pipeline's name: 1 to 63 of [A-Za-z0-9_-], not starting with '_' or
// '-'. It names the pipeline's output branch too, and every name it
// accepts is one check_branch_name() accepts. Throws kInvalidArgument,
// the message starting with `what` (e.g. "pipeline.name").
void check_pipeline_name(std::string_view what, std::string_view name);

// resource_limits.memory written as a string: a Kubernetes quantity of
// bytes. Ki, Mi, Gi, Ti are powers of 1024 and K, M, G, T powers of 1000
// (as Kubernetes reads them); lower-case k, m, g, t are powers of 1024, as
// parse_size() reads them (NOTE: Kubernetes would read "256m" as 0.256
// bytes; pfs job descriptors mean 256 MiB by it, and so do we). No suffix:
// bytes. Up to 6 decimals ("1.5G"); fractions of a byte round up.
// Throws kInvalidArgument.
std::uint64_t parse_quantity_bytes(std::string_view text);

// resource_limits.cpu written as a string: CPUs ("0.5", "2") or millicores
// ("500m"). Throws kInvalidArgument; the range is the caller's to check.
double parse_cpu(std::string_view text);

}  // namespace pfs::detail::jobs
