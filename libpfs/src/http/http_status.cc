// http_status.cc: THE table of error codes and HTTP statuses
// (pfs::http_status, pfs::code_of_http_status: declared in pfs/server.h).
// The server answers an error with the status of its code
// (http_message.cc, Response::error); the remote client reads a status back
// as a code when the body names none (http_transport.cc, error_of).
#include <pfs/server.h>

namespace pfs {

namespace {

// The server answers with the status of a code; the remote client reads a
// status back as the first code listed with it (when the body names no code
// of its own).
struct StatusOf {
  ErrorCode code;
  int status;
};
constexpr StatusOf kStatusTable[] = {
    {ErrorCode::kInvalidArgument, 400}, {ErrorCode::kPermissionDenied, 403},
    {ErrorCode::kNotFound, 404},        {ErrorCode::kConflict, 409},
    {ErrorCode::kAlreadyExists, 409},   {ErrorCode::kUnsupported, 501},
    {ErrorCode::kBusy, 503},            {ErrorCode::kIo, 500},
    {ErrorCode::kCorruption, 500},      {ErrorCode::kInternal, 500},
};

}  // namespace

int http_status(ErrorCode code) {
  for (const auto& e : kStatusTable)
    if (e.code == code) return e.status;
  return 500;
}

ErrorCode code_of_http_status(int status) {
  for (const auto& e : kStatusTable)
    if (e.status == status) return e.code;
  switch (status) {
    case 401:  // no or a wrong token
      return ErrorCode::kPermissionDenied;
    case 408:  // the request came too slowly; try again
      return ErrorCode::kBusy;
    default:   // 413, 414, 416, 417, 431: what was sent is not acceptable
      if (status >= 400 && status < 500) return ErrorCode::kInvalidArgument;
      return ErrorCode::kIo;
  }
}

}  // namespace pfs
