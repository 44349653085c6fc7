// forkd's metrics as Prometheus sees them (engine/forkd/metrics.h, metrics_listener.h): the
// --metrics-listen listener serves /metrics and nothing else without a token; `promtool check metrics`
// accepts the exposition of a forkd that made forks; Debian's Prometheus scrapes it and answers a
// fork-latency quantile through its HTTP API.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <regex>
#include <thread>

#include <httplib.h>

#include "base/process.h"
#include "tests/engine/forkd/forkd_test_fixture.h"

extern char** environ;

namespace fe::engine::forkd::test {
namespace {

using Clock = std::chrono::steady_clock;

// A program run in the background with its output in `log`, killed (SIGTERM, then waited for) at the end.
class BackgroundProcess {
 public:
  BackgroundProcess(const std::vector<std::string>& argv, const std::string& log) {
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    if (::posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    ::posix_spawn_file_actions_destroy(&actions);
  }
  ~BackgroundProcess() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  bool started() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

class ForkdPrometheusTest : public ForkdTest {
 protected:
  // Starts forkd with a metrics listener on any free port (metrics_port_, from forkd's log), then
  // makes 4 forks and fails one request.
  void StartForkdAndMakeForks() {
    StartForkd({"--metrics-listen", "127.0.0.1:0"});
    const std::regex listening("metrics listening on tcp:127\\.0\\.0\\.1:([0-9]+)/metrics");
    std::smatch match;
    const std::string text = log();
    ASSERT_TRUE(std::regex_search(text, match, listening)) << text;
    metrics_port_ = std::stoi(match[1]);
    Import("web");
    ASSERT_EQ(api().Post("/v1/instances/web/fork", Json{{"name", "f"}, {"count", 3}}).status, 201);
    ASSERT_EQ(api().Post("/v1/instances/web/fork", Json{{"name", "g"}}).status, 201);
    ASSERT_EQ(api().Post("/v1/instances/nobody/fork", Json{{"name", "h"}}).status, 404);
  }

  int metrics_port_ = -1;
};

TEST_F(ForkdPrometheusTest, TheMetricsListenerServesOnlyMetricsAndNeedsNoToken) {
  ASSERT_NO_FATAL_FAILURE(StartForkdAndMakeForks());
  httplib::Client scraper("127.0.0.1", metrics_port_);
  httplib::Result metrics = scraper.Get("/metrics");
  ASSERT_TRUE(metrics) << httplib::to_string(metrics.error());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->get_header_value("Content-Type"), "text/plain; version=0.0.4");
  EXPECT_NE(metrics->body.find("forkengine_forks_total{outcome=\"ok\"} 4\n"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("forkengine_build_info{version=\""), std::string::npos);
  // The API is not reachable through it, with or without a token, and nothing is changed through it.
  httplib::Result instances = scraper.Get("/v1/instances");
  ASSERT_TRUE(instances);
  EXPECT_EQ(instances->status, 404);
  EXPECT_EQ(Json::parse(instances->body, nullptr, false)["code"], "not_found") << instances->body;
  httplib::Result post = scraper.Post("/metrics", "", "application/json");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(api().Get("/v1/healthz").status, 200);
}

TEST_F(ForkdPrometheusTest, PromtoolAcceptsTheExpositionOfAForkdThatMadeForks) {
  ASSERT_NO_FATAL_FAILURE(StartForkdAndMakeForks());
  httplib::Client scraper("127.0.0.1", metrics_port_);
  httplib::Result metrics = scraper.Get("/metrics");
  ASSERT_TRUE(metrics && metrics->status == 200);
  const std::string exposition = temp_->Sub("metrics.txt");
  FE_ASSERT_OK(fe::test::WriteFile(exposition, metrics->body));
  Result<ProcessResult> checked = RunProcess({"sh", "-c", "promtool check metrics < \"$0\"", exposition});
  ASSERT_TRUE(checked.ok()) << checked.status().ToString();
  EXPECT_EQ(checked->exit_code, 0) << checked->output;
  // The negative control: promtool does catch a malformed exposition.
  FE_ASSERT_OK(fe::test::WriteFile(exposition, metrics->body + "forkengine_forks_total{outcome=\"ok\" 1\n"));
  Result<ProcessResult> broken = RunProcess({"sh", "-c", "promtool check metrics < \"$0\"", exposition});
  ASSERT_TRUE(broken.ok());
  EXPECT_NE(broken->exit_code, 0) << broken->output;
}

TEST_F(ForkdPrometheusTest, PrometheusScrapesForkdAndAnswersAForkLatencyQuantile) {
  ASSERT_NO_FATAL_FAILURE(StartForkdAndMakeForks());
  const int web_port = fe::test::FreeTcpPort();
  ASSERT_GT(web_port, 0);
  const std::string config = temp_->Sub("prometheus.yml");
  FE_ASSERT_OK(fe::test::WriteFile(config,
                                   "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                                   "scrape_configs:\n  - job_name: forkd\n    static_configs:\n"
                                   "      - targets: ['127.0.0.1:" +
                                       std::to_string(metrics_port_) + "']\n"));
  BackgroundProcess prometheus({"prometheus", "--config.file=" + config, "--storage.tsdb.path=" + temp_->Sub("tsdb"),
                                "--web.listen-address=127.0.0.1:" + std::to_string(web_port), "--log.level=warn"},
                               temp_->Sub("prometheus.log"));
  ASSERT_TRUE(prometheus.started());

  httplib::Client client("127.0.0.1", web_port);
  const std::string query = "histogram_quantile(0.5, forkengine_fork_duration_seconds_bucket{job=\"forkd\"})";
  Json answer;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    httplib::Result result = client.Get("/api/v1/query", httplib::Params{{"query", query}}, httplib::Headers{});
    if (result && result->status == 200) {
      answer = Json::parse(result->body, nullptr, false);
      if (answer.is_object() && !answer["data"]["result"].empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  Result<std::string> prometheus_log = fe::test::ReadFile(temp_->Sub("prometheus.log"));
  ASSERT_TRUE(answer.is_object() && !answer["data"]["result"].empty())
      << "Prometheus never answered " << query << ": " << answer.dump() << "\n"
      << (prometheus_log.ok() ? *prometheus_log : prometheus_log.status().ToString());
  // ["<time>", "<value>"]: the median of the 4 forks' latencies, inside the buckets (0, 10 s].
  const double median = std::stod(answer["data"]["result"][0]["value"][1].get<std::string>());
  EXPECT_TRUE(std::isfinite(median)) << answer.dump();
  EXPECT_GT(median, 0);
  EXPECT_LE(median, 10);
  httplib::Result up = client.Get("/api/v1/query", httplib::Params{{"query", "up{job=\"forkd\"}"}}, httplib::Headers{});
  ASSERT_TRUE(up && up->status == 200);
  EXPECT_EQ(Json::parse(up->body)["data"]["result"][0]["value"][1], "1") << up->body;
}

}  // namespace
}  // namespace fe::engine::forkd::test
