// snapshot/guest_files.h: a guest directory listed as files and checksummed data chunks (holes left
// out), and a list sent by another node checked before anything is made of it.
#include "snapshot/guest_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/sha256.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::snapshot {
namespace {

using Json = nlohmann::json;

class GuestFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<test::TempDir> dir = test::TempDir::Create();
    FE_ASSERT_OK(dir);
    dir_.emplace(std::move(*dir));
    guest_ = dir_->Sub("guest");
    ASSERT_EQ(::mkdir(guest_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((guest_ + "/snapshot").c_str(), 0700), 0);
    FE_ASSERT_OK(test::WriteFile(guest_ + "/config.json", "{\"cpus\":1}"));
    FE_ASSERT_OK(test::WriteFile(guest_ + "/snapshot/state.json", "{}", 0600));
    ASSERT_EQ(::symlink("snapshot/state.json", (guest_ + "/state").c_str()), 0);
    // A sparse 64 MiB disk with data at 0 and at 40 MiB only.
    const int fd = ::open((guest_ + "/disk.img").c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "boot", 4, 0), 4);
    ASSERT_EQ(::pwrite(fd, "data", 4, 40 << 20), 4);
    ASSERT_EQ(::ftruncate(fd, 64 << 20), 0);
    ::close(fd);
  }

  Result<GuestFileList> List(uint64_t chunk_bytes = kDefaultChunkBytes) {
    Result<ConfinedDir> dir = ConfinedDir::Open(guest_);
    if (!dir.ok()) return dir.status();
    return ListGuestFiles(*dir, chunk_bytes);
  }

  std::optional<test::TempDir> dir_;
  std::string guest_;
};

TEST_F(GuestFilesTest, ListsDirectoriesFilesAndLinksWithTheDataOfSparseFilesOnly) {
  Result<GuestFileList> list = List();
  FE_ASSERT_OK(list);
  std::vector<std::string> paths;
  for (const GuestFile& file : list->files) paths.push_back(file.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"config.json", "disk.img", "snapshot", "snapshot/state.json", "state"}));
  const GuestFile& disk = list->files[1];
  EXPECT_EQ(disk.size, 64u << 20);
  ASSERT_FALSE(disk.chunks.empty());
  EXPECT_EQ(disk.chunks.front().offset, 0u);
  EXPECT_LT(list->DataBytes(), 16u << 20) << "the holes of the disk are not listed";
  EXPECT_EQ(list->files[2].mode, 0700u);
  EXPECT_EQ(list->files[4].type, GuestFile::Type::kSymlink);
  EXPECT_EQ(list->files[4].target, "snapshot/state.json");
  EXPECT_EQ(list->files[0].chunks.at(0).sha256, Sha256Hex("{\"cpus\":1}"));
}

TEST_F(GuestFilesTest, DataIsCutIntoChunksOfAtMostTheChunkSize) {
  Result<GuestFileList> list = List(4096);
  FE_ASSERT_OK(list);
  for (const GuestFile& file : list->files)
    for (const FileChunk& chunk : file.chunks) EXPECT_LE(chunk.length, 4096u);
  EXPECT_EQ(List(0).status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(GuestFilesTest, TheContentHashChangesWithAnyByteAndRoundTripsThroughJson) {
  Result<GuestFileList> before = List();
  FE_ASSERT_OK(before);
  Result<GuestFileList> parsed = GuestFileListFromJson(GuestFileListToJson(*before), "test");
  FE_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->files, before->files);
  EXPECT_EQ(parsed->content_hash, before->content_hash);
  const int fd = ::open((guest_ + "/disk.img").c_str(), O_WRONLY);
  ASSERT_EQ(::pwrite(fd, "D", 1, (40 << 20) + 1), 1);
  ::close(fd);
  Result<GuestFileList> after = List();
  FE_ASSERT_OK(after);
  EXPECT_NE(after->content_hash, before->content_hash);
}

TEST_F(GuestFilesTest, ALinkOutOfTheDirectoryIsRefusedNamingIt) {
  ASSERT_EQ(::symlink("/etc/shadow", (guest_ + "/escape").c_str()), 0);
  Result<GuestFileList> list = List();
  EXPECT_EQ(list.status().code(), ErrorCode::kInvalidContent);
  EXPECT_NE(list.status().message().find("escape"), std::string::npos) << list.status().ToString();
}

TEST_F(GuestFilesTest, AListFromElsewhereIsRefusedWhenItCouldLeadOutOrLiesAboutItsHash) {
  Result<GuestFileList> list = List();
  FE_ASSERT_OK(list);
  const Json good = GuestFileListToJson(*list);
  auto refused = [](Json json, const std::string& field) {
    json["content_hash"] = "";
    Result<GuestFileList> bare = GuestFileListFromJson(json, "body");
    // Recomputed so only the field under test is wrong (the hash check comes last).
    return bare.status().message().find(field) != std::string::npos ? bare.status() : Status::Ok();
  };
  Json escape = good;
  escape["files"][0]["path"] = "../outside";
  EXPECT_FALSE(refused(escape, "files[0].path").ok());
  Json absolute = good;
  absolute["files"][0]["path"] = "/etc/passwd";
  EXPECT_FALSE(refused(absolute, "files[0].path").ok());
  Json link = good;
  link["files"][4]["target"] = "../../etc/shadow";
  EXPECT_FALSE(refused(link, "files[4].target").ok());
  Json past_end = good;
  past_end["files"][0]["chunks"][0]["offset"] = 1u << 30;
  EXPECT_FALSE(refused(past_end, "files[0].chunks[0]").ok());
  Json orphan = good;
  orphan["files"][3]["path"] = "nodir/state.json";
  EXPECT_FALSE(refused(orphan, "files[3].path").ok());
  Json lying = good;
  lying["files"][0]["mode"] = 0777;
  Result<GuestFileList> lie = GuestFileListFromJson(lying, "body");
  EXPECT_EQ(lie.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(lie.status().message().find("content_hash"), std::string::npos) << lie.status().ToString();
}

TEST(DownwardPathTest, OnlyRelativePathsThatGoDownPass) {
  EXPECT_TRUE(IsDownwardRelativePath("a/b.img"));
  for (const char* path : {"", "/a", "a/../b", "./a", "a//b", "a/", ".."}) {
    EXPECT_FALSE(IsDownwardRelativePath(path)) << path;
  }
}

}  // namespace
}  // namespace fe::snapshot
