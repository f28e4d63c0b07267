#pragma once
// `corvo schedule events`: a namespace's task events (scheduled, started, succeeded,
// failed, dead, cancelled; docs/scheduler.md "Task events"), one per line.

#include <string>
#include <vector>

namespace corvo::tool {

/// `corvo schedule events [store flags] [--follow] [--task ID] [--type TYPE] [--kind KIND]...
/// [--from start|now|POSITION] [--json]`: prints the events the streams hold (from the
/// oldest by default) and exits, or with --follow goes on printing new ones until killed.
/// --json: one JSON object per line; at the end (without --follow) a line with the reader's
/// position (`{"position": ...}`), to resume with --from.
int schedule_events(const std::vector<std::string>& args);

}  // namespace corvo::tool
