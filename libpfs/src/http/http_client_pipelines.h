// http_client_pipelines.h: the remote Pipelines (over a job client's
// Transport), for connect_jobs().
#pragma once

#include <memory>

#include <pfs/pipelines.h>

#include "http_transport.h"

namespace pfs::detail::remote {

// Pipelines over `http`, which must outlive it.
std::unique_ptr<Pipelines> remote_pipelines(Transport& http);

}  // namespace pfs::detail::remote
