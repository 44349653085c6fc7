// What "only complete instances" means, checked from outside forkd after concurrent forks, a racing
// delete, a kill -9 or a SIGTERM: every listed instance answers GET, is in a final state, owns a
// volume directory holding its guest files, and nothing else is on disk: no volume, instance
// directory or network lease without a listed instance, no temporary file of an atomic writer
// anywhere under the data root, and no record of a fan-out left unanswered.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <ftw.h>

#include <chrono>
#include <set>
#include <thread>
#include <string>

#include "base/atomic_file.h"

#include "tests/engine/forkd/forkd_harness.h"

namespace fe::engine::forkd::test {

// Returns the listed instances' ids; records a test failure for every broken invariant.
inline std::set<std::string> ExpectOnlyCompleteInstances(const ApiClient& api, const std::string& data_root) {
  std::set<std::string> ids;
  ApiResponse list = api.Get("/v1/instances");
  EXPECT_EQ(list.status, 200) << list.body << list.error;
  if (list.status != 200) return ids;
  std::set<std::string> volumes;
  for (const Json& instance : list.json["instances"]) {
    std::string id = instance["id"];
    ids.insert(id);
    volumes.insert(instance["storage"]["volume"].get<std::string>());
    ApiResponse got = api.Get("/v1/instances/" + id);
    EXPECT_EQ(got.status, 200) << id << ": " << got.body;
    EXPECT_NE(instance["state"], "Creating") << id;
    std::string volume = data_root + "/volumes/" + instance["storage"]["volume"].get<std::string>();
    for (const char* file : {"config.json", "snapshot/config.json", "snapshot/state.json", "snapshot/memory-ranges",
                             "rootfs.raw", "vmlinux"}) {
      EXPECT_EQ(::access((volume + "/" + file).c_str(), F_OK), 0) << id << " lacks " << volume << "/" << file;
    }
  }
  // Snapshots (issue #23) own a volume and a metadata directory as instances do, and no lease.
  ApiResponse snapshots = api.Get("/v1/snapshots");
  EXPECT_EQ(snapshots.status, 200) << snapshots.body << snapshots.error;
  std::set<std::string> records = ids;
  if (snapshots.status == 200) {
    for (const Json& snapshot : snapshots.json["snapshots"]) {
      records.insert(snapshot["id"].get<std::string>());
      const std::string volume = snapshot["storage"]["volume"];
      volumes.insert(volume);
      EXPECT_NE(snapshot["state"], "Creating");
      EXPECT_EQ(::access((data_root + "/volumes/" + volume + "/config.json").c_str(), F_OK), 0)
          << "snapshot " << snapshot["id"] << " lacks its config";
    }
  }
  std::vector<std::string> listed = ListDir(data_root + "/volumes");
  std::set<std::string> on_disk(listed.begin(), listed.end());
  on_disk.erase(".dm-thin");  // the dm-thin backend's ledger and pool images
  EXPECT_EQ(on_disk, volumes) << "volumes on disk vs listed instances";
  std::vector<std::string> dirs = ListDir(data_root + "/instances");
  EXPECT_EQ(std::set<std::string>(dirs.begin(), dirs.end()), records)
      << "instance directories vs listed instances and snapshots";
  Result<std::vector<std::string>> leases = LeasedIds(data_root);
  EXPECT_TRUE(leases.ok()) << leases.status().ToString();
  if (leases.ok()) {
    EXPECT_EQ(std::set<std::string>(leases->begin(), leases->end()), ids) << "leases vs instances";
  }
  // A running forkd writes files atomically through temporary ones (a pool's counters after a tick):
  // only a temporary file still there a little later survived anything.
  static std::vector<std::string>* temporary = nullptr;
  std::vector<std::string> found;
  for (int look = 0; look < 10; ++look) {
    found.clear();
    temporary = &found;
    ::nftw(
        data_root.c_str(),
        [](const char* path, const struct stat*, int type, struct FTW* ftw) {
          if (type == FTW_F && IsTemporaryName(path + ftw->base)) temporary->push_back(path);
          return 0;
        },
        16, FTW_PHYS);
    if (found.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(found.empty()) << "temporary files survived: " << ::testing::PrintToString(found);
  EXPECT_TRUE(ListDir(data_root + "/groups").empty()) << "a fan-out record survived the restart";
  return ids;
}

}  // namespace fe::engine::forkd::test
