#!/usr/bin/env python3
"""Where forkd's CPU goes in a fork: runs forkbench-api (single forks, or fan-outs of 64), samples the
forkd it starts with `perf record -e cpu-clock --call-graph dwarf` for a few seconds, and prints each
step's share of the samples taken under a fork request (the request's own thread, and the threads a
fan-out prepares its forks on). The README's "Where forkd's CPU goes" table comes from it.

Usage (root, after `cmake --build --preset release --target forkd forkbench-api`):
  bench/fork_cpu_profile.py single     # 1,500 single forks, 4 s sampled
  bench/fork_cpu_profile.py fan-out    # 40 fan-outs of 64, 5 s sampled
"""
import collections
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "build/release/bench/forkbench-api")
WORKLOADS = {
    "single": (["--forks", "1500", "--fan-outs", "1", "--fan-out-repetitions", "1"], 4),
    "fan-out": (["--forks", "20", "--fan-outs", "64", "--fan-out-repetitions", "40"], 5),
}
# A sample belongs to the first step whose frame is on its stack (the order matters: the config
# writes are inside the plugin's PrepareFork, which holds the rest of the rewrite).
STEPS = [
    ("clone of the tree", ["tree::CloneTree", "TreeBackend::Clone"]),
    ("config rewrite: writing the configs", ["ConfinedDir::OverwriteFile"]),
    ("config rewrite: manifest, runtime files", ["FindInstanceFiles", "RemoveRuntimeFiles"]),
    ("config rewrite: read, parse, rewrite, serialise", ["CloudHypervisor::PrepareFork"]),
    ("intent metadata", ["InstanceStore::Write"]),
    ("staged final metadata", ["InstanceStore::Stage"]),
    ("identity lease", ["NetworkAllocator::Allocate"]),
    ("commit (syncfs, renames, fsync)", ["Engine::CommitForks"]),
]
UNDER_A_FORK = ["ApiServer::ForkInstance", "Engine::ForEachPlan"]


def stacks_of(perf_script_text):
    stack = []
    for line in perf_script_text.splitlines():
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line[0] in " \t":
            parts = line.strip().split(" ", 1)
            stack.append(parts[-1])
    if stack:
        yield stack


def wait_for_forkd(bench, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if bench.poll() is not None:
            sys.exit("forkbench-api ended before its forkd started")
        found = subprocess.run(["pgrep", "-x", "forkd"], capture_output=True, text=True).stdout.split()
        if found:
            return found[0]
        time.sleep(0.1)
    sys.exit("no forkd appeared within %d s" % timeout_s)


def main():
    workload = sys.argv[1] if len(sys.argv) > 1 else "single"
    if workload not in WORKLOADS:
        sys.exit(__doc__)
    arguments, seconds = WORKLOADS[workload]
    bench = subprocess.Popen([BENCH, *arguments, "--instance-counts", "10", "--forks-per-count", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pid = wait_for_forkd(bench)
        time.sleep(2)  # past the import, into the forks
        with tempfile.TemporaryDirectory() as scratch:
            data = os.path.join(scratch, "perf.data")
            subprocess.run(["perf", "record", "-F", "1999", "-e", "cpu-clock", "--call-graph", "dwarf,16384",
                            "-p", pid, "-o", data, "--", "sleep", str(seconds)],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            script = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,ip,sym"], check=True,
                                    capture_output=True, text=True).stdout
    finally:
        bench.wait()
    counts = collections.Counter()
    under_fork = 0
    for stack in stacks_of(script):
        frames = " | ".join(stack)
        if not any(anchor in frames for anchor in UNDER_A_FORK):
            continue
        under_fork += 1
        step = next((name for name, keys in STEPS if any(key in frames for key in keys)), "the rest")
        counts[step] += 1
    if under_fork == 0:
        sys.exit("no sample under a fork request: is perf allowed, and forkd built with symbols?")
    print(f"{workload}: {under_fork} samples under a fork request")
    for name, _ in [*STEPS, ("the rest", None)]:
        print(f"  {name:<50} {100 * counts[name] / under_fork:5.1f}%")


if __name__ == "__main__":
    main()
