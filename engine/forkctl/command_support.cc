#include "engine/forkctl/command_support.h"

#include <iostream>

namespace fe::engine::forkctl {

std::shared_ptr<GlobalOptions> AddGlobalOptions(CLI::App& app) {
  auto options = std::make_shared<GlobalOptions>();
  app.add_option("--socket", options->socket, "forkd's Unix socket")
      ->envname(std::string(kSocketEnvironment))
      ->capture_default_str();
  app.add_flag("--json", options->json, "Print forkd's JSON reply instead of a table");
  app.fallthrough();
  return options;
}

int PrintError(const Status& status) {
  std::cerr << "forkctl: " << status.message() << "\n";
  return kExitFailure;
}

int RunRequest(const GlobalOptions& options, const std::function<Result<nlohmann::json>(const ApiClient&)>& request,
               const std::function<std::string(const nlohmann::json&)>& render) {
  ApiClient client(options.socket);
  Result<nlohmann::json> reply = request(client);
  if (!reply.ok()) return PrintError(reply.status());
  if (options.json) {
    if (!reply->is_null()) std::cout << reply->dump(2) << "\n";
  } else {
    std::cout << render(*reply);
  }
  return 0;
}

Result<nlohmann::json> LabelsObject(const std::vector<std::string>& pairs) {
  nlohmann::json labels = nlohmann::json::object();
  for (const std::string& pair : pairs) {
    const size_t equals = pair.find('=');
    if (equals == std::string::npos) return Status::InvalidArgument("--label '" + pair + "': expected key=value");
    labels[pair.substr(0, equals)] = pair.substr(equals + 1);
  }
  return labels;
}

Result<nlohmann::json> GetEveryPage(const ApiClient& client, const std::string& collection, const std::string& query) {
  nlohmann::json all = {{collection, nlohmann::json::array()}};
  std::string token;
  do {
    Result<nlohmann::json> page =
        client.Get("/v1/" + collection + "?" + query + (token.empty() ? "" : "&page_token=" + token));
    if (!page.ok()) return page;
    for (nlohmann::json& item : (*page)[collection]) all[collection].push_back(std::move(item));
    token = page->value("next_page_token", "");
  } while (!token.empty());
  return all;
}

std::string InstancePath(const std::string& id_or_name, const std::string& suffix) {
  return "/v1/instances/" + EncodePathSegment(id_or_name) + suffix;
}

}  // namespace fe::engine::forkctl
