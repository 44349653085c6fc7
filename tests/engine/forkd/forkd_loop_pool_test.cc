// forkd --loop-pool auto on a data root without reflink: the volumes live on a loop-mounted XFS
// image, which stays mounted when forkd exits (VMs may still use it) and is reused by the next start.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tests/engine/forkd/forkd_test_fixture.h"

namespace fe::engine::forkd::test {
namespace {

class ForkdLoopPoolTest : public ForkdTest {};

bool IsMountPoint(const std::string& path) {
  struct stat here {
  }, parent{};
  return ::stat(path.c_str(), &here) == 0 && ::stat((path + "/..").c_str(), &parent) == 0 &&
         here.st_dev != parent.st_dev;
}

TEST_F(ForkdLoopPoolTest, AutoMountsAReflinkPoolWhereTheDataRootCannotReflinkAndKeepsItAcrossRestarts) {
  FE_SCRATCH_DIR(ext4, fe::test::ScratchFs::kExt4);
  data_root_ = ext4 + "/data";
  std::string volumes = data_root_ + "/volumes";
  // forkd leaves the pool mounted by design; the test unmounts it on every path.
  struct Unmount {
    std::string path;
    std::unique_ptr<ForkdProcess>* forkd;
    ~Unmount() {
      forkd->reset();
      ::umount2(path.c_str(), MNT_DETACH);
    }
  } unmount{volumes, &forkd_};
  StartForkd({"--loop-pool", "auto", "--loop-pool-size", "1G"});
  EXPECT_TRUE(IsMountPoint(volumes));
  ApiResponse storage = api().Get("/v1/storage");
  EXPECT_EQ(storage.json["backend"], "reflink") << storage.body;
  EXPECT_EQ(::access((data_root_ + "/pool.img").c_str(), F_OK), 0);
  Json source = Import("web");
  EXPECT_EQ(api().Post("/v1/instances/web/fork", Json{{"name", "copy"}}).json["forks"][0]["mechanism"], "reflink");

  forkd_->Signal(SIGTERM);
  int status = forkd_->Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_TRUE(IsMountPoint(volumes)) << "forkd unmounted the pool on exit";

  StartForkd({"--loop-pool", "auto"});
  EXPECT_TRUE(LogEventuallyContains("is already a mount point; using it")) << log();
  EXPECT_EQ(api().Get("/v1/instances").json["instances"].size(), 2u);
  forkd_->Signal(SIGTERM);
  forkd_->Wait();
  forkd_.reset();
  EXPECT_EQ(::umount2(volumes.c_str(), 0), 0) << std::strerror(errno);  // busy would mean forkd left it in use
}

}  // namespace
}  // namespace fe::engine::forkd::test
