#include "engine/forkctl/completion.h"

#include <iostream>
#include <map>
#include <vector>

#include <fmt/format.h>

#ifndef FE_VERSION
#error "FE_VERSION (the project's version) is defined by engine/forkctl/CMakeLists.txt"
#endif

namespace fe::engine::forkctl {
namespace {

// What may follow each command path (" pool", " pool create"; "" is forkctl itself).
void Collect(const CLI::App& command, const std::string& path, std::map<std::string, std::vector<std::string>>& words) {
  std::vector<std::string>& here = words[path];
  for (const CLI::App* sub : command.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name().empty()) continue;  // an option group
    here.push_back(sub->get_name());
    Collect(*sub, path + " " + sub->get_name(), words);
  }
  for (const CLI::Option* option : command.get_options()) {
    for (const std::string& name : option->get_lnames()) here.push_back("--" + name);
    for (const std::string& name : option->get_snames()) here.push_back("-" + name);
  }
}

std::string Join(const std::vector<std::string>& words) {
  std::string joined;
  for (const std::string& word : words) joined += (joined.empty() ? "" : " ") + word;
  return joined;
}

std::string BashFunction(const CLI::App& app) {
  std::map<std::string, std::vector<std::string>> words;
  Collect(app, "", words);
  std::string known, cases;
  for (const auto& [path, offered] : words) {
    if (!path.empty()) known += fmt::format("    \"{}\") path=\"$path $word\" ;;\n", path);
    cases += fmt::format("    \"{}\") offered=\"{}\" ;;\n", path, Join(offered));
  }
  return fmt::format(R"(_forkctl() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} path="" word offered="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${{COMP_WORDS[i]}}
    case "$path $word" in
{}    esac
  done
  case "$path" in
{}  esac
  COMPREPLY=($(compgen -W "$offered" -- "$cur"))
}}
complete -F _forkctl forkctl
)",
                     known, cases);
}

}  // namespace

std::string CompletionScript(const CLI::App& app, std::string_view shell) {
  if (shell == "bash")
    return "# forkctl completion for bash: source it, or install as /usr/share/bash-completion/completions/forkctl\n" +
           BashFunction(app);
  if (shell == "zsh") {
    return "#compdef forkctl\n# forkctl completion for zsh (the bash function through bashcompinit): install as "
           "_forkctl in $fpath\n"
           "autoload -U +X bashcompinit && bashcompinit\n" +
           BashFunction(app);
  }
  return "";
}

void AddCompletionAndVersionCommands(CLI::App& app) {
  CLI::App* completion = app.add_subcommand("completion", "Print the shell completion script (bash or zsh)");
  auto shell = std::make_shared<std::string>();
  completion->add_option("shell", *shell, "bash or zsh")->required()->check(CLI::IsMember({"bash", "zsh"}));
  completion->callback([&app, shell] { std::cout << CompletionScript(app, *shell); });
  CLI::App* version = app.add_subcommand("version", "Print forkctl's version");
  version->callback([] { std::cout << "forkctl " << FE_VERSION << "\n"; });
  app.set_version_flag("--version", std::string("forkctl ") + FE_VERSION);
}

}  // namespace fe::engine::forkctl
