#pragma once
// `corvo schedule export` / `corvo schedule import`: a namespace's tasks as JSON lines, one
// task per line, for backups, restores and moves between namespaces or servers.
//
// A line holds every stored field of a task, so export -> import -> export gives the same
// lines (docs/cli.md "Backup and restore"):
//
//   {"id":"order-42","type":"email.timeout","state":"scheduled",
//    "due":"2026-11-22T10:00:00.000000Z","occurrence":"2026-11-22T10:00:00.000000Z",
//    "attempts":0,"max_attempts":3,"payload":{"order":42}}
//
// Optional keys: "timeout_ms", "recurrence" (as `corvo schedule list` prints it: "every 30s",
// "cron TZ=Europe/Berlin 0 9 * * *"), "last_error". "state" is scheduled, in_flight (exported
// while a run was going on: imported as waiting at its occurrence, so it runs again) or dead
// (imported into the dead letters).

#include <boost/json/object.hpp>
#include <corvo/schedule/task.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::tool {

/// The export line of `t` (without the newline).
boost::json::object export_line(const schedule::task& t);

/// The task of one export line. Throws std::invalid_argument naming the problem: not JSON,
/// not an object, an unknown key, a missing or mistyped field, a bad time, recurrence or
/// state, a scheduled task without "due".
schedule::task import_line(std::string_view line);

/// `corvo schedule export [store flags] [--page N] [--quiet]`: every task to stdout.
int schedule_export(const std::vector<std::string>& args);

/// `corvo schedule import FILE [store flags] [--keep-going] [--window N] [--quiet]`.
int schedule_import(const std::vector<std::string>& args);

}  // namespace corvo::tool
