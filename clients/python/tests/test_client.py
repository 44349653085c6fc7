"""The Python client against a real forkd (FORKD_BINARY), on a sample Cloud Hypervisor instance
forkctl writes (FORKCTL_BINARY): import, fork with count and target state, list, pools, delete, and
error replies as the ForkdError subclass of their code. FE_OPENAPI: the document, whose error codes
must each have a class. Run by ctest (tests/clients/CMakeLists.txt) with Debian's python3 and httpx.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import forkengine_client as fc  # noqa: E402


class ForkdClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.temp = tempfile.TemporaryDirectory(prefix="fe-py-client-")
        cls.socket = os.path.join(cls.temp.name, "forkd.sock")
        cls.guest = os.path.join(cls.temp.name, "guest")
        subprocess.run([os.environ["FORKCTL_BINARY"], "sample-instance", cls.guest, "--disk-size", "64M",
                        "--memory-size", "16M"], check=True, capture_output=True)
        cls.log = open(os.path.join(cls.temp.name, "forkd.log"), "w+")
        cls.forkd_process = subprocess.Popen(
            [os.environ["FORKD_BINARY"], "--data-root", os.path.join(cls.temp.name, "data"), "--socket", cls.socket,
             "--loop-pool", "none", "--manage-taps", "off"], stdout=cls.log, stderr=subprocess.STDOUT)
        cls.forkd = fc.Forkd(cls.socket)
        deadline = time.monotonic() + 120
        while True:
            try:
                if cls.forkd.health()["status"] == "ok":
                    break
            except fc.httpx.TransportError:  # not listening yet
                pass
            if time.monotonic() > deadline or cls.forkd_process.poll() is not None:
                cls.log.seek(0)
                raise RuntimeError("forkd never answered:\n" + cls.log.read())
            time.sleep(0.1)
        cls.template = cls.forkd.create_instance("template", "cloud-hypervisor", import_dir=cls.guest)

    @classmethod
    def tearDownClass(cls):
        cls.forkd.close()
        cls.forkd_process.send_signal(signal.SIGTERM)
        cls.forkd_process.wait(timeout=60)
        cls.log.close()
        cls.temp.cleanup()

    def test_an_imported_instance_is_listed_and_found_by_name(self):
        self.assertEqual(self.template["state"], "Standby")
        self.assertIn("template", [instance["name"] for instance in self.forkd.list_instances()])
        self.assertEqual(self.forkd.get_instance("template")["id"], self.template["id"])

    def test_forks_with_a_count_and_a_target_state_each_get_their_own_identity(self):
        reply = self.forkd.fork("template", "web", count=3, target_state="Standby")
        forks = [fork["instance"] for fork in reply["forks"]]
        self.assertEqual([fork["name"] for fork in forks], ["web-1", "web-2", "web-3"])
        self.assertTrue(all(fork["state"] == "Standby" and fork["parent_id"] == self.template["id"] for fork in forks))
        self.assertEqual(len({fork["identity"]["mac"] for fork in forks}), 3)
        for fork in forks:
            self.forkd.delete_instance(fork["id"])
        self.assertNotIn("web-1", [instance["name"] for instance in self.forkd.list_instances()])

    def test_forks_inherit_labels_and_the_listing_filters_and_pages_by_them(self):
        self.forkd.fork("template", "lab", count=5, labels={"team": "py", "tier": "a"})
        self.forkd.fork("template", "other", count=2, labels={"team": "py", "tier": "b"})
        tier_a = self.forkd.list_instances(labels={"team": "py", "tier": "a"}, page_size=2)
        # One fan-out's forks share their creation time: among them the order is by id.
        self.assertEqual(sorted(instance["name"] for instance in tier_a), [f"lab-{i}" for i in range(1, 6)])
        self.assertEqual(tier_a[0]["ancestors"][-1]["id"], self.template["id"])
        first = self.forkd.list_instances_page(labels={"team": "py"}, parent=self.template["id"], limit=4)
        self.assertEqual(len(first["instances"]), 4)
        rest = self.forkd.list_instances_page(labels={"team": "py"}, limit=4, page_token=first["next_page_token"])
        self.assertEqual(len(rest["instances"]), 3)
        self.assertNotIn("next_page_token", rest)
        with self.assertRaises(fc.InvalidArgument) as bad:
            self.forkd.list_instances(labels={"-x": "1"})
        self.assertIn("label", bad.exception.message)
        for instance in self.forkd.list_instances(labels={"team": "py"}):
            self.forkd.delete_instance(instance["id"])

    def test_a_retried_fork_with_the_same_idempotency_key_is_made_once(self):
        first = self.forkd.fork("template", "once", idempotency_key="py-retry-1")
        again = self.forkd.fork("template", "once", idempotency_key="py-retry-1")
        self.assertEqual(again["forks"][0]["instance"]["id"], first["forks"][0]["instance"]["id"])
        self.forkd.delete_instance("once")

    def test_error_replies_raise_the_class_of_their_code(self):
        with self.assertRaises(fc.NotFound) as missing:
            self.forkd.fork("nobody", "x")
        self.assertEqual((missing.exception.status, missing.exception.code), (404, "not_found"))
        self.assertIn("nobody", missing.exception.message)
        with self.assertRaises(fc.AlreadyExists):
            self.forkd.create_instance("template", "cloud-hypervisor", import_dir=self.guest)
        with self.assertRaises(fc.InvalidArgument) as bad:
            self.forkd.fork("template", "bad", count=0)
        self.assertEqual(bad.exception.status, 400)
        with self.assertRaises(fc.NotFound):  # a name holding a slash stays one path segment
            self.forkd.get_instance("../pools")

    def test_a_pool_hands_out_a_member_and_is_deleted(self):
        pool = self.forkd.create_pool("p", "template", member_state="Standby", min_size=1)
        self.assertEqual(pool["name"], "p")
        self.assertEqual([listed["name"] for listed in self.forkd.list_pools()], ["p"])
        acquired = self.forkd.acquire("p", name="sandbox-1")
        self.assertEqual(acquired["instance"]["name"], "sandbox-1")
        status = self.forkd.get_pool("p")
        self.assertEqual(status["hits"] + status["misses"], 1)
        self.forkd.delete_pool("p")
        with self.assertRaises(fc.NotFound):
            self.forkd.get_pool("p")
        self.forkd.delete_instance("sandbox-1")

    def test_every_error_code_of_the_document_has_its_class(self):
        with open(os.environ["FE_OPENAPI"]) as document:
            codes = json.load(document)["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
        self.assertEqual(sorted(codes), sorted(fc.ERRORS))


if __name__ == "__main__":
    unittest.main(verbosity=2)
