#include "cli.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/program_options/parsers.hpp>
#include <corvo/core/log.hpp>
#include <exception>
#include <iostream>

namespace corvo::tool {

namespace asio = boost::asio;
namespace po = boost::program_options;

bool help_requested(const std::vector<std::string>& args, const std::string& usage,
                    const po::options_description& options) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << "usage: " << usage << "\n\n" << options << "\n";
      return true;
    }
  }
  return false;
}

po::variables_map parse_arguments(const std::vector<std::string>& args,
                                  po::options_description& options,
                                  const po::positional_options_description* positional) {
  po::variables_map values;
  auto parser = po::command_line_parser(args).options(options);
  if (positional != nullptr) {
    parser.positional(*positional);
  }
  po::store(parser.run(), values);
  po::notify(values);
  return values;
}

namespace {

asio::awaitable<int> check_then_run(redis::client& client, store_target target,
                                    client_operation op) {
  co_await check_reachable(client, target);
  co_return co_await op(client);
}

}  // namespace

int run_with_client(const store_target& target, client_operation op) {
  corvo::log::options quiet;
  quiet.min_severity = corvo::log::severity::error;
  corvo::log::init(quiet);
  asio::io_context ctx(1);
  redis::client client(ctx.get_executor(), target.redis);
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  int code = 1;
  std::exception_ptr failed;
  asio::co_spawn(ctx, check_then_run(client, target, std::move(op)),
                 [&](std::exception_ptr e, int result) {
                   failed = e;
                   code = result;
                   client.cancel();
                 });
  ctx.run();
  if (failed) {
    std::rethrow_exception(failed);
  }
  return code;
}

}  // namespace corvo::tool
