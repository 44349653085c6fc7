#include "bench/forkd_bench_site.h"

#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "bench/forkd_daemon.h"
#include "bench/interrupt.h"
#include "engine/forkctl/sample_instance.h"

namespace fe::bench {

Result<std::unique_ptr<ForkdBenchSite>> ForkdBenchSite::Create(const std::string& program) {
  if (::geteuid() != 0) return Status::PermissionDenied(program + " needs root (loop-mounted XFS)");
  InstallInterruptHandlers();
  std::unique_ptr<ForkdBenchSite> site(new ForkdBenchSite());
  FE_ASSIGN_OR_RETURN(site->work_, WorkDirectory::Create("/var/tmp"));
  FE_ASSIGN_OR_RETURN(site->scratch_, ScratchFilesystem::Open(ScratchKind::kXfs, site->work_->path()));
  std::string socket_dir = "/tmp/" + program + ".XXXXXX";
  if (::mkdtemp(socket_dir.data()) == nullptr) return Status::FromErrno(errno, "mkdtemp", socket_dir);
  site->socket_dir_ = socket_dir;
  site->socket_ = socket_dir + "/forkd.sock";
  site->log_ = socket_dir + "/forkd.log";
  engine::forkctl::SampleInstanceOptions sample_options;
  sample_options.disk_bytes = uint64_t{1} << 30;
  sample_options.memory_bytes = uint64_t{64} << 20;
  FE_ASSIGN_OR_RETURN(engine::forkctl::SampleInstance sample,
                      engine::forkctl::WriteSampleInstance(site->scratch_->root() + "/sample", sample_options));
  site->sample_dir_ = sample.dir;
  return site;
}

ForkdBenchSite::~ForkdBenchSite() { (void)Close(); }

std::string ForkdBenchSite::description() const {
  return scratch_ ? scratch_->root() + " (" + scratch_->description() + ")" : std::string();
}

Status ForkdBenchSite::ImportSample(PoolApi& api, const std::string& name) const {
  return api
      .Post("/v1/instances",
            nlohmann::json{{"name", name}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", sample_dir_}}, 201)
      .status();
}

Status ForkdBenchSite::WithForkd(const std::string& forkd, const std::string& template_name,
                                 const std::function<Status(PoolApi&)>& measure) const {
  ForkdDaemon daemon;
  FE_RETURN_IF_ERROR(daemon.Start(forkd, data_root(), socket_, {"--loop-pool", "none"}, log_));
  std::printf("forkd %s, socket %s\n", forkd.c_str(), socket_.c_str());
  Status measured = [&]() -> Status {
    PoolApi api(socket_);
    FE_RETURN_IF_ERROR(ImportSample(api, template_name));
    return measure(api);
  }();
  Status stopped = daemon.Stop();
  return measured.ok() ? stopped : measured;
}

Status ForkdBenchSite::Close() {
  Status status;
  if (scratch_) status = scratch_->Close();
  scratch_.reset();
  work_.reset();
  if (!socket_dir_.empty()) {
    ::unlink(log_.c_str());
    ::rmdir(socket_dir_.c_str());
    socket_dir_.clear();
  }
  return status;
}

}  // namespace fe::bench
