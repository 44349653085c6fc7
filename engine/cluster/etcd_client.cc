#include "engine/cluster/etcd_client.h"

#include <algorithm>
#include <charconv>
#include <utility>

#include "base/base64.h"

namespace fe::engine::cluster {
namespace {

using Json = nlohmann::json;

// A proto3 int64 in JSON: a string ("42"), a number, or absent (0).
int64_t Int64Field(const Json& object, const char* name) {
  if (!object.is_object() || !object.contains(name)) return 0;
  const Json& value = object[name];
  if (value.is_number_integer()) return value.get<int64_t>();
  if (!value.is_string()) return 0;
  const std::string& text = value.get_ref<const std::string&>();
  int64_t number = 0;
  std::from_chars(text.data(), text.data() + text.size(), number);
  return number;
}

Result<KeyValue> ParseKeyValue(const Json& kv) {
  KeyValue parsed;
  FE_ASSIGN_OR_RETURN(parsed.key, Base64Decode(kv.value("key", ""), "etcd key"));
  FE_ASSIGN_OR_RETURN(parsed.value, Base64Decode(kv.value("value", ""), "etcd value of " + parsed.key));
  parsed.create_revision = Int64Field(kv, "create_revision");
  parsed.mod_revision = Int64Field(kv, "mod_revision");
  parsed.lease = Int64Field(kv, "lease");
  return parsed;
}

Result<std::vector<KeyValue>> ParseKvs(const Json& reply) {
  std::vector<KeyValue> kvs;
  if (!reply.contains("kvs")) return kvs;
  for (const Json& kv : reply["kvs"]) {
    FE_ASSIGN_OR_RETURN(KeyValue parsed, ParseKeyValue(kv));
    kvs.push_back(std::move(parsed));
  }
  return kvs;
}

Json PutRequest(std::string_view key, std::string_view value, int64_t lease) {
  Json put{{"key", Base64Encode(key)}, {"value", Base64Encode(value)}};
  if (lease != 0) put["lease"] = std::to_string(lease);
  return put;
}

}  // namespace

Result<std::vector<EtcdEndpoint>> ParseEtcdEndpoints(std::string_view urls) {
  std::vector<EtcdEndpoint> endpoints;
  size_t start = 0;
  while (start <= urls.size()) {
    const size_t comma = std::min(urls.find(',', start), urls.size());
    const std::string url(urls.substr(start, comma - start));
    start = comma + 1;
    const std::string scheme = "http://";
    const size_t colon = url.rfind(':');
    int port = 0;
    if (url.compare(0, scheme.size(), scheme) == 0 && colon != std::string::npos && colon > scheme.size()) {
      const std::string digits = url.substr(colon + 1);
      auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
      if (error != std::errc() || end != digits.data() + digits.size()) port = 0;
    }
    if (port <= 0 || port > 65535) {
      return Status::InvalidArgument("etcd endpoint '" + url + "' is not http://HOST:PORT");
    }
    endpoints.push_back({url.substr(scheme.size(), colon - scheme.size()), port});
  }
  return endpoints;
}

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

EtcdClient::EtcdClient(std::vector<EtcdEndpoint> endpoints, std::chrono::milliseconds timeout) {
  for (EtcdEndpoint& endpoint : endpoints) {
    members_.push_back(http::HttpClient::Tcp(std::move(endpoint.host), endpoint.port, "etcd", timeout));
  }
}

Result<Json> EtcdClient::Call(std::string_view path, const Json& body) {
  if (members_.empty()) return Status::InvalidArgument("etcd: no endpoints");
  const std::string text = body.dump();
  Status last = Status::Unavailable("etcd: no member answered");
  const size_t first = preferred_.load();
  for (size_t attempt = 0; attempt < members_.size(); ++attempt) {
    const size_t index = (first + attempt) % members_.size();
    Result<http::Response> reply = members_[index].Send("POST", path, text);
    if (!reply.ok()) {
      last = Status::Unavailable(reply.status().message());
      continue;
    }
    preferred_.store(index);
    Json json = Json::parse(reply->body, nullptr, false);
    if (reply->status / 100 != 2) {
      const std::string message =
          json.is_object() ? json.value("message", json.value("error", reply->body)) : reply->body;
      // etcd's gRPC codes: 14 unavailable, 4 deadline exceeded (no quorum, a leader election).
      const int64_t code = json.is_object() ? Int64Field(json, "code") : 0;
      const std::string request = members_[index].Describe("POST", path);
      if (code == 14 || code == 4 || reply->status == 503) return Status::Unavailable(request + ": " + message);
      return http::HttpError(request, reply->status, message);
    }
    if (json.is_discarded()) return Status::Io(members_[index].Describe("POST", path) + ": reply is not JSON");
    return json;
  }
  return last;
}

Result<int64_t> EtcdClient::Put(std::string_view key, std::string_view value, int64_t lease) {
  FE_ASSIGN_OR_RETURN(Json reply, Call("/v3/kv/put", PutRequest(key, value, lease)));
  return Int64Field(reply.value("header", Json::object()), "revision");
}

Result<std::optional<KeyValue>> EtcdClient::Get(std::string_view key) {
  FE_ASSIGN_OR_RETURN(Json reply, Call("/v3/kv/range", Json{{"key", Base64Encode(key)}}));
  FE_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, ParseKvs(reply));
  if (kvs.empty()) return std::optional<KeyValue>();
  return std::optional<KeyValue>(std::move(kvs.front()));
}

Result<std::vector<KeyValue>> EtcdClient::GetPrefix(std::string_view prefix, int64_t* revision) {
  FE_ASSIGN_OR_RETURN(Json reply, Call("/v3/kv/range", Json{{"key", Base64Encode(prefix)},
                                                            {"range_end", Base64Encode(PrefixEnd(prefix))}}));
  if (revision != nullptr) *revision = Int64Field(reply.value("header", Json::object()), "revision");
  return ParseKvs(reply);
}

Status EtcdClient::WatchPrefix(std::string_view prefix, int64_t start_revision, const WatchReceiver& on_events,
                               std::chrono::milliseconds idle_timeout) {
  if (members_.empty()) return Status::InvalidArgument("etcd: no endpoints");
  const std::string body = Json{{"create_request",
                                 {{"key", Base64Encode(prefix)},
                                  {"range_end", Base64Encode(PrefixEnd(prefix))},
                                  {"start_revision", std::to_string(start_revision)}}}}
                               .dump();
  const size_t first = preferred_.load();
  Status last = Status::Unavailable("etcd: no member answered the watch");
  for (size_t attempt = 0; attempt < members_.size(); ++attempt) {
    const size_t index = (first + attempt) % members_.size();
    const http::HttpClient& member = members_[index];
    std::string pending;  // the gateway sends one JSON message per line
    bool created = false;
    Status failure = Status::Ok();
    auto receive = [&](std::string_view data) {
      pending.append(data);
      for (size_t newline; (newline = pending.find('\n')) != std::string::npos;) {
        const Json message = Json::parse(pending.substr(0, newline), nullptr, false);
        pending.erase(0, newline + 1);
        const Json result = message.is_object() ? message.value("result", Json::object()) : Json::object();
        if (!message.is_object() || message.contains("error")) {
          failure = Status::Unavailable(member.Describe("POST", "/v3/watch") + ": " + message.dump());
          return false;
        }
        created = true;
        if (Int64Field(result, "compact_revision") != 0) {
          failure = Status::FailedPrecondition("etcd watch of " + std::string(prefix) + ": revision " +
                                               std::to_string(start_revision) + " is compacted");
          return false;
        }
        if (result.value("canceled", false)) {
          failure = Status::Unavailable(member.Describe("POST", "/v3/watch") +
                                        ": canceled: " + result.value("cancel_reason", std::string()));
          return false;
        }
        std::vector<WatchEvent> events;
        for (const Json& event : result.value("events", Json::array())) {
          Result<KeyValue> kv = ParseKeyValue(event.value("kv", Json::object()));
          if (!kv.ok()) {
            failure = kv.status();
            return false;
          }
          events.push_back(WatchEvent{event.value("type", std::string()) == "DELETE", std::move(*kv)});
        }
        // Not the header's revision: a catch-up batch is headed with the store's current one.
        int64_t revision = 0;
        for (const WatchEvent& event : events) revision = std::max(revision, event.kv.mod_revision);
        if (!events.empty() && !on_events(events, revision)) return false;
      }
      return true;
    };
    Result<http::Response> reply = member.Stream("POST", "/v3/watch", body, receive, idle_timeout);
    if (!failure.ok()) return failure;
    if (!reply.ok() && !created) {
      last = Status::Unavailable(reply.status().message());
      continue;
    }
    preferred_.store(index);
    if (reply.ok() && reply->status / 100 != 2) {
      return http::HttpError(member.Describe("POST", "/v3/watch"), reply->status, reply->body);
    }
    return Status::Ok();  // ended by the receiver, or idle: watch again from the last revision
  }
  return last;
}

Result<int64_t> EtcdClient::Delete(std::string_view key) {
  FE_ASSIGN_OR_RETURN(Json reply, Call("/v3/kv/deleterange", Json{{"key", Base64Encode(key)}}));
  return Int64Field(reply, "deleted");
}

Result<int64_t> EtcdClient::DeletePrefix(std::string_view prefix) {
  FE_ASSIGN_OR_RETURN(Json reply, Call("/v3/kv/deleterange", Json{{"key", Base64Encode(prefix)},
                                                                  {"range_end", Base64Encode(PrefixEnd(prefix))}}));
  return Int64Field(reply, "deleted");
}

Result<bool> EtcdClient::CreateIfAbsent(std::string_view key, std::string_view value, int64_t lease,
                                        KeyValue* existing) {
  const std::string encoded = Base64Encode(key);
  const Json txn{
      {"compare",
       Json::array({Json{{"key", encoded}, {"target", "CREATE"}, {"result", "EQUAL"}, {"create_revision", "0"}}})},
      {"success", Json::array({Json{{"request_put", PutRequest(key, value, lease)}}})},
      {"failure", Json::array({Json{{"request_range", Json{{"key", encoded}}}}})}};
  FE_ASSIGN_OR_RETURN(Json reply, Call("/v3/kv/txn", txn));
  if (reply.value("succeeded", false)) return true;
  if (existing != nullptr) {
    const Json& responses = reply.value("responses", Json::array());
    if (!responses.empty()) {
      FE_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, ParseKvs(responses[0].value("response_range", Json::object())));
      if (!kvs.empty()) *existing = std::move(kvs.front());
    }
  }
  return false;
}

Result<bool> EtcdClient::DeleteIfValue(std::string_view key, std::string_view value) {
  const std::string encoded = Base64Encode(key);
  const Json txn{
      {"compare",
       Json::array({Json{{"key", encoded}, {"target", "VALUE"}, {"result", "EQUAL"}, {"value", Base64Encode(value)}}})},
      {"success", Json::array({Json{{"request_delete_range", Json{{"key", encoded}}}}})}};
  FE_ASSIGN_OR_RETURN(Json reply, Call("/v3/kv/txn", txn));
  return reply.value("succeeded", false);
}

Result<int64_t> EtcdClient::GrantLease(std::chrono::seconds ttl) {
  FE_ASSIGN_OR_RETURN(Json reply, Call("/v3/lease/grant", Json{{"TTL", std::to_string(ttl.count())}}));
  if (reply.contains("error") && !reply["error"].get<std::string>().empty()) {
    return Status::Unavailable("etcd lease grant: " + reply["error"].get<std::string>());
  }
  const int64_t id = Int64Field(reply, "ID");
  if (id == 0) return Status::Io("etcd lease grant: no lease id in " + reply.dump());
  return id;
}

Result<int64_t> EtcdClient::KeepAlive(int64_t lease) {
  // A streaming call in gRPC; over the gateway one request gets one {"result": {...}}.
  FE_ASSIGN_OR_RETURN(Json reply, Call("/v3/lease/keepalive", Json{{"ID", std::to_string(lease)}}));
  return Int64Field(reply.value("result", Json::object()), "TTL");
}

Status EtcdClient::RevokeLease(int64_t lease) {
  return Call("/v3/lease/revoke", Json{{"ID", std::to_string(lease)}}).status();
}

}  // namespace fe::engine::cluster
