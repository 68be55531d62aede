// json_forms.h: what the JSON forms of jobs (jobs_json.cc) and pipelines
// (pipelines_json.cc) share: times as UTC text or null, and the lenient
// read of a state name.
#pragma once

#include <initializer_list>
#include <string>

#include <pfs/json.h>

namespace pfs::detail::jobs {

inline nlohmann::json time_or_null(std::int64_t ns) {
  return ns ? nlohmann::json(format_time_utc(ns)) : nlohmann::json(nullptr);
}

// The state named `s` among `all` (name_of gives each one's name). A name
// this version does not know (a newer pfs wrote it) reads as `unknown`, a
// failure: nothing reads an output as if it had succeeded.
template <class State, class NameOf>
State state_named(const std::string& s, std::initializer_list<State> all, NameOf name_of, State unknown) {
  for (State st : all)
    if (name_of(st) == s) return st;
  return unknown;
}

}  // namespace pfs::detail::jobs
