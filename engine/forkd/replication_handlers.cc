// The routes of a template's replication between nodes (issue #22): a source node lists a template's
// files and serves their chunks; a target node stages them in an upload (engine/replication) and
// imports the complete upload as a replica through POST /v1/instances {"upload"} (handlers.cc).
#include "engine/forkd/replies.h"
#include "engine/forkd/request_parsing.h"
#include "engine/forkd/server.h"
#include "engine/replication/upload_store.h"

namespace fe::engine::forkd {
namespace {

using Json = nlohmann::json;

Reply UploadReply(int status, const Result<replication::UploadStatus>& upload) {
  return upload.ok() ? JsonReply(status, replication::UploadStatusToJson(*upload)) : ErrorReply(upload.status());
}

}  // namespace

Reply ApiServer::TemplateFiles(const Params& params, const Query&, std::string_view) {
  Result<engine::Engine::TemplateFileList> files = engine_.TemplateFiles(params[0]);
  Reply reply;
  if (files.ok()) {
    const engine::Instance& instance = files->instance;
    const replication::SourceTemplate source{
        instance.id,
        instance.name,
        instance.hypervisor,
        std::string(engine::InstanceStateName(instance.state)),
        instance.vcpus,
        files->dir,
        instance.template_mark->content_hash,
        instance.template_mark->replica_of.empty() ? instance.id : instance.template_mark->replica_of};
    reply = JsonReply(200, replication::DescribeTemplate(source, *files->list));
  } else {
    reply = ErrorReply(files.status());
  }
  reply.instance = params[0];
  return reply;
}

Reply ApiServer::TemplateFileContent(const Params& params, const Query& query, std::string_view) {
  auto read = [&]() -> Result<std::string> {
    const std::optional<std::string> path = QueryValue(query, "path");
    const std::optional<std::string> offset = QueryValue(query, "offset");
    const std::optional<std::string> length = QueryValue(query, "length");
    if (!path || !offset || !length) {
      return Status::InvalidArgument("query parameters 'path', 'offset' and 'length' are required");
    }
    FE_ASSIGN_OR_RETURN(uint64_t at, QueryNumber(*offset, "offset", UINT64_MAX / 2));
    FE_ASSIGN_OR_RETURN(uint64_t bytes, QueryNumber(*length, "length", snapshot::kMaxChunkBytes));
    return engine_.ReadTemplateFile(params[0], *path, at, bytes);
  };
  Result<std::string> data = read();
  Reply reply;
  if (data.ok()) {
    reply.body = std::move(*data);
    reply.content_type = "application/octet-stream";
  } else {
    reply = ErrorReply(data.status());
  }
  reply.instance = params[0];
  return reply;
}

Reply ApiServer::CreateUpload(const Params&, const Query&, std::string_view body) {
  if (uploads_ == nullptr) return ErrorReply(Status::Unavailable("this forkd takes no uploads"));
  const Json description = Json::parse(body, nullptr, false);
  if (description.is_discarded()) return ErrorReply(Status::InvalidArgument("upload request: not valid JSON"));
  return UploadReply(201, uploads_->Begin(description));
}

Reply ApiServer::GetUpload(const Params& params, const Query&, std::string_view) {
  if (uploads_ == nullptr) return ErrorReply(Status::Unavailable("this forkd takes no uploads"));
  return UploadReply(200, uploads_->Get(params[0]));
}

Reply ApiServer::PutUploadChunk(const Params& params, const Query& query, std::string_view body) {
  if (uploads_ == nullptr) return ErrorReply(Status::Unavailable("this forkd takes no uploads"));
  const std::optional<std::string> path = QueryValue(query, "path");
  const std::optional<std::string> offset = QueryValue(query, "offset");
  if (!path || !offset) return ErrorReply(Status::InvalidArgument("query parameters 'path' and 'offset' are required"));
  Result<uint64_t> at = QueryNumber(*offset, "offset", UINT64_MAX / 2);
  if (!at.ok()) return ErrorReply(at.status());
  Result<replication::UploadStatus> put = uploads_->PutChunk(params[0], *path, *at, body);
  if (!put.ok()) return ErrorReply(put.status());
  // The answer carries counts only: a missing list per chunk would be quadratic over an upload.
  put->missing.clear();
  put->missing_paths.clear();
  return UploadReply(200, *put);
}

Reply ApiServer::DeleteUpload(const Params& params, const Query&, std::string_view) {
  if (uploads_ == nullptr) return ErrorReply(Status::Unavailable("this forkd takes no uploads"));
  if (Result<replication::UploadStatus> found = uploads_->Get(params[0]); !found.ok())
    return ErrorReply(found.status());
  Status removed = uploads_->Remove(params[0]);
  return removed.ok() ? NoContentReply() : ErrorReply(removed);
}

Result<engine::CreateRequest> ApiServer::ReplicaRequest(engine::CreateRequest request,
                                                        const std::string& upload) const {
  if (uploads_ == nullptr) return Status::Unavailable("this forkd takes no uploads");
  FE_ASSIGN_OR_RETURN(replication::StagedTemplate staged, uploads_->Staged(upload));
  if (request.hypervisor != staged.source.hypervisor) {
    return Status::InvalidArgument("create request: field 'hypervisor': '" + request.hypervisor + "' but upload '" +
                                   upload + "' holds a " + staged.source.hypervisor + " template");
  }
  request.import_dir = staged.files_dir;
  FE_ASSIGN_OR_RETURN(engine::InstanceState state, engine::ParseRequestedState(staged.source.state));
  request.state = state;
  request.vcpus = staged.source.vcpus;  // a replica is the template's copy, its forks cost what the template's do
  request.as_template = true;
  request.replica =
      engine::CreateRequest::Replica{staged.source.dir, staged.source.original_id, staged.source.content_hash};
  return request;
}

}  // namespace fe::engine::forkd
