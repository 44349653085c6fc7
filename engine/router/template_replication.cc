// Forks of a marked template through the router, and the replication that makes room for them
// (issue #22).
//
// A template is held by its node and by every node it was replicated to; each copy is an instance of
// its node, published with the original's id (engine/cluster/node_state.h). A fork goes to the holder
// placement ranks first, asked with that holder's own copy; a holder out of room passes it to the
// next. When none has room, the router copies the template to the best node that has: it reads the
// file list from a holder (GET /v1/instances/{id}/files), opens an upload on the target with it
// (POST /v1/uploads), moves each missing chunk (GET .../files/content, PUT /v1/uploads/{u}/chunk; the
// target checks every chunk's SHA-256 against the list), imports the complete upload as a replica
// (POST /v1/instances {"upload"}), and forks there. Only data extents travel: a sparse disk stays
// sparse, and the source is only read.
#include <random>

#include "base/reverter.h"
#include "engine/cluster/placement.h"
#include "engine/forkd/replies.h"
#include "engine/router/cluster_router.h"

namespace fe::engine::router {
namespace {

using Json = nlohmann::json;

int64_t Millis(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

// Rounds of a replication's chunks before it gives up on a target that keeps losing them.
constexpr int kReplicationRounds = 3;
using forkd::ErrorReply;

// A node's refusal of one step of a replication, as a Status with the code its HTTP status maps to.
Status StepFailed(const std::string& node, const std::string& step, const forkd::HttpResponse& reply) {
  return http::HttpError("node " + node + ": " + step, reply.status, reply.body);
}

}  // namespace

Result<forkd::HttpResponse> ClusterRouter::Call(const std::string& node, const std::string& method,
                                                const std::string& target, const std::string& body,
                                                const std::string& content_type) const {
  const std::shared_ptr<const cluster::ClusterIndex> index = cache_.Snapshot();
  const cluster::NodeInfo* info = index->Node(node);
  if (info == nullptr) return Status::Unavailable("node " + node + " is not alive");
  FE_ASSIGN_OR_RETURN(http::HttpClient client, NodeClient(*info));
  std::vector<std::pair<std::string, std::string>> headers;
  if (!options_.node_token.empty()) headers.emplace_back("Authorization", "Bearer " + options_.node_token);
  if (!content_type.empty()) headers.emplace_back("Content-Type", content_type);
  Result<http::Response> answer = client.Send(method, target, body, headers);
  if (!answer.ok()) return Status::Unavailable(answer.status().message());
  Reply reply;
  reply.status = answer->status;
  reply.body = std::move(answer->body);
  return reply;
}

forkd::HttpResponse ClusterRouter::ForkInstance(const Request& request, const Params& params) {
  std::shared_ptr<const cluster::ClusterIndex> index = cache_.Snapshot();
  const std::string& named = params.front();
  const auto by_name = index->ids_by_name.find(named);
  const std::string id = by_name != index->ids_by_name.end() ? by_name->second : named;
  const cluster::TemplateInfo* source = nullptr;
  for (const cluster::TemplateInfo& held : index->templates) {
    if (held.id == id) source = &held;
  }
  const Json body = Json::parse(request.body, nullptr, false);
  // Anything but a plain fork of a marked template is its owner's to answer (and to refuse).
  if (source == nullptr || source->content_hash.empty() || !body.is_object() ||
      (body.contains("from_running") && body["from_running"] != false) ||
      (body.contains("count") && !body["count"].is_number_integer())) {
    return ToOwner(request, params);
  }
  const int count = body.value("count", 1);
  if (count < 1 || count > 64) return ToOwner(request, params);
  const std::string original = source->original;
  std::map<std::string, cluster::TemplateInfo> copies;  // node -> its copy of the template
  for (const cluster::TemplateInfo& held : index->templates) {
    if (held.original == original) copies.emplace(held.node, held);
  }
  cluster::PlacementNeed need;
  need.hypervisor = source->hypervisor;
  need.vcpus = source->vcpus * count;
  // A snapshot restores on the CPU model it was taken on: a Standby template's forks and replicas stay
  // on nodes publishing its node's model.
  if (source->state == "Standby" && index->Node(source->node) != nullptr) {
    need.cpu_model = index->Node(source->node)->cpu_model;
  }
  for (const auto& [node, copy] : copies) need.holders.push_back(node);

  std::map<std::string, std::string> copy_ids;  // node -> its copy's id
  for (const auto& [node, copy] : copies) copy_ids[node] = copy.id;
  auto fork_on = [&](const std::string& node) -> Result<Reply> {
    Request forward = request;
    forward.path = "/v1/instances/" + copy_ids.at(node) + "/fork";
    const std::shared_ptr<const cluster::ClusterIndex> now = cache_.Snapshot();
    const cluster::NodeInfo* info = now->Node(node);
    if (info == nullptr) return Status::Unavailable("node " + node + " is not alive");
    return Forward(*info, forward, request.body);
  };
  cluster::PlacementNeed one = need;
  one.vcpus = source->vcpus;

  // 1. A holder with room for the whole fork.
  std::string refusals;
  Result<std::vector<std::string>> holders = [&] {
    std::lock_guard<std::mutex> lock(mutex_);
    return cluster::RankNodes(*index, need, random_, options_.best_of);
  }();
  if (holders.ok()) {
    for (const std::string& node : *holders) {
      Result<Reply> reply = fork_on(node);
      if (reply.ok() && !IsCapacityRefusal(*reply)) return std::move(*reply);
      refusals += (refusals.empty() ? "" : "; ") +
                  (reply.ok() ? node + " answered " + std::to_string(reply->status) : reply.status().message());
    }
  } else {
    refusals = holders.status().message();
  }
  // 2. A fan-out split across the holders.
  std::vector<std::string> holder_nodes = need.holders;
  if (count > 1) {
    Result<std::vector<std::pair<std::string, int>>> parts = cluster::SplitCount(*index, holder_nodes, one, count);
    if (parts.ok()) return ForkInParts(request, body, *parts, copy_ids);
  }

  // 3. Replicate to the best other node (one with room for it all first), then fork there or split.
  std::string target;
  for (const cluster::PlacementNeed* wanted : {&need, &one}) {
    cluster::PlacementNeed anywhere = *wanted;
    anywhere.holders.clear();
    Result<std::vector<std::string>> ranked = [&] {
      std::lock_guard<std::mutex> lock(mutex_);
      return cluster::RankNodes(*index, anywhere, random_, options_.best_of);
    }();
    for (const std::string& node : ranked.ok() ? *ranked : std::vector<std::string>{}) {
      if (copies.count(node) == 0 && target.empty()) target = node;
    }
    if (!target.empty()) break;
  }
  if (target.empty()) {
    return ErrorReply(Status::InsufficientResources("template " + original + ": no holder has room (" + refusals +
                                                    ") and no other node can take one of " + std::to_string(count) +
                                                    " forks of " + std::to_string(one.vcpus) + " vCPUs"));
  }
  {
    std::lock_guard<std::mutex> one_at_a_time(replication_mutex_);
    // A replication that finished while this one waited may have made the copy this one needs.
    const std::shared_ptr<const cluster::ClusterIndex> now = cache_.Snapshot();
    for (const cluster::TemplateInfo& held : now->templates) {
      if (held.original == original && held.node == target) copy_ids[target] = held.id;
    }
    if (copy_ids.count(target) == 0) {
      const auto origin = copies.find(index->OwnerOf(original));
      const cluster::TemplateInfo& from = origin != copies.end() ? origin->second : copies.begin()->second;
      Result<std::string> replicated = Replicate(from, target);
      if (!replicated.ok()) return ErrorReply(replicated.status());
      copy_ids[target] = *replicated;
    }
  }
  if (cluster::Ineligible(*index->Node(target), need).empty()) {
    Result<Reply> reply = fork_on(target);
    return reply.ok() ? std::move(*reply) : ErrorReply(reply.status());
  }
  holder_nodes.push_back(target);
  Result<std::vector<std::pair<std::string, int>>> parts = cluster::SplitCount(*index, holder_nodes, one, count);
  if (!parts.ok()) return ErrorReply(parts.status().Annotate("template " + original));
  return ForkInParts(request, body, *parts, copy_ids);
}

forkd::HttpResponse ClusterRouter::ForkInParts(const Request& request, const Json& body,
                                               const std::vector<std::pair<std::string, int>>& parts,
                                               const std::map<std::string, std::string>& copy_ids) {
  int first = body.value("first_index", 0) == 0 ? 1 : body.value("first_index", 1);
  Json forks = Json::array();
  std::vector<std::pair<std::string, std::string>> made;  // (node, instance id)
  for (const auto& [node, instances] : parts) {
    Json part = body;
    part["count"] = instances;
    part["first_index"] = first;
    first += instances;
    Request forward = request;
    forward.path = "/v1/instances/" + copy_ids.at(node) + "/fork";
    // The index is held while its node is used: a watch event may replace it meanwhile.
    const std::shared_ptr<const cluster::ClusterIndex> now = cache_.Snapshot();
    const cluster::NodeInfo* info = now->Node(node);
    Result<Reply> reply = info != nullptr ? Forward(*info, forward, part.dump())
                                          : Result<Reply>(Status::Unavailable("node " + node + " is not alive"));
    const Json answered = reply.ok() && reply->status == 201 ? Json::parse(reply->body, nullptr, false) : Json();
    if (!answered.is_object() || !answered.contains("forks")) {
      // All or nothing: what the other parts made is deleted again.
      size_t undone = 0;
      for (const auto& [made_on, id] : made) {
        Result<Reply> removed = Call(made_on, "DELETE", "/v1/instances/" + id, "");
        if (removed.ok() && removed->status == 204) ++undone;
      }
      const std::string what = "part of " + std::to_string(instances) + " forks on " + node + " failed; " +
                               std::to_string(undone) + " of the " + std::to_string(made.size()) +
                               " forks the other parts made were deleted";
      if (!reply.ok()) return ErrorReply(reply.status().Annotate(what));
      Reply refused = std::move(*reply);
      refused.error = what + ": " + refused.body;
      return refused;
    }
    for (const Json& fork : answered["forks"]) {
      made.emplace_back(node, fork["instance"].value("id", std::string()));
      forks.push_back(fork);
    }
  }
  Log(LogLevel::kInfo,
      "fork of " + std::to_string(made.size()) + " split across " + std::to_string(parts.size()) + " nodes");
  return forkd::JsonReply(201, Json{{"forks", std::move(forks)}});
}

Result<std::string> ClusterRouter::Replicate(const cluster::TemplateInfo& source, const std::string& target) {
  const auto start = std::chrono::steady_clock::now();
  const std::string files = "/v1/instances/" + source.id + "/files";
  FE_ASSIGN_OR_RETURN(Reply described, Call(source.node, "GET", files, ""));
  if (described.status != 200) return StepFailed(source.node, "GET " + files, described);
  FE_ASSIGN_OR_RETURN(Reply begun, Call(target, "POST", "/v1/uploads", described.body));
  if (begun.status != 201) return StepFailed(target, "POST /v1/uploads", begun);
  const Json upload = Json::parse(begun.body, nullptr, false);
  if (!upload.is_object() || !upload.contains("id") || !upload["id"].is_string() || !upload.contains("missing")) {
    return Status::InvalidContent("node " + target + ": POST /v1/uploads: not an upload: " + begun.body);
  }
  const std::string upload_id = upload["id"];
  Reverter reverter;
  reverter.Add("remove upload " + upload_id + " on " + target, [this, target, upload_id] {
    Result<Reply> removed = Call(target, "DELETE", "/v1/uploads/" + upload_id, "");
    return removed.ok() ? Status::Ok() : removed.status();
  });
  // Chunks go one by one; one lost on the way (a connection cut, a node's 5xx) is sent again in the
  // next round, which asks the target what it still misses (the upload survives even its restart).
  uint64_t bytes = 0;
  size_t sent = 0;
  Json missing_now = upload["missing"];
  for (int round = 1;; ++round) {
    Status lost = Status::Ok();
    for (const Json& missing : missing_now) {
      const std::string path = missing.value("path", std::string());
      const std::string offset = std::to_string(missing.value("offset", uint64_t{0}));
      const std::string length = std::to_string(missing.value("length", uint64_t{0}));
      const std::string read =
          files + "/content?path=" + PercentEncode(path) + "&offset=" + offset + "&length=" + length;
      Result<Reply> chunk = Call(source.node, "GET", read, "");
      if (chunk.ok() && chunk->status != 200) lost = StepFailed(source.node, "GET " + read, *chunk);
      if (!chunk.ok()) lost = chunk.status();
      if (!lost.ok()) break;
      const std::string write = "/v1/uploads/" + upload_id + "/chunk?path=" + PercentEncode(path) + "&offset=" + offset;
      Result<Reply> put = Call(target, "PUT", write, chunk->body, "application/octet-stream");
      if (put.ok() && put->status != 200) lost = StepFailed(target, "PUT " + write, *put);
      if (!put.ok()) lost = put.status();
      if (!lost.ok()) break;
      bytes += chunk->body.size();
      ++sent;
    }
    if (lost.ok()) break;
    const bool transient =
        lost.code() == ErrorCode::kUnavailable || lost.code() == ErrorCode::kIo || lost.code() == ErrorCode::kInternal;
    if (!transient || round == kReplicationRounds) return lost.Annotate("replication round " + std::to_string(round));
    Log(LogLevel::kWarning, "replication of " + source.original + " to " + target + ": " + lost.ToString() +
                                "; asking " + target + " what it still misses");
    FE_ASSIGN_OR_RETURN(Reply status, Call(target, "GET", "/v1/uploads/" + upload_id, ""));
    if (status.status != 200) return StepFailed(target, "GET /v1/uploads/" + upload_id, status);
    const Json progress = Json::parse(status.body, nullptr, false);
    if (!progress.is_object() || !progress.contains("missing")) {
      return Status::InvalidContent("node " + target + ": GET /v1/uploads/" + upload_id + ": " + status.body);
    }
    missing_now = progress["missing"];
  }
  std::string suffix;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    static constexpr char kHex[] = "0123456789abcdef";
    for (int i = 0; i < 8; ++i) suffix += kHex[random_() & 15];
  }
  const std::string name = source.name.substr(0, 40) + "-r-" + suffix;
  const Json create{{"name", name}, {"hypervisor", source.hypervisor}, {"upload", upload_id}};
  const auto import_start = std::chrono::steady_clock::now();
  FE_ASSIGN_OR_RETURN(Reply created, Call(target, "POST", "/v1/instances", create.dump()));
  const auto done = std::chrono::steady_clock::now();
  if (created.status != 201)
    return StepFailed(target, "POST /v1/instances (import of upload " + upload_id + ")", created);
  reverter.Commit();  // the import removed the upload
  const Json replica = Json::parse(created.body, nullptr, false);
  if (!replica.is_object() || !replica.contains("id") || !replica["id"].is_string()) {
    return Status::InvalidContent("node " + target + ": the import answered no instance: " + created.body);
  }
  Log(LogLevel::kInfo, "replicated template " + source.original + " from " + source.node + " (" + source.id + ") to " +
                           target + " as " + replica["id"].get<std::string>() + ": " + std::to_string(sent) +
                           " chunks, " + std::to_string(bytes) + " bytes in " +
                           std::to_string(Millis(start, import_start)) + " ms, imported in " +
                           std::to_string(Millis(import_start, done)) + " ms");
  return replica["id"].get<std::string>();
}

}  // namespace fe::engine::router
