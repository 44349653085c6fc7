#include "engine/forkctl/storage_view.h"

#include <gtest/gtest.h>

namespace fe::engine::forkctl {
namespace {

using nlohmann::json;

json Storage() {
  return {{"backend", "reflink"},
          {"root", "/var/lib/forkengine/volumes"},
          {"selection_reason", "auto: FICLONE works"},
          {"volumes", 3},
          {"filesystem_bytes", uint64_t{32} << 30},
          {"filesystem_free_bytes", uint64_t{31} << 30},
          {"pool", nullptr},
          {"measured_costs", nullptr}};
}

TEST(StorageDetailsTest, ShowsBackendRootReasonAndUsage) {
  EXPECT_EQ(StorageDetails(Storage()),
            "backend     reflink\n"
            "root        /var/lib/forkengine/volumes\n"
            "why         auto: FICLONE works\n"
            "volumes     3\n"
            "filesystem  32.00 GiB (31.00 GiB free)\n");
}

TEST(StorageDetailsTest, ShowsTheThinPoolsFillAndThreshold) {
  json storage = Storage();
  storage["backend"] = "dm-thin";
  storage["pool"] = {{"name", "forkengine"},
                     {"data_used_bytes", uint64_t{16} << 30},
                     {"data_bytes", uint64_t{64} << 30},
                     {"metadata_used_bytes", uint64_t{32} << 20},
                     {"metadata_bytes", uint64_t{256} << 20},
                     {"fill_threshold", 0.9},
                     {"mode", "read-write"}};
  const std::string details = StorageDetails(storage);
  EXPECT_NE(details.find("thin pool   forkengine (read-write): data 16.00 GiB of 64.00 GiB (25.0%), metadata "
                         "32.0 MiB of 256.0 MiB (12.5%), refuses above 90.0%\n"),
            std::string::npos)
      << details;
}

TEST(StorageDetailsTest, ShowsEachMeasuredCloneAndTheFittedCrossover) {
  json storage = Storage();
  storage["measured_costs"] = {
      {"clones",
       {{{"mechanism", "btrfs-snapshot"}, {"entries", 68}, {"bytes", 262144}, {"clone_us", 4100}},
        {{"mechanism", "reflink"}, {"entries", 9}, {"bytes", 32768}, {"clone_us", 610}}}},
      {"btrfs_crossover_entries", 37},
      {"took_us", 52000}};
  const std::string details = StorageDetails(storage);
  EXPECT_NE(details.find("measured    btrfs-snapshot   68 entries     4100 us\n"), std::string::npos) << details;
  EXPECT_NE(details.find("measured    reflink           9 entries      610 us\n"), std::string::npos) << details;
  EXPECT_NE(details.find("crossover   trees under 37 entries are reflinked, larger ones snapshotted\n"),
            std::string::npos)
      << details;
  EXPECT_EQ(MeasuredCostsLines(nullptr), "");
}

}  // namespace
}  // namespace fe::engine::forkctl
