// Instance metadata: JSON round trip, errors naming the file and the field, names, ids, timestamps,
// and the on-disk store (atomic write, read, durable removal, listing).
#include "engine/instance.h"

#include <sys/stat.h>

#include <set>

#include <gtest/gtest.h>

#include "engine/instance_store.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::engine {
namespace {

Instance Sample() {
  Instance instance;
  instance.id = "i-0123456789abcdef";
  instance.name = "web-1";
  instance.hypervisor = "cloud-hypervisor";
  instance.state = InstanceState::kRunning;
  instance.identity = {"fe0a640005", "02:fe:0a:64:00:05", "10.100.0.5", 16, "10.100.0.1", 174325765};
  instance.storage_backend = "reflink";
  instance.volume = "i-0123456789abcdef";
  instance.parent_id = "i-fedcba9876543210";
  instance.forked_at = "2026-01-02T03:04:05.006Z";
  instance.created_at = "2026-01-02T03:04:05.006Z";
  instance.updated_at = "2026-01-02T03:04:06.000Z";
  instance.vcpus = 2;
  instance.attached_volumes = {{"/srv/shared.img", true}};
  instance.process = vm::ProcessRecord{4242, 987654321, "/run/x/api.sock"};
  return instance;
}

TEST(InstanceJsonTest, RoundTripKeepsEveryField) {
  Instance original = Sample();
  nlohmann::json json = InstanceToJson(original);
  EXPECT_EQ(json["identity"]["tap_device"], "fe0a640005");
  EXPECT_EQ(json["storage"]["volume"], "i-0123456789abcdef");
  EXPECT_EQ(json["process"]["pid"], 4242);
  Result<Instance> parsed = InstanceFromJson(json, "test.json");
  FE_ASSERT_OK(parsed);
  EXPECT_EQ(InstanceToJson(*parsed), json);
}

TEST(InstanceJsonTest, StoppedInstanceHasNullProcess) {
  Instance instance = Sample();
  instance.state = InstanceState::kStopped;
  instance.process.reset();
  nlohmann::json json = InstanceToJson(instance);
  EXPECT_TRUE(json["process"].is_null());
  Result<Instance> parsed = InstanceFromJson(json, "x");
  FE_ASSERT_OK(parsed);
  EXPECT_FALSE(parsed->process.has_value());
}

TEST(InstanceJsonTest, ErrorsNameTheFileAndTheField) {
  nlohmann::json json = InstanceToJson(Sample());
  struct Case {
    std::function<void(nlohmann::json&)> damage;
    std::string field;
  };
  std::vector<Case> cases = {
      {[](nlohmann::json& j) { j.erase("id"); }, "field 'id': missing"},
      {[](nlohmann::json& j) { j["state"] = "Paused"; }, "field 'state'"},
      {[](nlohmann::json& j) { j["identity"]["vsock_cid"] = "three"; }, "field 'identity.vsock_cid'"},
      {[](nlohmann::json& j) { j["storage"]["volume"] = 7; }, "field 'storage.volume'"},
      {[](nlohmann::json& j) { j["attached_volumes"][0]["read_only"] = "yes"; },
       "field 'attached_volumes[0].read_only'"},
      {[](nlohmann::json& j) { j["process"]["pid"] = -1; }, "field 'process.pid'"},
      {[](nlohmann::json& j) { j["process"] = nullptr; }, "field 'process': missing for a Running instance"},
      {[](nlohmann::json& j) { j["name"] = "Bad_Name"; }, "field 'name'"},
      {[](nlohmann::json& j) { j["vcpus"] = 0; }, "field 'vcpus'"},
  };
  for (const Case& c : cases) {
    nlohmann::json damaged = json;
    c.damage(damaged);
    Result<Instance> parsed = InstanceFromJson(damaged, "/data/instances/i-1/instance.json");
    ASSERT_FALSE(parsed.ok()) << c.field;
    EXPECT_EQ(parsed.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("/data/instances/i-1/instance.json: "), std::string::npos);
    EXPECT_NE(parsed.status().message().find(c.field), std::string::npos) << parsed.status().message();
  }
}

TEST(InstanceJsonTest, AncestorLinksKeepTheirKindAnOldLinkIsAnInstanceAndAnUnknownKindIsRefused) {
  Instance instance = Sample();
  instance.ancestors = {{"i-root", "root", "t1", false}, {"i-fedcba9876543210", "base", "t2", true}};
  nlohmann::json json = InstanceToJson(instance);
  EXPECT_EQ(json["ancestors"][1]["kind"], "snapshot");
  Result<Instance> parsed = InstanceFromJson(json, "x");
  FE_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->ancestors, instance.ancestors);
  nlohmann::json old = json;
  old["ancestors"][1].erase("kind");  // written before snapshots existed
  Result<Instance> read_old = InstanceFromJson(old, "x");
  FE_ASSERT_OK(read_old);
  EXPECT_FALSE(read_old->ancestors[1].snapshot);
  nlohmann::json damaged = json;
  damaged["ancestors"][0]["kind"] = "volume";
  Result<Instance> refused = InstanceFromJson(damaged, "x");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("ancestors[0].kind"), std::string::npos) << refused.status().message();
}

TEST(InstanceStateTest, NamesParseBackAndUnknownNamesAreRefused) {
  for (InstanceState state :
       {InstanceState::kCreating, InstanceState::kStopped, InstanceState::kStandby, InstanceState::kRunning}) {
    Result<InstanceState> parsed = ParseInstanceState(InstanceStateName(state));
    FE_ASSERT_OK(parsed);
    EXPECT_EQ(*parsed, state);
  }
  EXPECT_EQ(ParseInstanceState("running").status().code(), ErrorCode::kInvalidArgument);
}

TEST(InstanceNameTest, AcceptsDnsLabelsOnly) {
  for (const char* good : {"a", "web-1", "0abc", "a-b-c-9"}) FE_EXPECT_OK(ValidateInstanceName(good));
  EXPECT_TRUE(ValidateInstanceName(std::string(63, 'a')).ok());
  for (std::string bad : {std::string(), std::string(64, 'a'), std::string("-a"), std::string("a-"), std::string("A"),
                          std::string("a_b"), std::string("a.b"), std::string("a b"), std::string("é")}) {
    Status status = ValidateInstanceName(bad);
    EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(InstanceIdTest, IdsAreFreshAndWellFormed) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewInstanceId();
    ASSERT_EQ(id.size(), 18u);
    ASSERT_EQ(id.substr(0, 2), "i-");
    for (char c : id.substr(2)) ASSERT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
}

class InstanceStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<test::TempDir> dir = test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    Result<InstanceStore> store = InstanceStore::Open(dir_->Sub("instances"));
    FE_ASSERT_OK(store);
    store_.emplace(std::move(*store));
  }
  std::optional<test::TempDir> dir_;
  std::optional<InstanceStore> store_;
};

TEST_F(InstanceStoreTest, WriteThenReadReturnsTheInstanceWithPrivateModes) {
  Instance instance = Sample();
  FE_ASSERT_OK(store_->Write(instance));
  Result<Instance> read = store_->Read(instance.id);
  FE_ASSERT_OK(read);
  EXPECT_EQ(InstanceToJson(*read), InstanceToJson(instance));
  struct stat st {};
  ASSERT_EQ(::stat(store_->MetadataPath(instance.id).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(store_->Dir(instance.id).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  Result<std::vector<std::string>> names = test::ListDir(store_->Dir(instance.id));
  FE_ASSERT_OK(names);
  EXPECT_EQ(*names, std::vector<std::string>{"instance.json"});  // no temporary left
}

TEST_F(InstanceStoreTest, ReadReportsMissingAndMalformedMetadataDistinctly) {
  EXPECT_EQ(store_->Read("i-none").status().code(), ErrorCode::kNotFound);
  ASSERT_EQ(::mkdir(store_->Dir("i-bad").c_str(), 0700), 0);
  FE_ASSERT_OK(test::WriteFile(store_->MetadataPath("i-bad"), "{not json"));
  Result<Instance> bad = store_->Read("i-bad");
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find(store_->MetadataPath("i-bad")), std::string::npos);
}

TEST_F(InstanceStoreTest, MetadataOfAnotherIdIsRefused) {
  Instance instance = Sample();
  FE_ASSERT_OK(store_->Write(instance));
  ASSERT_EQ(::rename(store_->Dir(instance.id).c_str(), store_->Dir("i-other").c_str()), 0);
  Result<Instance> read = store_->Read("i-other");
  EXPECT_EQ(read.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(read.status().message().find("field 'id'"), std::string::npos);
}

TEST_F(InstanceStoreTest, RemoveDeletesTheDirectoryAndListSkipsHiddenNames) {
  Instance a = Sample();
  Instance b = Sample();
  b.id = "i-1111111111111111";
  FE_ASSERT_OK(store_->Write(a));
  FE_ASSERT_OK(store_->Write(b));
  FE_ASSERT_OK(test::WriteFile(store_->Dir(a.id) + "/hypervisor.log", "log"));
  ASSERT_EQ(::mkdir((store_->root() + "/.hidden").c_str(), 0700), 0);
  Result<std::vector<std::string>> ids = store_->ListIds();
  FE_ASSERT_OK(ids);
  EXPECT_EQ(*ids, (std::vector<std::string>{a.id, b.id}));
  FE_ASSERT_OK(store_->Remove(a.id));
  FE_ASSERT_OK(store_->Remove(a.id));  // idempotent
  ids = store_->ListIds();
  FE_ASSERT_OK(ids);
  EXPECT_EQ(*ids, std::vector<std::string>{b.id});
}

}  // namespace
}  // namespace fe::engine
