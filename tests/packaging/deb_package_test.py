#!/usr/bin/env python3
"""The Debian packages, installed on this machine and removed again (ctest label `package`).

Builds forkengine and forkengine-client with CPack from this build tree, installs them the way the
README says (`apt-get install ./forkengine*.deb`), and checks what a host gets: the files where
Debian looks for them, the admin group, units systemd accepts, and the installed forkd serving
the socket systemd hands it, answered by the installed forkctl. Then removes both and checks
nothing of theirs is left but what a removal keeps (the group). Skips (77) when forkengine is
already installed here: the test never replaces a host's own installation.

usage: deb_package_test.py CPACK_CONFIG
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

SKIP = 77
PACKAGES = ["forkengine", "forkengine-client"]
FILES = {
    "forkengine": [
        "/usr/bin/forkd",
        "/usr/lib/systemd/system/forkd.service",
        "/usr/lib/systemd/system/forkd.socket",
        "/usr/share/man/man8/forkd.8.gz",
        "/usr/bin/forkrouter",
        "/usr/lib/systemd/system/forkrouter.service",
        "/usr/share/man/man8/forkrouter.8.gz",
        "/usr/share/forkengine/openapi.json",
        "/usr/share/doc/forkengine/README.md",
    ],
    "forkengine-client": [
        "/usr/bin/forkctl",
        "/usr/share/man/man1/forkctl.1.gz",
        "/usr/share/bash-completion/completions/forkctl",
        "/usr/share/zsh/vendor-completions/_forkctl",
    ],
}


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=kwargs.pop("timeout", 300), **kwargs)


def installed(package):
    status = run(["dpkg-query", "-W", "-f=${Status}", package]).stdout
    return status == "install ok installed"


def read(path):
    with open(path) as file:
        return file.read()


def unit_value(unit_text, key):
    match = re.search(rf"^{key}=(.*)$", unit_text, re.MULTILINE)
    assert match, f"{key}= missing from the unit"
    return match.group(1).strip()


class DebPackageTest(unittest.TestCase):
    cpack_config = None

    @classmethod
    def setUpClass(cls):
        cls.temp = tempfile.TemporaryDirectory(prefix="fe-deb-")
        out = os.path.join(cls.temp.name, "out")
        built = run(["cpack", "--config", cls.cpack_config, "-B", out], timeout=600)
        assert built.returncode == 0, f"cpack failed:\n{built.stdout}{built.stderr}"
        cls.debs = sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".deb"))
        assert len(cls.debs) == 2, f"expected two packages, cpack made {cls.debs}"
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cls.install = run(["apt-get", "install", "-y", *cls.debs], env=env, timeout=600)

    @classmethod
    def tearDownClass(cls):
        run(["dpkg", "--purge", *PACKAGES])
        cls.temp.cleanup()

    def setUp(self):
        self.assertEqual(self.install.returncode, 0, self.install.stdout + self.install.stderr)

    def test_1_the_packages_put_each_file_where_debian_looks_and_declare_their_libraries(self):
        for package, files in FILES.items():
            listed = run(["dpkg", "-L", package]).stdout.split("\n")
            for path in files:
                self.assertIn(path, listed, f"{package} does not ship {path}")
                self.assertTrue(os.path.exists(path), path)
        depends = run(["dpkg-query", "-W", "-f=${Depends}", "forkengine"]).stdout
        # dpkg-shlibdeps found what forkd links; the daemon pulls its client in.
        for needed in ["forkengine-client (= ", "libsystemd0", "liburing2", "libbtrfsutil1", "libdevmapper"]:
            self.assertIn(needed, depends)
        for binary in ["forkd", "forkctl", "forkrouter"]:
            version = run([f"/usr/bin/{binary}", "--version"])
            self.assertEqual(version.returncode, 0, version.stderr)
            self.assertRegex(version.stdout, rf"^{binary} \d+\.\d+\.\d+")

    def test_2_postinst_creates_the_group_that_may_use_the_socket(self):
        self.assertEqual(run(["getent", "group", "forkengine"]).returncode, 0)
        socket_unit = read("/usr/lib/systemd/system/forkd.socket")
        self.assertEqual(unit_value(socket_unit, "SocketGroup"), "forkengine")
        self.assertEqual(unit_value(socket_unit, "SocketMode"), "0660")

    def test_3_systemd_accepts_the_installed_units_as_they_are(self):
        verify = run(["systemd-analyze", "verify", "/usr/lib/systemd/system/forkd.socket",
                      "/usr/lib/systemd/system/forkd.service", "/usr/lib/systemd/system/forkrouter.service"])
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)
        self.assertEqual(verify.stdout + verify.stderr, "")

    def test_4_the_installed_forkd_serves_the_socket_systemd_hands_it(self):
        service = read("/usr/lib/systemd/system/forkd.service")
        exec_start = unit_value(service, "ExecStart").split()
        self.assertEqual(exec_start[0], "/usr/bin/forkd")
        # The unit's own command line; only the data root moves into the test's directory, and no
        # loop-backed pool is made there (this machine's root cannot reflink).
        data_root = os.path.join(self.temp.name, "data")
        command = [data_root if arg == "/var/lib/forkengine" else arg for arg in exec_start] + ["--loop-pool", "none"]
        self.assertIn(data_root, command)
        sock = os.path.join(self.temp.name, "forkd.sock")
        log = open(os.path.join(self.temp.name, "forkd.log"), "w+")
        forkd = subprocess.Popen(["systemd-socket-activate", f"--listen={sock}", *command], stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(sock):
                self.assertLess(time.monotonic(), deadline, "systemd-socket-activate never bound the socket")
                time.sleep(0.02)
            # The first connection starts forkd; the installed forkctl waits on the socket meanwhile.
            health = run(["/usr/bin/forkctl", "--socket", sock, "--json", "health"], timeout=60)
            log.seek(0)
            self.assertEqual(health.returncode, 0, health.stdout + health.stderr + log.read())
            self.assertIn('"status"', health.stdout)
            forkd.send_signal(signal.SIGTERM)
            self.assertEqual(forkd.wait(timeout=60), 0)
            self.assertTrue(os.path.exists(sock), "forkd removed the socket systemd owns")
        finally:
            if forkd.poll() is None:
                os.killpg(forkd.pid, signal.SIGKILL)
                forkd.wait()
            log.close()

    def test_5_the_packaged_bash_completion_completes_forkctl_subcommands(self):
        # Sourced as bash-completion loads it on demand: the file must register forkctl itself.
        script = ("source /usr/share/bash-completion/completions/forkctl; complete -p forkctl && "
                  "COMP_WORDS=(forkctl fo); COMP_CWORD=1; _forkctl; printf '%s\\n' \"${COMPREPLY[@]}\"")
        completed = run(["bash", "-c", script])
        self.assertEqual(completed.returncode, 0, completed.stderr)
        self.assertIn("fork", completed.stdout.split())

    def test_6_removal_takes_every_file_away_and_keeps_the_group(self):
        removed = run(["dpkg", "-r", *PACKAGES])
        self.assertEqual(removed.returncode, 0, removed.stdout + removed.stderr)
        for files in FILES.values():
            for path in files:
                self.assertFalse(os.path.exists(path), f"{path} survived the removal")
        self.assertEqual(run(["getent", "group", "forkengine"]).returncode, 0)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    if os.geteuid() != 0:
        print("skipped: installing a package needs root")
        sys.exit(SKIP)
    for package in PACKAGES:
        if installed(package):
            print(f"skipped: {package} is installed on this host; this test will not replace it")
            sys.exit(SKIP)
    DebPackageTest.cpack_config = sys.argv[1]
    unittest.main(argv=[sys.argv[0], "-v"])
