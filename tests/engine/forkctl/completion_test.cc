// engine/forkctl/completion.h: the completion script, generated from forkctl's command tree, offers
// in bash the subcommands and options of the command typed so far; `forkctl version` and --version
// print the project's version.
#include "engine/forkctl/completion.h"

#include <gtest/gtest.h>

#include "base/process.h"
#include "tests/support/file_util.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::forkctl {
namespace {

class CompletionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<test::TempDir> dir = test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
  }

  // What bash offers after `line` (the last word is the one being completed) with `script` sourced.
  std::string Offered(const std::string& script, const std::string& line) {
    const std::string path = dir_->Sub("completion.bash");
    EXPECT_TRUE(test::WriteFile(path, script).ok());
    const std::string program = "source " + path + "; COMP_WORDS=(" + line +
                                "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _forkctl; echo \"${COMPREPLY[*]}\"";
    Result<ProcessResult> ran = RunProcess({"bash", "-c", program});
    EXPECT_TRUE(ran.ok() && ran->exit_code == 0) << (ran.ok() ? ran->output : ran.status().ToString());
    return ran.ok() ? ran->output : "";
  }

  std::string ForkctlScript(const std::string& shell) {
    Result<ProcessResult> printed = RunProcess({FE_FORKCTL, "completion", shell});
    EXPECT_TRUE(printed.ok() && printed->exit_code == 0) << (printed.ok() ? printed->output : "");
    return printed.ok() ? printed->output : "";
  }

  std::optional<test::TempDir> dir_;
};

TEST_F(CompletionTest, BashOffersTheSubcommandsAndOptionsOfTheCommandTypedSoFar) {
  CLI::App app{"test"};
  CLI::App* pool = app.add_subcommand("pool", "pools");
  pool->add_subcommand("create", "make one")->add_option("--min", "members");
  pool->add_subcommand("ls", "list");
  app.add_subcommand("fork", "fork")->add_option("--count", "forks");
  const std::string script = CompletionScript(app, "bash");
  EXPECT_EQ(Offered(script, "forkctl p"), "pool\n");
  EXPECT_EQ(Offered(script, "forkctl pool ''"), "create ls --help -h\n");
  EXPECT_EQ(Offered(script, "forkctl pool create --m"), "--min\n");
  EXPECT_EQ(Offered(script, "forkctl fork --c"), "--count\n") << "options are the command's own";
  EXPECT_EQ(Offered(script, "forkctl pool --c"), "\n") << "pool has no --count";
  EXPECT_EQ(CompletionScript(app, "fish"), "");
}

TEST_F(CompletionTest, TheRealForkctlsScriptCompletesItsCommandsInBashAndLoadsInZsh) {
  const std::string bash = ForkctlScript("bash");
  EXPECT_EQ(Offered(bash, "forkctl pool acq"), "acquire\n");
  EXPECT_EQ(Offered(bash, "forkctl fork --target"), "--target-state\n");
  EXPECT_EQ(Offered(bash, "forkctl ver"), "version\n");
  Result<ProcessResult> checked = RunProcess({"bash", "-n", "-c", bash});
  ASSERT_TRUE(checked.ok());
  EXPECT_EQ(checked->exit_code, 0) << checked->output;
  const std::string zsh = ForkctlScript("zsh");
  EXPECT_EQ(zsh.rfind("#compdef forkctl\n", 0), 0u) << zsh.substr(0, 200);
  EXPECT_NE(zsh.find("bashcompinit"), std::string::npos);
  EXPECT_NE(zsh.find("_forkctl() {"), std::string::npos);
  Result<ProcessResult> unknown = RunProcess({FE_FORKCTL, "completion", "fish"});
  ASSERT_TRUE(unknown.ok());
  EXPECT_NE(unknown->exit_code, 0) << "only bash and zsh";
}

TEST_F(CompletionTest, VersionAndTheVersionFlagPrintTheProjectsVersion) {
  for (const char* how : {"version", "--version"}) {
    Result<ProcessResult> printed = RunProcess({FE_FORKCTL, how});
    ASSERT_TRUE(printed.ok());
    EXPECT_EQ(printed->exit_code, 0) << how;
    EXPECT_EQ(printed->output, std::string("forkctl ") + FE_PROJECT_VERSION + "\n") << how;
  }
}

}  // namespace
}  // namespace fe::engine::forkctl
