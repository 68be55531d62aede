// pfs/pfs.h: everything a program needs to use libpfs.
#pragma once

#include <pfs/client.h>
#include <pfs/io.h>
#include <pfs/jobs.h>
#include <pfs/pipelines.h>
#include <pfs/remote.h>
#include <pfs/replicate.h>
#include <pfs/result.h>
#include <pfs/server.h>
#include <pfs/types.h>
