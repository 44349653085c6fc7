// The only file that includes Boost.Beast/Asio (they cost seconds per translation unit to compile).
#include "engine/forkd/http_server.h"

#include <algorithm>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <condition_variable>
#include <exception>
#include <list>
#include <mutex>
#include <optional>
#include <thread>

namespace fe::engine::forkd {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using SteadyClock = std::chrono::steady_clock;

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch()).count();
}

bool SameToken(std::string_view given, const std::string& expected) {
  // Constant time in the token's content, so the comparison does not leak a prefix.
  unsigned char difference = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    difference |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  }
  return difference == 0;
}

// What a listener knows of its connections: enough to pick the one to evict and to close them all.
class Connection {
 public:
  virtual ~Connection() = default;
  // Nanoseconds (steady clock) since which it waits for a request header; 0 while it serves one.
  virtual int64_t waiting_since() const = 0;
  // Closes it on its own strand: only when it waits for a header, or whatever it does (`force`).
  virtual void RequestClose(bool force) = 0;
};

// Shared by the listeners and their connections.
struct ServerState {
  HttpHandlers handlers;
  net::thread_pool& workers;
  std::atomic<bool> stopping{false};
};

class ConnectionRegistry {
 public:
  // Registers `connection` unless max is reached and no waiting one can be evicted; returns false then.
  bool Admit(const std::shared_ptr<Connection>& connection, size_t max) {
    std::lock_guard lock(mutex_);
    Prune();
    if (live_.size() >= max) {
      std::shared_ptr<Connection> oldest;
      int64_t oldest_since = 0;
      for (const std::weak_ptr<Connection>& weak : live_) {
        std::shared_ptr<Connection> candidate = weak.lock();
        if (!candidate) continue;
        const int64_t since = candidate->waiting_since();
        if (since != 0 && (oldest == nullptr || since < oldest_since)) {
          oldest = candidate;
          oldest_since = since;
        }
      }
      if (!oldest) return false;
      oldest->RequestClose(/*force=*/false);
      live_.remove_if([&](const std::weak_ptr<Connection>& weak) { return weak.lock() == oldest; });
    }
    live_.push_back(connection);
    return true;
  }
  std::vector<std::shared_ptr<Connection>> Live() {
    std::lock_guard lock(mutex_);
    Prune();
    std::vector<std::shared_ptr<Connection>> live;
    for (const std::weak_ptr<Connection>& weak : live_) {
      if (std::shared_ptr<Connection> connection = weak.lock()) live.push_back(std::move(connection));
    }
    return live;
  }

 private:
  void Prune() {
    live_.remove_if([](const std::weak_ptr<Connection>& weak) { return weak.expired(); });
  }
  std::mutex mutex_;
  std::list<std::weak_ptr<Connection>> live_;
};

// Bodies from this length on are read past Beast's parser (Session::ReadBodyDirectly).
constexpr size_t kDirectBodyBytes = 256 * 1024;

template <typename Protocol>
class Session final : public Connection, public std::enable_shared_from_this<Session<Protocol>> {
 public:
  Session(typename Protocol::socket socket, std::shared_ptr<const ListenerOptions> options, ServerState& state)
      : stream_(std::move(socket)),
        executor_(stream_.get_executor()),
        options_(*options),
        options_owner_(std::move(options)),
        state_(state) {}

  void Start() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->ReadHeader(); });
  }

  int64_t waiting_since() const override { return waiting_since_.load(); }

  void RequestClose(bool force) override {
    net::post(stream_.get_executor(), [self = this->shared_from_this(), force] {
      if (!force && self->body_stream_) return self->FinishStream();
      if (force || self->waiting_since_.load() != 0) self->Close();
    });
  }

 private:
  void ReadHeader() {
    if (closed_) return;
    if (state_.stopping.load()) return Close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
    // The largest limit any route has: a route's own is set once the header names the route.
    body_limit_ = options_.max_body_bytes;
    parser_->body_limit(std::max(options_.max_body_bytes, state_.handlers.largest_route_body_bytes));
    request_ = HttpRequest{};
    waiting_since_ = NowNanos();
    stream_.expires_after(options_.header_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    waiting_since_ = 0;
    started_ = SteadyClock::now();
    if (ec == http::error::body_limit) {
      return Refuse(413,
                    "the request body exceeds " +
                        std::to_string(std::max(options_.max_body_bytes, state_.handlers.largest_route_body_bytes)) +
                        " bytes");
    }
    if (ec == http::error::header_limit) {
      return Refuse(431, "the request header exceeds " + std::to_string(options_.max_header_bytes) + " bytes");
    }
    // A request that is not HTTP is told so; a timeout, the end of the stream or a reset just close.
    if (ec && ec.category() == http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      return Refuse(400, "malformed request: " + ec.message());
    }
    if (ec) return Close();
    const auto& header = parser_->get();
    request_.method = std::string(header.method_string());
    const std::string_view target = header.target();
    request_.path = std::string(target.substr(0, target.find('?')));
    if (target.find('?') != std::string_view::npos) {
      boost::system::result<boost::urls::url_view> parsed = boost::urls::parse_origin_form(target);
      if (!parsed) return Refuse(400, "malformed request target: " + parsed.error().message());
      for (const boost::urls::param& param : parsed->params()) {
        request_.query.emplace_back(param.key, param.has_value ? param.value : std::string());
      }
    }
    request_.idempotency_key = std::string(header["Idempotency-Key"]);
    if (!options_.token.empty()) {
      constexpr std::string_view kBearer = "Bearer ";
      const std::string_view given = header[http::field::authorization];
      if (given.size() <= kBearer.size() || given.substr(0, kBearer.size()) != kBearer ||
          !SameToken(given.substr(kBearer.size()), options_.token)) {
        return Refuse(401, "a bearer token is required on this listener", {{"WWW-Authenticate", "Bearer"}});
      }
    }
    if (state_.handlers.route_body_limit) {
      if (const size_t route_limit = state_.handlers.route_body_limit(request_.method, request_.path);
          route_limit > 0) {
        body_limit_ = route_limit;
      }
    }
    if (parser_->content_length() && *parser_->content_length() > body_limit_) {
      return Refuse(413, "the request body exceeds " + std::to_string(body_limit_) + " bytes");
    }
    parser_->body_limit(body_limit_);
    if (!parser_->content_length() && !parser_->chunked() && state_.handlers.requires_body &&
        state_.handlers.requires_body(request_.method, request_.path)) {
      return Refuse(411, request_.method + " " + request_.path + " needs a body with a Content-Length");
    }
    if (parser_->is_done()) return Dispatch();
    stream_.expires_after(options_.body_timeout);
    if (beast::iequals(header[http::field::expect], "100-continue")) {
      auto go_on = std::make_shared<http::response<http::empty_body>>(http::status::continue_, header.version());
      http::async_write(stream_, *go_on, [self = this->shared_from_this(), go_on](beast::error_code ec, size_t) {
        if (ec) return self->Close();
        self->ReadBody();
      });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    if (const auto length = parser_->content_length(); length && *length >= kDirectBodyBytes) {
      return ReadBodyDirectly(static_cast<size_t>(*length));
    }
    http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec == http::error::body_limit) {
        return self->Refuse(413, "the request body exceeds " + std::to_string(self->body_limit_) + " bytes");
      }
      if (ec) return self->Close();
      self->Dispatch();
    });
  }

  // Beast's parser reads a body 64 KiB at a time, each read re-arming the socket's timer and epoll: a
  // body of megabytes (an upload's chunk) took 80 ms to read that way here. One with a length that
  // large is read straight into its string, in reads as large as the socket has data for (the body
  // timeout still bounds it); what the parser had buffered beyond the header comes first.
  void ReadBodyDirectly(size_t length) {
    direct_body_.resize(length);
    const size_t buffered = std::min(buffer_.size(), length);
    net::buffer_copy(net::buffer(direct_body_.data(), buffered), buffer_.data());
    buffer_.consume(buffered);
    net::async_read(stream_, net::buffer(direct_body_.data() + buffered, length - buffered),
                    [self = this->shared_from_this()](beast::error_code ec, size_t) {
                      if (ec) return self->Close();
                      self->Dispatch(/*body_read_directly=*/true);
                    });
  }

  void Dispatch(bool body_read_directly = false) {
    request_.body = body_read_directly ? std::move(direct_body_) : std::move(parser_->get().body());
    direct_body_ = std::string();
    keep_alive_ = parser_->get().keep_alive();
    stream_.expires_never();
    net::post(state_.workers, [self = this->shared_from_this()] {
      HttpResponse response;
      try {
        response = self->state_.handlers.handle(self->request_);
      } catch (const std::exception& error) {
        response = self->ErrorResponse(500, std::string("internal error: ") + error.what());
        response.error = error.what();
      }
      net::post(self->stream_.get_executor(),
                [self, response = std::move(response)]() mutable { self->Write(std::move(response), false); });
    });
  }

  HttpResponse ErrorResponse(int status, std::string_view message) const {
    HttpResponse response;
    response.status = status;
    response.body = state_.handlers.error_body ? state_.handlers.error_body(status, message) : std::string(message);
    return response;
  }

  // The server's own answer; the connection closes after it (what else the client sent is not read).
  void Refuse(int status, std::string_view message, std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpResponse response = ErrorResponse(status, message);
    response.headers = std::move(headers);
    response.error = std::string(message);
    if (request_.method.empty() && parser_) {
      request_.method = std::string(parser_->get().method_string());
      const std::string_view target = parser_->get().target();
      request_.path = std::string(target.substr(0, target.find('?')));
    }
    Write(std::move(response), /*close=*/true);
  }

  void Write(HttpResponse response, bool close) {
    if (closed_) return;
    if (response.stream && !close) return StartStream(std::move(response));
    const bool keep = keep_alive_ && !close && !state_.stopping.load();
    auto message = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(response.status),
                                                                       parser_ ? parser_->get().version() : 11);
    if (!response.body.empty()) message->set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) message->set(name, value);
    message->body() = std::move(response.body);
    message->keep_alive(keep);
    message->prepare_payload();
    response.body.clear();
    stream_.expires_after(options_.write_timeout);
    http::async_write(stream_, *message,
                      [self = this->shared_from_this(), message, response = std::move(response), keep](
                          beast::error_code ec, size_t) mutable {
                        const double seconds =
                            std::chrono::duration<double>(SteadyClock::now() - self->started_).count();
                        if (self->state_.handlers.completed)
                          self->state_.handlers.completed(self->request_, response, seconds);
                        if (ec) return self->Close();
                        // A refusal left part of the request unread: linger; else close at once.
                        if (!keep) return self->unread_body() ? self->LingerAndClose() : self->Close();
                        self->ReadHeader();
                      });
  }

  // A streamed response (see http_server.h): the header, then chunks as the stream yields them.
  void StartStream(HttpResponse response) {
    body_stream_ = std::move(response.stream);
    auto header = std::make_shared<http::response<http::empty_body>>(static_cast<http::status>(response.status),
                                                                     parser_ ? parser_->get().version() : 11);
    header->set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) header->set(name, value);
    header->keep_alive(false);
    header->chunked(true);
    streamed_ = std::move(response);
    auto serializer = std::make_shared<http::response_serializer<http::empty_body>>(*header);
    stream_.expires_after(options_.write_timeout);
    http::async_write_header(stream_, *serializer,
                             [self = this->shared_from_this(), header, serializer](beast::error_code ec, size_t) {
                               if (ec) return self->EndStream();
                               self->stream_.expires_never();
                               self->WatchPeer();
                               self->Pump();
                             });
  }

  // The client sends nothing more on a streamed response's connection: a read that ends is the client
  // going away (or misbehaving), which ends the stream.
  void WatchPeer() {
    stream_.async_read_some(net::buffer(drain_buffer_),
                            [self = this->shared_from_this()](beast::error_code, size_t) { self->EndStream(); });
  }

  void Pump() {
    if (closed_ || chunk_in_flight_) return;
    bool finished = ending_stream_;
    std::string piece;
    if (!finished) piece = body_stream_->Take(&finished);
    if (piece.empty() && !finished) {
      ready_ = body_stream_->OnReady([weak = this->weak_from_this(), executor = executor_] {
        net::post(executor, [weak] {
          if (auto self = weak.lock()) self->Pump();
        });
      });
      return;
    }
    chunk_in_flight_ = true;
    stream_.expires_after(options_.write_timeout);
    if (!piece.empty()) {
      auto data = std::make_shared<std::string>(std::move(piece));
      net::async_write(stream_, http::make_chunk(net::buffer(*data)),
                       [self = this->shared_from_this(), data](beast::error_code ec, size_t) {
                         self->chunk_in_flight_ = false;
                         if (ec) return self->EndStream();
                         self->stream_.expires_never();
                         self->Pump();
                       });
      return;
    }
    net::async_write(stream_, http::make_chunk_last(), [self = this->shared_from_this()](beast::error_code, size_t) {
      self->chunk_in_flight_ = false;
      self->EndStream();
    });
  }

  // Asks a streamed response to end with its last chunk (Stop), or ends it now if it cannot.
  void FinishStream() {
    ending_stream_ = true;
    Pump();
  }

  void EndStream() {
    if (closed_) return;
    ready_.reset();
    const double seconds = std::chrono::duration<double>(SteadyClock::now() - started_).count();
    if (state_.handlers.completed) state_.handlers.completed(request_, streamed_, seconds);
    Close();
  }

  // After a refusal the client may still be sending the body it announced: closing with unread
  // bytes would reset the connection and could destroy the response before the client reads it. So
  // the send side is shut down and what arrives is read and dropped, for at most kLingerTime or
  // kLingerBytes, before the connection closes.
  bool unread_body() const { return parser_ && !parser_->is_done() && !state_.stopping.load(); }

  void LingerAndClose() {
    if (closed_) return;
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(Protocol::socket::shutdown_send, ignored);
    stream_.expires_after(kLingerTime);
    Drain(0);
  }

  void Drain(size_t drained) {
    if (closed_) return;
    if (drained >= kLingerBytes) return Close();
    stream_.async_read_some(net::buffer(drain_buffer_),
                            [self = this->shared_from_this(), drained](beast::error_code ec, size_t bytes) {
                              if (ec) return self->Close();
                              self->Drain(drained + bytes);
                            });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    waiting_since_ = 0;
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(Protocol::socket::shutdown_both, ignored);
    stream_.close();
  }

  static constexpr std::chrono::milliseconds kLingerTime{2000};
  static constexpr size_t kLingerBytes = 1 << 20;

  beast::basic_stream<Protocol> stream_;
  const typename beast::basic_stream<Protocol>::executor_type executor_;  // the connection's strand
  const ListenerOptions& options_;
  const std::shared_ptr<const ListenerOptions> options_owner_;  // outlives the listener if need be
  ServerState& state_;
  beast::flat_buffer buffer_;
  std::string direct_body_;  // a large body read past the parser (ReadBodyDirectly)
  std::array<char, 16384> drain_buffer_{};
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest request_;
  bool keep_alive_ = false;
  size_t body_limit_ = 0;  // this request's: the listener's, or its route's
  bool closed_ = false;
  std::atomic<int64_t> waiting_since_{0};
  // A streamed response: its body, its header's fields for the log, the pending OnReady call.
  std::shared_ptr<ResponseStream> body_stream_;
  HttpResponse streamed_;
  std::shared_ptr<void> ready_;
  bool chunk_in_flight_ = false;
  bool ending_stream_ = false;
  SteadyClock::time_point started_ = SteadyClock::now();
};

class ListenerBase {
 public:
  virtual ~ListenerBase() = default;
  virtual void StopAccepting() = 0;
  virtual ConnectionRegistry& registry() = 0;
};

template <typename Protocol>
class Listener final : public ListenerBase, public std::enable_shared_from_this<Listener<Protocol>> {
 public:
  Listener(net::io_context& io, typename Protocol::acceptor acceptor, ListenerOptions options, ServerState& state)
      : io_(io),
        acceptor_(std::move(acceptor)),
        options_(std::make_shared<const ListenerOptions>(std::move(options))),
        state_(state) {}

  void Accept() {
    acceptor_.async_accept(net::make_strand(io_), [self = this->shared_from_this()](beast::error_code ec,
                                                                                    typename Protocol::socket socket) {
      if (ec == net::error::operation_aborted || !self->acceptor_.is_open()) return;
      if (!ec) {
        auto session = std::make_shared<Session<Protocol>>(std::move(socket), self->options_, self->state_);
        if (self->registry_.Admit(session, self->options_->max_connections)) session->Start();
        // else: the session (and its socket) goes now: no connection waits long enough to give way.
      } else if (ec == net::error::no_descriptors || ec == net::error::no_buffer_space) {
        // Out of file descriptors: wait a little instead of spinning on accept.
        auto timer = std::make_shared<net::steady_timer>(self->io_, std::chrono::milliseconds(50));
        timer->async_wait([self, timer](beast::error_code) { self->Accept(); });
        return;
      }
      self->Accept();
    });
  }

  void StopAccepting() override {
    net::post(acceptor_.get_executor(), [self = this->shared_from_this()] {
      beast::error_code ignored;
      self->acceptor_.close(ignored);
    });
  }
  ConnectionRegistry& registry() override { return registry_; }

 private:
  net::io_context& io_;
  typename Protocol::acceptor acceptor_;
  const std::shared_ptr<const ListenerOptions> options_;
  ServerState& state_;
  ConnectionRegistry registry_;
};

}  // namespace

class HttpServer::Impl {
 public:
  Impl(HttpHandlers handlers, HttpServerOptions options)
      : options_(options),
        workers_(options.worker_threads),
        state_{std::move(handlers), workers_},
        work_(net::make_work_guard(io_)) {}

  HttpServerOptions options_;
  net::io_context io_;
  net::thread_pool workers_;
  ServerState state_;
  net::executor_work_guard<net::io_context::executor_type> work_;
  std::vector<std::shared_ptr<ListenerBase>> listeners_;
  std::vector<std::thread> io_threads_;
  bool stopped_ = false;

  size_t Connections() {
    size_t count = 0;
    for (const auto& listener : listeners_) count += listener->registry().Live().size();
    return count;
  }
};

HttpServer::HttpServer(HttpHandlers handlers, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(handlers), options)) {}

HttpServer::~HttpServer() { Stop(std::chrono::milliseconds(0)); }

Status HttpServer::ServeUnixSocket(int fd, ListenerOptions options) {
  using Protocol = net::local::stream_protocol;
  beast::error_code ec;
  Protocol::acceptor acceptor(impl_->io_);
  acceptor.assign(Protocol(), fd, ec);
  if (ec) {
    ::close(fd);
    return Status::Io("serving " + options.name + ": " + ec.message());
  }
  auto listener =
      std::make_shared<Listener<Protocol>>(impl_->io_, std::move(acceptor), std::move(options), impl_->state_);
  impl_->listeners_.push_back(listener);
  listener->Accept();
  return Status::Ok();
}

Result<int> HttpServer::ServeTcp(const std::string& host, int port, ListenerOptions options) {
  using Protocol = net::ip::tcp;
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(host, ec);
  if (ec) return Status::InvalidArgument("listen address '" + host + "': " + ec.message());
  Protocol::endpoint endpoint(address, static_cast<unsigned short>(port));
  Protocol::acceptor acceptor(impl_->io_);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(SOMAXCONN, ec);
  if (ec) return Status::Io("listen on tcp " + host + ":" + std::to_string(port) + ": " + ec.message());
  const int bound = acceptor.local_endpoint().port();
  auto listener =
      std::make_shared<Listener<Protocol>>(impl_->io_, std::move(acceptor), std::move(options), impl_->state_);
  impl_->listeners_.push_back(listener);
  listener->Accept();
  return bound;
}

void HttpServer::Start() {
  for (size_t i = impl_->io_threads_.size(); i < std::max<size_t>(impl_->options_.io_threads, 1); ++i) {
    impl_->io_threads_.emplace_back([this] { impl_->io_.run(); });
  }
}

void HttpServer::Stop(std::chrono::milliseconds grace) {
  if (impl_->stopped_) return;
  impl_->stopped_ = true;
  impl_->state_.stopping = true;
  for (const auto& listener : impl_->listeners_) {
    listener->StopAccepting();
    for (const auto& connection : listener->registry().Live()) connection->RequestClose(/*force=*/false);
  }
  // Requests in flight finish and their connections close after their response.
  const auto deadline = SteadyClock::now() + grace;
  while (impl_->Connections() > 0 && SteadyClock::now() < deadline && !impl_->io_threads_.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (const auto& listener : impl_->listeners_) {
    for (const auto& connection : listener->registry().Live()) connection->RequestClose(/*force=*/true);
  }
  impl_->work_.reset();
  // Handlers still running on workers post their (now pointless) writes; the I/O threads run until
  // every handler is done, so nothing refers to a destroyed session.
  impl_->workers_.join();
  impl_->io_.stop();
  for (std::thread& thread : impl_->io_threads_) thread.join();
  impl_->io_threads_.clear();
}

size_t HttpServer::connections() const { return impl_->Connections(); }

}  // namespace fe::engine::forkd
