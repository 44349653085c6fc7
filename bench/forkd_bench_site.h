// Where a benchmark runs a real forkd (forkbench-pool, forkbench-server): a loop-mounted XFS scratch
// filesystem under /var/tmp (root needed), a private directory for forkd's socket and log, and a
// sample Cloud Hypervisor standby instance (engine/forkctl/sample_instance.h) to import. Everything
// is removed when the site is closed or destroyed.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "bench/pool_api.h"
#include "bench/scratch_filesystem.h"

namespace fe::bench {

class ForkdBenchSite {
 public:
  // `program` names the benchmark in messages and in the socket directory.
  static Result<std::unique_ptr<ForkdBenchSite>> Create(const std::string& program);
  ~ForkdBenchSite();

  const std::string& socket() const { return socket_; }
  const std::string& log() const { return log_; }
  std::string data_root() const { return scratch_->root() + "/data"; }
  const std::string& sample_dir() const { return sample_dir_; }
  // "<root> (<how the scratch filesystem is made>)".
  std::string description() const;
  // Imports the sample instance through `api` as `name`.
  Status ImportSample(PoolApi& api, const std::string& name) const;
  // Starts the forkd binary `forkd` on this site (no loop pool), imports the sample as
  // `template_name`, runs `measure` with a client of it and stops forkd: the first error.
  Status WithForkd(const std::string& forkd, const std::string& template_name,
                   const std::function<Status(PoolApi&)>& measure) const;
  // Unmounts and removes everything; the destructor does the same, ignoring errors.
  Status Close();

 private:
  ForkdBenchSite() = default;
  std::unique_ptr<WorkDirectory> work_;
  std::unique_ptr<ScratchFilesystem> scratch_;
  std::string socket_dir_, socket_, log_, sample_dir_;
};

}  // namespace fe::bench
