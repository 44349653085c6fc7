// forkd on a data root whose filesystem is full (a 512 MiB XFS of the test's own): forks are refused
// with 507 and leave nothing behind, forkd starts on it, list, show and delete work (deleting is how
// an operator frees room), and forks work again once there is room.
#include <fcntl.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "base/unique_fd.h"
#include "storage/loop/loop_filesystem.h"
#include "tests/engine/forkd/forkd_invariants.h"
#include "tests/engine/forkd/forkd_test_fixture.h"

namespace fe::engine::forkd::test {
namespace {

class ForkdFullDiskTest : public ForkdTest {
 protected:
  void SetUp() override {
    ForkdTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    storage::loop::LoopFilesystemOptions options;
    options.type = storage::loop::LoopFilesystemType::kXfs;
    options.image_path = temp_->Sub("small.img");
    options.size_bytes = uint64_t{512} << 20;
    options.mount_point = temp_->Sub("small");
    Result<storage::loop::LoopFilesystem> fs = storage::loop::LoopFilesystem::Open(options);
    FE_ASSERT_OK(fs);
    small_.emplace(std::move(*fs));
    data_root_ = options.mount_point + "/data";
  }
  void TearDown() override {
    ForkdTest::TearDown();
    small_.reset();
  }

  // Takes every free block of the data root's filesystem.
  void Fill() {
    const std::string filler = temp_->Sub("small") + "/filler";
    UniqueFd fd(::open(filler.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd.valid());
    struct statvfs fs {};
    ASSERT_EQ(::statvfs(filler.c_str(), &fs), 0);
    off_t size = static_cast<off_t>(fs.f_bavail) * static_cast<off_t>(fs.f_frsize);
    while (size > 0 && ::fallocate(fd.get(), 0, 0, size) != 0) size -= 64 * 1024;
    std::string block(4096, 'x');
    while (::write(fd.get(), block.data(), block.size()) > 0) {
    }
  }
  void Unfill() { ASSERT_EQ(::unlink((temp_->Sub("small") + "/filler").c_str()), 0); }

  std::optional<storage::loop::LoopFilesystem> small_;
};

TEST_F(ForkdFullDiskTest, RefusedForksLeaveNothingForkdStartsFullAndDeletesFreeRoom) {
  StartForkd();
  ASSERT_TRUE(Import("src").is_object());
  for (const char* name : {"a", "b"}) ASSERT_EQ(api().Post("/v1/instances/src/fork", Json{{"name", name}}).status, 201);
  Fill();

  for (int i = 0; i < 3; ++i) {
    ApiResponse refused = api().Post("/v1/instances/src/fork", Json{{"name", "full-" + std::to_string(i)}});
    EXPECT_EQ(refused.status, 507) << refused.body;
    EXPECT_EQ(refused.json.value("code", ""), "no_space") << refused.body;
  }
  ApiResponse fan_out = api().Post("/v1/instances/src/fork", Json{{"name", "fan"}, {"count", 4}});
  EXPECT_EQ(fan_out.status, 507) << fan_out.body;
  ExpectOnlyCompleteInstances(api(), data_root_);

  // A restart on the full filesystem.
  forkd_->Signal(SIGTERM);
  ASSERT_EQ(forkd_->Wait(), 0) << log();
  StartForkd();
  ApiResponse list = api().Get("/v1/instances");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.json["instances"].size(), 3u);
  EXPECT_EQ(api().Get("/v1/instances/a").status, 200);
  EXPECT_EQ(api().Get("/v1/storage").status, 200);
  EXPECT_EQ(api().Delete("/v1/instances/a").status, 204);
  ExpectOnlyCompleteInstances(api(), data_root_);

  Unfill();
  EXPECT_EQ(api().Post("/v1/instances/src/fork", Json{{"name", "after"}}).status, 201);
  ExpectOnlyCompleteInstances(api(), data_root_);
}

}  // namespace
}  // namespace fe::engine::forkd::test
