#pragma once
// What every `corvo` subcommand does the same way: --help handling, argument parsing, and
// running one operation against a Redis target it has checked is reachable.

#include <boost/asio/awaitable.hpp>
#include <boost/program_options/options_description.hpp>
#include <boost/program_options/positional_options.hpp>
#include <boost/program_options/variables_map.hpp>
#include <corvo/redis/client.hpp>
#include <functional>
#include <string>
#include <vector>

#include "store_target.hpp"

namespace corvo::tool {

/// True (after printing "usage: <usage>" and the options) when --help or -h is anywhere in
/// `args`: checked before any required option and without a server.
bool help_requested(const std::vector<std::string>& args, const std::string& usage,
                    const boost::program_options::options_description& options);

/// Parses `args` (with `positional` when given) and notifies: a missing required option or an
/// unknown one throws a program_options error (main() prints it, exit code 2).
boost::program_options::variables_map parse_arguments(
    const std::vector<std::string>& args, boost::program_options::options_description& options,
    const boost::program_options::positional_options_description* positional = nullptr);

/// An operation on a connected client; returns the command's exit code.
using client_operation = std::function<boost::asio::awaitable<int>(redis::client&)>;

/// Logs errors only, connects a client to `target`, checks every address answers within its
/// connect_timeout (check_reachable), runs `op`, and returns its exit code. Exceptions of
/// the check and of `op` propagate (main() prints them: exit code 1).
int run_with_client(const store_target& target, client_operation op);

}  // namespace corvo::tool
