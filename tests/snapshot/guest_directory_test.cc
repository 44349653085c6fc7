#include "snapshot/guest_directory.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::snapshot {
namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// A listening Unix socket at `path`, as a running hypervisor leaves its API socket.
void BindSocket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof(address.sun_path));
  std::memcpy(address.sun_path, path.c_str(), path.size());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
  ::close(fd);
}

Manifest SampleManifest() {
  Manifest manifest;
  manifest.hypervisor = "cloud-hypervisor";
  manifest.snapshot_dir = "snapshot";
  manifest.files = {
      {"rootfs.raw", FileRole::kDisk},
      {"vmlinux", FileRole::kPayload},
      {"config.json", FileRole::kConfig},
      {"snapshot/config.json", FileRole::kConfig},
      {"snapshot/state.json", FileRole::kDeviceState},
      {"snapshot/memory-ranges", FileRole::kMemory},
      {"api.sock", FileRole::kRuntime},
      {"cloud-hypervisor.pid", FileRole::kRuntime},
      {"logs", FileRole::kRuntime},
      {"notes.txt", FileRole::kOther},
  };
  return manifest;
}

void ExpectSameManifest(const Manifest& a, const Manifest& b) {
  EXPECT_EQ(a.hypervisor, b.hypervisor);
  EXPECT_EQ(a.snapshot_dir, b.snapshot_dir);
  ASSERT_EQ(a.files.size(), b.files.size());
  for (size_t i = 0; i < a.files.size(); ++i) {
    EXPECT_EQ(a.files[i].path, b.files[i].path);
    EXPECT_EQ(a.files[i].role, b.files[i].role) << a.files[i].path;
  }
}

class GuestDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<test::TempDir> dir = test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
  }
  std::string Path(std::string_view name) const { return dir_->Sub(name); }
  std::string Dir() const { return dir_->path(); }

  Status ReadFails(const std::string& json) {
    EXPECT_TRUE(test::WriteFile(Path("manifest.json"), json).ok());
    return ReadManifest(Dir()).status();
  }

  std::optional<test::TempDir> dir_;
};

TEST_F(GuestDirectoryTest, RoleNamesRoundTrip) {
  for (FileRole role : {FileRole::kDisk, FileRole::kMemory, FileRole::kConfig, FileRole::kDeviceState,
                        FileRole::kPayload, FileRole::kRuntime, FileRole::kOther}) {
    Result<FileRole> parsed = ParseFileRole(FileRoleName(role));
    FE_ASSERT_OK(parsed);
    EXPECT_EQ(*parsed, role) << FileRoleName(role);
  }
  Result<FileRole> unknown = ParseFileRole("swap");
  EXPECT_EQ(unknown.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("device_state"), std::string::npos) << unknown.status().message();
}

TEST_F(GuestDirectoryTest, ManifestRoundTrips) {
  Manifest manifest = SampleManifest();
  FE_ASSERT_OK(WriteManifest(Dir(), manifest));
  Result<Manifest> read = ReadManifest(Dir());
  FE_ASSERT_OK(read);
  ExpectSameManifest(*read, manifest);
  EXPECT_EQ(read->PathsWith(FileRole::kRuntime),
            (std::vector<std::string>{"api.sock", "cloud-hypervisor.pid", "logs"}));
  EXPECT_EQ(read->PathsWith(FileRole::kConfig), (std::vector<std::string>{"config.json", "snapshot/config.json"}));
}

TEST_F(GuestDirectoryTest, ManifestOnDiskIsTheDocumentedJson) {
  FE_ASSERT_OK(WriteManifest(Dir(), SampleManifest()));
  nlohmann::json json = nlohmann::json::parse(*test::ReadFile(Path("manifest.json")));
  EXPECT_EQ(json["hypervisor"], "cloud-hypervisor");
  EXPECT_EQ(json["snapshot_dir"], "snapshot");
  EXPECT_EQ(json["files"][4], (nlohmann::json{{"path", "snapshot/state.json"}, {"role", "device_state"}}));
}

TEST_F(GuestDirectoryTest, MissingManifestIsNotFound) {
  Result<Manifest> read = ReadManifest(Dir());
  EXPECT_EQ(read.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(read.status().message().find(Path("manifest.json")), std::string::npos);
}

TEST_F(GuestDirectoryTest, MalformedManifestErrorsNameTheField) {
  Status status = ReadFails(R"({"files": [{"path": "a", "role": "disk"}, {"path": "b", "role": "swap"}]})");
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.message().find("manifest.json: field 'files[1].role': unknown file role 'swap'"), std::string::npos)
      << status.message();

  status = ReadFails(R"({"files": [{"path": "../etc/passwd", "role": "runtime"}]})");
  EXPECT_NE(status.message().find("field 'files[0].path': '../etc/passwd'"), std::string::npos) << status.message();
  status = ReadFails(R"({"files": [{"path": "/etc/passwd", "role": "runtime"}]})");
  EXPECT_NE(status.message().find("files[0].path"), std::string::npos) << status.message();
  status = ReadFails(R"({"files": [{"path": "a", "role": "disk"}, {"path": "a", "role": "disk"}]})");
  EXPECT_NE(status.message().find("field 'files[1].path': 'a' is listed twice"), std::string::npos) << status.message();
  status = ReadFails(R"({"files": [{"role": "disk"}]})");
  EXPECT_NE(status.message().find("field 'files[0].path': missing"), std::string::npos) << status.message();
  status = ReadFails(R"({"hypervisor": 7, "files": []})");
  EXPECT_NE(status.message().find("field 'hypervisor': expected a string"), std::string::npos) << status.message();
  status = ReadFails(R"({"snapshot_dir": "../x", "files": []})");
  EXPECT_NE(status.message().find("snapshot_dir"), std::string::npos) << status.message();
  status = ReadFails(R"({"hypervisor": "qemu"})");
  EXPECT_NE(status.message().find("field 'files': missing"), std::string::npos) << status.message();
  status = ReadFails("{\"files\": [");
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.message().find("manifest.json: not valid JSON"), std::string::npos) << status.message();
}

TEST_F(GuestDirectoryTest, WriteRefusesPathsOutsideTheDirectory) {
  Manifest manifest;
  manifest.files = {{"../escape", FileRole::kRuntime}};
  Status status = WriteManifest(Dir(), manifest);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(Exists(Path("manifest.json")));
}

TEST_F(GuestDirectoryTest, UnknownFieldsSurviveReadModifyWrite) {
  FE_ASSERT_OK(test::WriteFile(Path("manifest.json"), R"({
    "format": 3,
    "hypervisor": "cloud-hypervisor",
    "owner": {"team": "pool", "labels": ["a", "b"]},
    "files": [
      {"path": "rootfs.raw", "role": "disk", "sha256": "abc", "size": 10737418240},
      {"path": "api.sock", "role": "runtime"}
    ]
  })"));
  Result<Manifest> manifest = ReadManifest(Dir());
  FE_ASSERT_OK(manifest);
  manifest->files.push_back({"vmlinux", FileRole::kPayload});
  manifest->files[1].role = FileRole::kOther;
  manifest->snapshot_dir = "snapshot";
  FE_ASSERT_OK(WriteManifest(Dir(), *manifest));

  nlohmann::ordered_json json = nlohmann::ordered_json::parse(*test::ReadFile(Path("manifest.json")));
  EXPECT_EQ(json["format"], 3);
  EXPECT_EQ(json["owner"], (nlohmann::ordered_json{{"team", "pool"}, {"labels", {"a", "b"}}}));
  EXPECT_EQ(json.begin().key(), "format");  // the file's order is kept
  EXPECT_EQ(json["files"][0]["sha256"], "abc");
  EXPECT_EQ(json["files"][0]["size"], 10737418240u);
  EXPECT_EQ(json["files"][1]["role"], "other");
  EXPECT_EQ(json["files"][2], (nlohmann::ordered_json{{"path", "vmlinux"}, {"role", "payload"}}));
  EXPECT_EQ(json["snapshot_dir"], "snapshot");
}

TEST_F(GuestDirectoryTest, WriteReplacesTheManifestAtomically) {
  FE_ASSERT_OK(WriteManifest(Dir(), SampleManifest()));
  struct stat before {};
  ASSERT_EQ(::stat(Path("manifest.json").c_str(), &before), 0);
  Manifest smaller;
  smaller.hypervisor = "cloud-hypervisor";
  FE_ASSERT_OK(WriteManifest(Dir(), smaller));
  struct stat after {};
  ASSERT_EQ(::stat(Path("manifest.json").c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino);  // renamed into place, never rewritten in place
  EXPECT_EQ(*test::ListDir(Dir()), std::vector<std::string>{"manifest.json"});  // no temporary left
  ExpectSameManifest(*ReadManifest(Dir()), smaller);
}

TEST_F(GuestDirectoryTest, RemoveRuntimeFilesRemovesSocketsPidFilesAndEmptiesLogDirectories) {
  Manifest manifest = SampleManifest();
  for (const char* name : {"rootfs.raw", "vmlinux", "config.json", "cloud-hypervisor.pid", "notes.txt"}) {
    FE_ASSERT_OK(test::WriteFile(Path(name), "x"));
  }
  BindSocket(Path("api.sock"));
  ASSERT_EQ(::mkdir(Path("logs").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(Path("logs/old").c_str(), 0755), 0);
  FE_ASSERT_OK(test::WriteFile(Path("logs/serial.log"), "boot"));
  FE_ASSERT_OK(test::WriteFile(Path("logs/old/serial.log.1"), "boot"));
  FE_ASSERT_OK(WriteManifest(Dir(), manifest));

  FE_ASSERT_OK(RemoveRuntimeFiles(Dir(), manifest));
  EXPECT_EQ(*test::ListDir(Dir()),
            (std::vector<std::string>{"config.json", "logs", "manifest.json", "notes.txt", "rootfs.raw", "vmlinux"}));
  EXPECT_TRUE(test::ListDir(Path("logs"))->empty());  // emptied and kept for the fork's own logs
  // Already gone (and a snapshot directory that was never made) is fine.
  FE_EXPECT_OK(RemoveRuntimeFiles(Dir(), manifest));
}

TEST_F(GuestDirectoryTest, RemoveRuntimeFilesNeverFollowsSymlinks) {
  Result<test::TempDir> outside = test::TempDir::Create();
  FE_ASSERT_OK(outside);
  FE_ASSERT_OK(test::WriteFile(outside->Sub("victim.pid"), "1"));
  ASSERT_EQ(::symlink(outside->path().c_str(), Path("run").c_str()), 0);
  ASSERT_EQ(::symlink(outside->Sub("victim.pid").c_str(), Path("link.pid").c_str()), 0);
  Manifest manifest;
  manifest.files = {{"link.pid", FileRole::kRuntime}};
  FE_ASSERT_OK(RemoveRuntimeFiles(Dir(), manifest));
  EXPECT_FALSE(Exists(Path("link.pid")));  // the link itself goes
  EXPECT_TRUE(Exists(outside->Sub("victim.pid")));

  manifest.files = {{"run/victim.pid", FileRole::kRuntime}};
  Status status = RemoveRuntimeFiles(Dir(), manifest);
  EXPECT_FALSE(status.ok());  // a symlinked directory on the way is refused
  EXPECT_NE(status.message().find("run/victim.pid"), std::string::npos) << status.message();
  EXPECT_TRUE(Exists(outside->Sub("victim.pid")));
}

}  // namespace
}  // namespace fe::snapshot
