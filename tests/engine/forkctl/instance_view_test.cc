#include "engine/forkctl/instance_view.h"

#include <gtest/gtest.h>

namespace fe::engine::forkctl {
namespace {

using nlohmann::json;

json MakeInstance(const std::string& id, const std::string& name, const std::string& parent, const std::string& ip,
                  const std::string& state = "Standby", const std::string& created = "2026-11-25T18:30:00.000Z") {
  return {{"id", id},
          {"name", name},
          {"hypervisor", "cloud-hypervisor"},
          {"state", state},
          {"identity",
           {{"tap_device", "fe-" + id},
            {"mac", "02:fe:00:00:00:01"},
            {"ipv4", ip},
            {"prefix_length", 16},
            {"gateway", "10.100.0.1"},
            {"vsock_cid", 3}}},
          {"storage", {{"backend", "reflink"}, {"volume", id}}},
          {"parent_id", parent},
          {"forked_at", parent.empty() ? "" : "2026-11-25T18:30:01.000Z"},
          {"created_at", created},
          {"updated_at", "2026-11-25T18:30:00.000Z"},
          {"vcpus", 2},
          {"attached_volumes", json::array()}};
}

TEST(InstancesTableTest, ListsOneRowPerInstanceWithTheParentsName) {
  json instances = json::array({MakeInstance("i-1", "template", "", "10.100.0.2"),
                                MakeInstance("i-2", "fork-a", "i-1", "10.100.0.3", "Stopped"),
                                MakeInstance("i-3", "orphan", "i-9", "10.100.0.4")});
  EXPECT_EQ(InstancesTable(instances),
            "NAME      ID   STATE    HYPERVISOR        IP          PARENT    CREATED\n"
            "template  i-1  Standby  cloud-hypervisor  10.100.0.2  -         2026-11-25T18:30:00.000Z\n"
            "fork-a    i-2  Stopped  cloud-hypervisor  10.100.0.3  template  2026-11-25T18:30:00.000Z\n"
            "orphan    i-3  Standby  cloud-hypervisor  10.100.0.4  i-9       2026-11-25T18:30:00.000Z\n");
}

TEST(InstancesTableTest, MissingOrMistypedFieldsRenderAsDashes) {
  json instances = json::array({json{{"id", "i-1"}, {"name", 7}}, json("not an object")});
  EXPECT_EQ(InstancesTable(instances),
            "NAME  ID   STATE  HYPERVISOR  IP  PARENT  CREATED\n"
            "7     i-1  -      -           -   -       -\n"
            "-     -    -      -           -   -       -\n");
  EXPECT_EQ(InstancesTable(json("nonsense")), "NAME  ID  STATE  HYPERVISOR  IP  PARENT  CREATED\n");
}

TEST(InstancesOfTest, ReturnsTheInstancesArrayOrAnEmptyOne) {
  EXPECT_EQ(InstancesOf(json{{"instances", json::array({1, 2})}}), json::array({1, 2}));
  EXPECT_EQ(InstancesOf(json{{"instances", "x"}}), json::array());
  EXPECT_EQ(InstancesOf(json()), json::array());
}

TEST(ForkTreeTest, IndentsForksUnderTheirParentsInCreationOrder) {
  auto at = [](int second) { return "2026-11-25T18:30:0" + std::to_string(second) + ".000Z"; };
  json instances = json::array({MakeInstance("i-1", "template", "", "10.100.0.2", "Standby", at(0)),
                                MakeInstance("i-5", "other", "", "10.100.0.6", "Standby", at(4)),
                                MakeInstance("i-3", "fork-b", "i-1", "10.100.0.4", "Standby", at(1)),
                                MakeInstance("i-2", "fork-a", "i-1", "10.100.0.3", "Standby", at(2)),
                                MakeInstance("i-4", "fork-a-1", "i-2", "10.100.0.5", "Stopped", at(3))});
  EXPECT_EQ(ForkTree(instances),
            "template  i-1  Standby  10.100.0.2\n"
            "├── fork-b  i-3  Standby  10.100.0.4\n"
            "└── fork-a  i-2  Standby  10.100.0.3\n"
            "    └── fork-a-1  i-4  Stopped  10.100.0.5\n"
            "other  i-5  Standby  10.100.0.6\n");
}

TEST(ForkTreeTest, ForksMadeInTheSameMillisecondGoByNameWithNumbersByValue) {
  json instances = json::array({MakeInstance("i-1", "template", "", "10.0.0.1")});
  for (const char* name : {"fan-10", "fan-2", "fan-1", "fan-02b", "fan-x"}) {
    instances.push_back(MakeInstance(std::string("i-") + name, name, "i-1", "10.0.0.2"));
  }
  EXPECT_EQ(ForkTree(instances),
            "template  i-1  Standby  10.0.0.1\n"
            "├── fan-1  i-fan-1  Standby  10.0.0.2\n"
            "├── fan-2  i-fan-2  Standby  10.0.0.2\n"
            "├── fan-02b  i-fan-02b  Standby  10.0.0.2\n"
            "├── fan-10  i-fan-10  Standby  10.0.0.2\n"
            "└── fan-x  i-fan-x  Standby  10.0.0.2\n");
}

TEST(ForkTreeTest, AForkWhoseParentIsGoneIsARootThatSaysSo) {
  json instances = json::array(
      {MakeInstance("i-2", "fork-a", "i-1", "10.100.0.3"), MakeInstance("i-3", "fork-a-1", "i-2", "10.100.0.4")});
  EXPECT_EQ(ForkTree(instances),
            "fork-a  i-2  Standby  10.100.0.3  (forked from i-1, since deleted)\n"
            "└── fork-a-1  i-3  Standby  10.100.0.4\n");
}

TEST(ForkTreeTest, AForkWhoseParentIsGoneHangsUnderItsNearestLivingAncestorAndNamesTheDeletedOnes) {
  json root = MakeInstance("i-1", "root", "", "10.100.0.2");
  json deep = MakeInstance("i-4", "deep", "i-3", "10.100.0.5", "Standby", "2026-11-25T18:31:00.000Z");
  deep["ancestors"] = json::array({{{"id", "i-1"}, {"name", "root"}, {"forked_at", "t1"}},
                                   {{"id", "i-2"}, {"name", "mid"}, {"forked_at", "t2"}},
                                   {{"id", "i-3"}, {"name", "low"}, {"forked_at", "t3"}}});
  EXPECT_EQ(ForkTree(json::array({root, deep})),
            "root  i-1  Standby  10.100.0.2\n"
            "└── deep  i-4  Standby  10.100.0.5  (via mid, low, since deleted)\n");
}

TEST(ForkTreeTest, AForkOfASnapshotHangsUnderTheSnapshotsInstanceOrIsARootNamingTheSnapshot) {
  json web = MakeInstance("i-1", "web", "", "10.100.0.2");
  json kid = MakeInstance("i-5", "kid", "s-1", "10.100.0.6");
  kid["ancestors"] = json::array({{{"id", "i-1"}, {"name", "web"}, {"forked_at", "t1"}, {"kind", "instance"}},
                                  {{"id", "s-1"}, {"name", "base"}, {"forked_at", "t2"}, {"kind", "snapshot"}}});
  EXPECT_EQ(ForkTree(json::array({web, kid})),
            "web  i-1  Standby  10.100.0.2\n"
            "└── kid  i-5  Standby  10.100.0.6  (via snapshot base)\n");
  EXPECT_EQ(ForkTree(json::array({kid})), "kid  i-5  Standby  10.100.0.6  (forked from snapshot base)\n")
      << "the snapshot outlived its instance";
}

TEST(InstanceDetailsTest, ShowsTheAncestryOldestFirstAndTheLabels) {
  json instance = MakeInstance("i-3", "low", "i-2", "10.100.0.4");
  instance["ancestors"] = json::array(
      {{{"id", "i-1"}, {"name", "root"}, {"forked_at", "t1"}}, {{"id", "i-2"}, {"name", "mid"}, {"forked_at", "t2"}}});
  instance["labels"] = {{"team", "a"}, {"tier", "gold"}};
  const std::string details = InstanceDetails(instance);
  EXPECT_NE(details.find("ancestry    root (i-1) > mid (i-2)\n"), std::string::npos) << details;
  EXPECT_NE(details.find("labels      team=a, tier=gold\n"), std::string::npos) << details;
}

TEST(ForkTreeTest, AParentLinkCycleIsPrintedOnceAndEnds) {
  json instances =
      json::array({MakeInstance("i-1", "a", "i-2", "10.0.0.1"), MakeInstance("i-2", "b", "i-1", "10.0.0.2")});
  EXPECT_EQ(ForkTree(instances),
            "a  i-1  Standby  10.0.0.1  (parent link cycle)\n"
            "b  i-2  Standby  10.0.0.2  (parent link cycle)\n");
}

TEST(ForkTreeTest, NoInstancesIsAnEmptyTree) { EXPECT_EQ(ForkTree(json::array()), ""); }

TEST(ForksTableTest, ShowsEachForksPhasesInMillisecondsAndSharedAndCopiedBytes) {
  json reply = {{"forks", json::array({{{"instance", MakeInstance("i-2", "fork-a", "i-1", "10.100.0.3")},
                                        {"phases",
                                         {{"lock_wait_us", 5},
                                          {"source_standby_us", 0},
                                          {"clone_us", 812},
                                          {"rewrite_us", 250},
                                          {"metadata_us", 120},
                                          {"restore_us", 0},
                                          {"total_us", 1190}}},
                                        {"mechanism", "reflink"},
                                        {"files", 7},
                                        {"logical_bytes", uint64_t{11} << 30},
                                        {"shared_bytes", uint64_t{320} << 20},
                                        {"copied_bytes", 4096}}})}};
  // Header and rows line up whether or not the header is printed (fixed minimum widths).
  const std::string header =
      "NAME              ID                  STATE    IP            MECHANISM   TOTAL ms     LOCK  STANDBY     "
      "CLONE  REWRITE  METADATA  RESTORE      SHARED     COPIED\n";
  const std::string row =
      "fork-a            i-2                 Standby  10.100.0.3    reflink        1.190    0.005    0.000     "
      "0.812    0.250     0.120    0.000   320.0 MiB    4.0 KiB\n";
  EXPECT_EQ(ForksTable(reply, true), header + row);
  EXPECT_EQ(ForksTable(reply, false), row);
}

TEST(InstanceDetailsTest, ShowsIdentityStorageLineageAndProcess) {
  json instance = MakeInstance("i-2", "fork-a", "i-1", "10.100.0.3", "Running");
  instance["process"] = {{"pid", 4242}, {"start_time", 1}, {"api_socket", "/run/x/api.sock"}};
  instance["attached_volumes"] = json::array({{{"path", "/srv/base.img"}, {"read_only", true}}});
  std::string details = InstanceDetails(instance);
  EXPECT_NE(details.find("name        fork-a\n"), std::string::npos) << details;
  EXPECT_NE(details.find("ip          10.100.0.3/16 via 10.100.0.1\n"), std::string::npos) << details;
  EXPECT_NE(details.find("storage     reflink volume i-2\n"), std::string::npos) << details;
  EXPECT_NE(details.find("parent      i-1\n"), std::string::npos) << details;
  EXPECT_NE(details.find("volume      /srv/base.img (read-only)\n"), std::string::npos) << details;
  EXPECT_NE(details.find("process     pid 4242, api socket /run/x/api.sock\n"), std::string::npos) << details;
  EXPECT_EQ(InstanceSummary(instance), "fork-a (i-2): Running\n");
}

TEST(UsageDetailsTest, ShowsEachSizeAndTheMethodAndUnknownWhereSharingIsNotKnown) {
  const std::string fiemap = UsageDetails(json{{"logical_bytes", 10737418240ULL},
                                               {"allocated_bytes", 134217728},
                                               {"shared_bytes", 134213632},
                                               {"exclusive_bytes", 4096},
                                               {"method", "fiemap"}});
  EXPECT_NE(fiemap.find("exclusive   4.0 KiB"), std::string::npos) << fiemap;
  EXPECT_NE(fiemap.find("measured by fiemap"), std::string::npos) << fiemap;
  const std::string thin = UsageDetails(json{{"logical_bytes", 1},
                                             {"allocated_bytes", 1},
                                             {"shared_bytes", nullptr},
                                             {"exclusive_bytes", nullptr},
                                             {"method", "thin-pool mapped blocks"}});
  EXPECT_NE(thin.find("shared      unknown"), std::string::npos) << thin;
}

}  // namespace
}  // namespace fe::engine::forkctl
