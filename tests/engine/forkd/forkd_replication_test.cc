// A template's replication at one forkd (issue #22): a template is marked at import and never runs;
// its file list and chunks are served; an upload checks every chunk against the list, survives a
// restart with what it had, and is imported as a replica that keeps the original's content hash.
// (Between nodes, through forkrouter: tests/engine/router/forkrouter_test.cc.)
#include "base/sha256.h"
#include "tests/engine/forkd/forkd_test_fixture.h"

namespace fe::engine::forkd {
namespace {

using test::ApiResponse;
using test::Json;
using test::StatusAndCode;

class ForkdReplicationTest : public test::ForkdTest {
 protected:
  Json ImportTemplate(const std::string& name, int vcpus = 1) {
    const ApiResponse created = api().Post("/v1/instances", Json{{"name", name},
                                                                 {"hypervisor", "cloud-hypervisor"},
                                                                 {"import_dir", guest_},
                                                                 {"template", true},
                                                                 {"vcpus", vcpus}});
    EXPECT_EQ(created.status, 201) << created.body;
    return created.json;
  }

  std::string Content(const std::string& id, const std::string& path, uint64_t offset, uint64_t length) {
    const ApiResponse read = api().Get("/v1/instances/" + id + "/files/content?path=" + path +
                                       "&offset=" + std::to_string(offset) + "&length=" + std::to_string(length));
    EXPECT_EQ(read.status, 200) << read.body;
    EXPECT_EQ(read.content_type, "application/octet-stream");
    return read.body;
  }

  // Sends every missing chunk of `upload`, read from template `id`, except the first `skip`.
  void SendChunks(const std::string& id, const Json& upload, size_t skip = 0) {
    size_t sent = 0;
    for (const Json& chunk : upload["missing"]) {
      if (sent++ < skip) continue;
      const std::string data = Content(id, chunk["path"], chunk["offset"], chunk["length"]);
      const ApiResponse put = api().Put("/v1/uploads/" + upload["id"].get<std::string>() +
                                            "/chunk?path=" + chunk["path"].get<std::string>() +
                                            "&offset=" + std::to_string(chunk["offset"].get<uint64_t>()),
                                        data, "application/octet-stream");
      ASSERT_EQ(put.status, 200) << put.body;
    }
  }
};

TEST_F(ForkdReplicationTest, ATemplateIsMarkedAtImportNeverRunsAndServesItsFilesButOtherInstancesDoNot) {
  ASSERT_NO_FATAL_FAILURE(StartForkd());
  const Json tmpl = ImportTemplate("tmpl");
  ASSERT_TRUE(tmpl.contains("template")) << tmpl.dump();
  EXPECT_EQ(tmpl["template"]["replica_of"], nullptr);
  EXPECT_EQ(tmpl["template"]["content_hash"].get<std::string>().size(), 64u);
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/tmpl/restore", std::string())), "409 failed_precondition");
  const ApiResponse fork = api().Post("/v1/instances/tmpl/fork", Json{{"name", "child"}});
  ASSERT_EQ(fork.status, 201) << fork.body;
  EXPECT_FALSE(fork.json["forks"][0]["instance"].contains("template")) << "a fork is no template";

  const ApiResponse files = api().Get("/v1/instances/tmpl/files");
  ASSERT_EQ(files.status, 200) << files.body;
  EXPECT_EQ(files.json["content_hash"], tmpl["template"]["content_hash"]);
  EXPECT_EQ(files.json["original_id"], tmpl["id"]);
  const Json& first = files.json["files"]["files"][0];
  ASSERT_FALSE(first["chunks"].empty()) << files.body;
  const Json& chunk = first["chunks"][0];
  EXPECT_EQ(Sha256Hex(Content("tmpl", first["path"], chunk["offset"], chunk["length"])), chunk["sha256"]);

  EXPECT_EQ(StatusAndCode(api().Get("/v1/instances/child/files")), "409 failed_precondition");
  EXPECT_EQ(StatusAndCode(api().Get("/v1/instances/tmpl/files/content?path=../../etc/passwd&offset=0&length=4")),
            "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Get("/v1/instances/tmpl/files/content?path=" + first["path"].get<std::string>() +
                                    "&offset=0&length=999999999")),
            "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(Import("plain").is_null() ? ApiResponse{} : api().Get("/v1/instances/plain/files")),
            "409 failed_precondition");
}

TEST_F(ForkdReplicationTest, AnUploadChecksEveryChunkKeepsWhatItHadAcrossARestartAndImportsAsAReplica) {
  ASSERT_NO_FATAL_FAILURE(StartForkd());
  const Json tmpl = ImportTemplate("tmpl", /*vcpus=*/2);
  const ApiResponse files = api().Get("/v1/instances/tmpl/files");
  ASSERT_EQ(files.status, 200);

  // A list whose paths lead out is refused before anything is made.
  Json escaping = files.json;
  escaping["files"]["files"][0]["path"] = "../escape";
  EXPECT_EQ(StatusAndCode(api().Post("/v1/uploads", escaping)), "400 invalid_argument");

  const ApiResponse begun = api().Post("/v1/uploads", files.json);
  ASSERT_EQ(begun.status, 201) << begun.body;
  const std::string upload = begun.json["id"];
  ASSERT_GE(begun.json["missing"].size(), 2u);
  EXPECT_EQ(begun.json["received_chunks"], 0);

  // Bytes that are not the chunk listed are refused; nothing counts as received.
  const Json& missing = begun.json["missing"][0];
  const std::string chunk_target = "/v1/uploads/" + upload + "/chunk?path=" + missing["path"].get<std::string>() +
                                   "&offset=" + std::to_string(missing["offset"].get<uint64_t>());
  EXPECT_EQ(StatusAndCode(
                api().Put(chunk_target, std::string(missing["length"].get<size_t>(), 'x'), "application/octet-stream")),
            "422 invalid_content");
  EXPECT_EQ(StatusAndCode(
                api().Put("/v1/uploads/" + upload + "/chunk?path=nothing&offset=0", "x", "application/octet-stream")),
            "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances",
                                     Json{{"name", "early"}, {"hypervisor", "cloud-hypervisor"}, {"upload", upload}})),
            "409 failed_precondition")
      << "an incomplete upload is not imported";

  // All but the first chunk, then a restart: the upload keeps them and misses only the first.
  ASSERT_NO_FATAL_FAILURE(SendChunks("tmpl", begun.json, 1));
  forkd_.reset();
  ASSERT_NO_FATAL_FAILURE(StartForkd());
  const ApiResponse resumed = api().Get("/v1/uploads/" + upload);
  ASSERT_EQ(resumed.status, 200) << resumed.body << log();
  ASSERT_EQ(resumed.json["missing"].size(), 1u) << resumed.body;
  ASSERT_NO_FATAL_FAILURE(SendChunks("tmpl", resumed.json));
  EXPECT_EQ(api().Get("/v1/uploads/" + upload).json["complete"], true);

  const ApiResponse replica =
      api().Post("/v1/instances", Json{{"name", "replica"}, {"hypervisor", "cloud-hypervisor"}, {"upload", upload}});
  ASSERT_EQ(replica.status, 201) << replica.body << log();
  EXPECT_EQ(replica.json["template"]["replica_of"], tmpl["id"]);
  EXPECT_EQ(replica.json["template"]["content_hash"], tmpl["template"]["content_hash"]);
  EXPECT_EQ(replica.json["state"], tmpl["state"]);
  EXPECT_EQ(replica.json["vcpus"], 2) << "a replica costs what its template does";
  EXPECT_EQ(StatusAndCode(api().Get("/v1/uploads/" + upload)), "404 not_found") << "imported uploads are removed";
  EXPECT_EQ(api().Post("/v1/instances/replica/fork", Json{{"name", "from-replica"}}).status, 201);
  EXPECT_EQ(StatusAndCode(api().Delete("/v1/uploads/u-0000000000000000")), "404 not_found");
}

TEST_F(ForkdReplicationTest, UploadsAreBoundedInNumberAndAnImportMustNameTheTemplatesHypervisor) {
  ASSERT_NO_FATAL_FAILURE(StartForkd());
  ImportTemplate("tmpl");
  const ApiResponse files = api().Get("/v1/instances/tmpl/files");
  ASSERT_EQ(files.status, 200);
  Json first;
  for (int i = 0; i < 16; ++i) {  // replication::UploadStore::kMaxUploads
    const ApiResponse begun = api().Post("/v1/uploads", files.json);
    ASSERT_EQ(begun.status, 201) << begun.body;
    if (first.is_null()) first = begun.json;
  }
  EXPECT_EQ(StatusAndCode(api().Post("/v1/uploads", files.json)), "409 busy");

  const std::string upload = first["id"];
  // A complete upload is imported only as what it holds.
  ASSERT_NO_FATAL_FAILURE(SendChunks("tmpl", first));
  EXPECT_EQ(
      StatusAndCode(api().Post("/v1/instances", Json{{"name", "other"}, {"hypervisor", "qemu"}, {"upload", upload}})),
      "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Post(
                "/v1/instances",
                Json{{"name", "other"}, {"hypervisor", "cloud-hypervisor"}, {"upload", "u-0123456789abcdef"}})),
            "404 not_found");
  EXPECT_EQ(api().Get("/v1/instances").json["instances"].size(), 1u) << "nothing was made of refused imports";
  EXPECT_EQ(api().Delete("/v1/uploads/" + upload).status, 204);
  EXPECT_EQ(api().Post("/v1/uploads", files.json).status, 201) << "a deleted upload makes room";
}

}  // namespace
}  // namespace fe::engine::forkd
