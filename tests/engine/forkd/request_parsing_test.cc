#include "engine/forkd/request_parsing.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace fe::engine::forkd {
namespace {

TEST(RequestParsingTest, ForkRequestTakesEveryKnownFieldWithItsType) {
  Result<engine::ForkRequest> request =
      ParseForkRequest(R"({"name":"web","from_running":true,"target_state":"Running","count":3,"memory":"shared",
                            "preflush":false,"source_pause":"background"})");
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ(request->name, "web");
  EXPECT_TRUE(request->from_running);
  EXPECT_EQ(request->target_state, engine::InstanceState::kRunning);
  EXPECT_EQ(request->count, 3);
  EXPECT_EQ(request->memory, engine::MemoryMode::kShared);
  EXPECT_FALSE(request->preflush);
  EXPECT_EQ(request->source_pause, engine::SourcePause::kBackground);
}

TEST(RequestParsingTest, ForkRequestDefaultsOmittedAndNullFields) {
  Result<engine::ForkRequest> request = ParseForkRequest(R"({"name":"web","count":null})");
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_FALSE(request->from_running);
  EXPECT_FALSE(request->target_state.has_value());
  EXPECT_EQ(request->count, 1);
  EXPECT_FALSE(request->memory.has_value());
  EXPECT_TRUE(request->preflush);
  EXPECT_EQ(request->source_pause, engine::SourcePause::kShort);
}

TEST(RequestParsingTest, RejectsUnknownFieldsWrongTypesAndMissingNamesNamingTheField) {
  struct Case {
    const char* body;
    const char* named;
  };
  for (const Case& c :
       {Case{R"({"name":"a","coount":2})", "coount"}, Case{R"({"name":"a","count":2.5})", "count"},
        Case{R"({"name":"a","count":true})", "count"}, Case{R"({"name":"a","from_running":"yes"})", "from_running"},
        Case{R"({"count":2})", "name"}, Case{R"({"name":"a","count":99999999999})", "count"},
        Case{R"({"name":"a","target_state":"paused"})", "target_state"},
        Case{R"({"name":"a","memory":"cow"})", "memory"},
        Case{R"({"name":"a","source_pause":"never"})", "source_pause"},
        Case{R"({"name":"a","source_pause":0})", "source_pause"}}) {
    Result<engine::ForkRequest> request = ParseForkRequest(c.body);
    ASSERT_FALSE(request.ok()) << c.body;
    EXPECT_EQ(request.status().code(), ErrorCode::kInvalidArgument) << c.body;
    EXPECT_NE(request.status().message().find(c.named), std::string::npos) << request.status().message();
  }
}

TEST(RequestParsingTest, RejectsBodiesThatAreNotOneJsonObject) {
  for (const char* body : {"", "[]", "\"name\"", "{\"name\":", "{} {}"}) {
    EXPECT_EQ(ParseForkRequest(body).status().code(), ErrorCode::kInvalidArgument) << body;
  }
}

TEST(RequestParsingTest, CreateRequestParsesAttachedVolumesStrictly) {
  Result<engine::CreateRequest> request = ParseCreateRequest(
      R"({"name":"a","hypervisor":"qemu","import_dir":"/g","state":"Stopped","vcpus":2,
          "attached_volumes":[{"path":"/d1"},{"path":"/d2","read_only":false}]})");
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ(request->import_dir, "/g");
  EXPECT_EQ(request->state, engine::InstanceState::kStopped);
  EXPECT_EQ(request->vcpus, 2);
  ASSERT_EQ(request->attached_volumes.size(), 2u);
  EXPECT_TRUE(request->attached_volumes[0].read_only);
  EXPECT_FALSE(request->attached_volumes[1].read_only);
  Result<engine::CreateRequest> bad =
      ParseCreateRequest(R"({"name":"a","hypervisor":"qemu","attached_volumes":[{"path":"/d","rw":true}]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("attached_volumes[0].rw"), std::string::npos) << bad.status().message();
}

TEST(RequestParsingTest, ActionBodiesMustBeEmptyOrAnEmptyObject) {
  EXPECT_TRUE(ParseEmptyBody("").ok());
  EXPECT_TRUE(ParseEmptyBody(" {} ").ok());
  EXPECT_EQ(ParseEmptyBody(R"({"force":true})").code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ParseEmptyBody("nope").code(), ErrorCode::kInvalidArgument);
}

TEST(RequestParsingTest, PoolSpecTakesEveryFieldAndDefaultsToStandbyMembers) {
  Result<engine::pools::PoolSpec> spec =
      ParsePoolSpec(R"({"name":"web","template":"tmpl","member_state":"Running","min_size":2,"max_size":5,)"
                    R"("memory":"private"})");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->name, "web");
  EXPECT_EQ(spec->template_id, "tmpl");
  EXPECT_EQ(spec->member_state, engine::InstanceState::kRunning);
  EXPECT_EQ(spec->min_size, 2);
  EXPECT_EQ(spec->max_size, 5);
  EXPECT_EQ(spec->memory, engine::MemoryMode::kPrivate);
  Result<engine::pools::PoolSpec> defaults = ParsePoolSpec(R"({"name":"web","template":"tmpl"})");
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_EQ(defaults->member_state, engine::InstanceState::kStandby);
  EXPECT_EQ(defaults->min_size, 0);
  EXPECT_EQ(defaults->max_size, 1);
  EXPECT_FALSE(defaults->memory.has_value()) << "absent: shared where the template can share";
}

TEST(RequestParsingTest, PoolSpecRejectsBadBodiesNamingTheField) {
  for (const auto& [body, named] : std::vector<std::pair<std::string, std::string>>{
           {R"({"template":"t"})", "name"},
           {R"({"name":"p"})", "template"},
           {R"({"name":"p","template":"t","min":1})", "min"},
           {R"({"name":"p","template":"t","max_size":1.5})", "max_size"},
           {R"({"name":"p","template":"t","member_state":"Paused"})", "member_state"},
           {"[]", "object"}}) {
    Result<engine::pools::PoolSpec> spec = ParsePoolSpec(body);
    ASSERT_FALSE(spec.ok()) << body;
    EXPECT_EQ(spec.status().code(), ErrorCode::kInvalidArgument) << body;
    EXPECT_NE(spec.status().message().find(named), std::string::npos) << spec.status().message();
  }
}

TEST(RequestParsingTest, AcquireRequestIsOptionalAndStrict) {
  Result<engine::pools::AcquireRequest> empty = ParseAcquireRequest("");
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->name.empty());
  EXPECT_FALSE(empty->no_wait);
  Result<engine::pools::AcquireRequest> full =
      ParseAcquireRequest(R"({"name":"alice","no_wait":true,"ttl_s":60,"idle_standby_s":30})");
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ(full->name, "alice");
  EXPECT_TRUE(full->no_wait);
  EXPECT_EQ(full->ttl_s, std::optional<int64_t>(60));
  EXPECT_EQ(full->idle_standby_s, 30);
  EXPECT_FALSE(empty->ttl_s.has_value());
  for (const char* body :
       {R"({"no_wait":1})", R"({"nmae":"x"})", "nope", R"({"ttl_s":0})", R"({"idle_standby_s":-1})"}) {
    Result<engine::pools::AcquireRequest> request = ParseAcquireRequest(body);
    ASSERT_FALSE(request.ok()) << body;
    EXPECT_EQ(request.status().code(), ErrorCode::kInvalidArgument) << body;
  }
}

}  // namespace
}  // namespace fe::engine::forkd
