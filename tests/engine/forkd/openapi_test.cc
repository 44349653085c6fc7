// engine/forkd/openapi.json documents exactly the routes the server serves.
#include <set>
#include <string>
#include <utility>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/forkd/http_errors.h"
#include "engine/forkd/server.h"
#include "tests/support/file_util.h"

namespace fe::engine::forkd {
namespace {

using RouteSet = std::set<std::pair<std::string, std::string>>;

nlohmann::json OpenApi() {
  Result<std::string> text = fe::test::ReadFile(FE_FORKD_OPENAPI);
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  return text.ok() ? nlohmann::json::parse(*text) : nlohmann::json();
}

RouteSet Documented(const nlohmann::json& document) {
  RouteSet routes;
  for (const auto& [path, operations] : document["paths"].items()) {
    for (const auto& [method, operation] : operations.items()) {
      if (method == "parameters") continue;
      std::string upper = method;
      for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      routes.insert({upper, path});
    }
  }
  return routes;
}

TEST(OpenApiTest, EveryDocumentedRouteIsServedAndEveryServedRouteDocumented) {
  nlohmann::json document = OpenApi();
  ASSERT_TRUE(document.is_object());
  EXPECT_EQ(document["openapi"], "3.0.3");
  RouteSet served;
  for (const ServedRoute& route : ServedRoutes()) served.insert({route.method, route.pattern});
  RouteSet documented = Documented(document);
  for (const auto& route : documented)
    EXPECT_EQ(served.count(route), 1u) << "documented, not served: " << route.first << " " << route.second;
  for (const auto& route : served)
    EXPECT_EQ(documented.count(route), 1u) << "served, not documented: " << route.first << " " << route.second;
  EXPECT_FALSE(served.empty());
}

TEST(OpenApiTest, EveryOperationDocumentsItsResponsesAndEverySchemaReferenceResolves) {
  nlohmann::json document = OpenApi();
  ASSERT_TRUE(document.is_object());
  for (const auto& [path, operations] : document["paths"].items()) {
    for (const auto& [method, operation] : operations.items()) {
      EXPECT_TRUE(operation.contains("responses") && !operation["responses"].empty()) << method << " " << path;
      EXPECT_TRUE(operation.contains("operationId")) << method << " " << path;
    }
  }
  // Every $ref names a schema in components.
  std::string text = document.dump();
  const std::string marker = "\"$ref\":\"#/components/schemas/";
  for (size_t at = text.find(marker); at != std::string::npos; at = text.find(marker, at + 1)) {
    size_t start = at + marker.size();
    std::string name = text.substr(start, text.find('"', start) - start);
    EXPECT_TRUE(document["components"]["schemas"].contains(name)) << "unresolved $ref " << name;
  }
}

TEST(OpenApiTest, EveryErrorCodeIsInTheErrorSchemaAndHasItsDocumentedStatus) {
  nlohmann::json document = OpenApi();
  ASSERT_TRUE(document.is_object());
  std::set<std::string> documented;
  for (const auto& code : document["components"]["schemas"]["Error"]["properties"]["code"]["enum"]) {
    documented.insert(code.get<std::string>());
  }
  for (ErrorCode code : ErrorCodes()) {
    const std::string name(ErrorCodeName(code));
    EXPECT_EQ(documented.count(name), 1u) << name << " is not in the Error schema's code enum";
  }
  EXPECT_EQ(HttpStatusFor(ErrorCode::kInsufficientResources), 409);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kTimedOut), 504);
}

TEST(OpenApiTest, SecurityIsDeclaredNoneOnTheUnixSocketBearerOnTcp) {
  nlohmann::json document = OpenApi();
  ASSERT_TRUE(document.is_object());
  EXPECT_EQ(document["security"], nlohmann::json::parse(R"([{}, {"bearer": []}])"));
  EXPECT_EQ(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

}  // namespace
}  // namespace fe::engine::forkd
