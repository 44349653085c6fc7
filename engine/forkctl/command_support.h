// What every forkctl command that talks to forkd shares: the global options (--socket, --json) and
// the way a reply or an error is printed.
//
// Exit codes: 0 success, 1 a failed request (the server's error, or forkd unreachable), 2 a usage
// error (CLI11 parse errors, in forkctl_main.cc).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "base/status.h"
#include "engine/forkctl/api_client.h"

namespace fe::engine::forkctl {

inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct GlobalOptions {
  std::string socket = std::string(kDefaultSocket);
  bool json = false;
};

// Registers --socket (also from $FORKD_SOCKET) and --json on `app`; they may also follow the
// subcommand (fallthrough).
std::shared_ptr<GlobalOptions> AddGlobalOptions(CLI::App& app);

// "forkctl: <message>" on stderr; returns kExitFailure.
int PrintError(const Status& status);

// Runs `request` against forkd; on success prints the reply (pretty JSON with --json, else
// `render(reply)`), on failure the error. Returns the exit code.
int RunRequest(const GlobalOptions& options, const std::function<Result<nlohmann::json>(const ApiClient&)>& request,
               const std::function<std::string(const nlohmann::json&)>& render);

// {"k": "v", ...} of --label k=v options; InvalidArgument naming one without '='.
Result<nlohmann::json> LabelsObject(const std::vector<std::string>& pairs);

// Every page of GET /v1/<collection>?<query> (query: encoded parameters, limit among them),
// following next_page_token: {"<collection>": [...]} as one reply.
Result<nlohmann::json> GetEveryPage(const ApiClient& client, const std::string& collection, const std::string& query);

// "/v1/instances/<id_or_name, encoded>" + suffix.
std::string InstancePath(const std::string& id_or_name, const std::string& suffix = "");

}  // namespace fe::engine::forkctl
