// The TypeScript client against a real forkd (FORKD_BINARY), on a sample Cloud Hypervisor instance
// that forkctl writes (FORKCTL_BINARY): import, fork with count and target state, list, pools,
// delete, and error replies as ForkdError with the document's codes. Run by ctest
// (tests/clients/CMakeLists.txt) after `npm ci` and `npm run build`.
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { Forkd, ForkdError } from "../src/index.js";

const forkdBinary = process.env.FORKD_BINARY;
const forkctlBinary = process.env.FORKCTL_BINARY;
if (!forkdBinary || !forkctlBinary) throw new Error("set FORKD_BINARY and FORKCTL_BINARY");

const temp = mkdtempSync(join(tmpdir(), "fe-ts-client-"));
const socketPath = join(temp, "forkd.sock");
const guest = join(temp, "guest");
let forkd: ChildProcess;
let client: Forkd;

function forkdLog(): string {
  return readFileSync(join(temp, "forkd.log"), "utf8");
}

before(async () => {
  execFileSync(forkctlBinary, ["sample-instance", guest, "--disk-size", "64M", "--memory-size", "16M"]);
  const log = openSync(join(temp, "forkd.log"), "w");
  forkd = spawn(
    forkdBinary,
    ["--data-root", join(temp, "data"), "--socket", socketPath, "--loop-pool", "none", "--manage-taps", "off"],
    { stdio: ["ignore", log, log] },
  );
  client = new Forkd({ socketPath });
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      assert.equal((await client.health()).status, "ok");
      return;
    } catch (error) {
      if (Date.now() > deadline || forkd.exitCode !== null) throw new Error(`forkd never answered:\n${forkdLog()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
});

after(async () => {
  await client?.close();
  if (forkd && forkd.exitCode === null) {
    const exited = new Promise((resolve) => forkd.once("exit", resolve));
    forkd.kill("SIGTERM");
    await exited;
  }
  rmSync(temp, { recursive: true, force: true });
});

test("imports a guest directory and lists it", async () => {
  const template = await client.createInstance({ name: "template", hypervisor: "cloud-hypervisor", import_dir: guest });
  assert.equal(template.name, "template");
  assert.equal(template.state, "Standby");
  const names = (await client.listInstances()).map((instance) => instance.name);
  assert.deepEqual(names, ["template"]);
  assert.equal((await client.getInstance("template")).id, template.id);
});

test("forks with a count and a target state, then deletes the forks", async () => {
  const reply = await client.fork("template", { name: "web", count: 3, target_state: "Standby" });
  assert.equal(reply.forks.length, 3);
  assert.deepEqual(
    reply.forks.map((fork) => fork.instance.name),
    ["web-1", "web-2", "web-3"],
  );
  for (const fork of reply.forks) {
    assert.equal(fork.instance.state, "Standby");
    assert.equal(fork.instance.parent_id, (await client.getInstance("template")).id);
    assert.ok(fork.phases.clone_us >= 0);
  }
  const macs = new Set(reply.forks.map((fork) => fork.instance.identity?.mac));
  assert.equal(macs.size, 3, "each fork has its own MAC");
  for (const fork of reply.forks) await client.deleteInstance(fork.instance.id);
  assert.deepEqual(
    (await client.listInstances()).map((instance) => instance.name),
    ["template"],
  );
});

test("forks inherit labels, and the listing filters and pages by them", async () => {
  await client.fork("template", { name: "lab", count: 5, labels: { team: "ts", tier: "a" } });
  await client.fork("template", { name: "other", count: 2, labels: { team: "ts", tier: "b" } });
  const tierA = await client.listInstances({ labels: { team: "ts", tier: "a" } }, 2);
  // One fan-out's forks share their creation time: among them the order is by id.
  assert.deepEqual(tierA.map((instance) => instance.name).sort(), ["lab-1", "lab-2", "lab-3", "lab-4", "lab-5"]);
  assert.equal(tierA[0].labels.tier, "a");
  const first = await client.listInstancesPage({ labels: { team: "ts" }, limit: 4 });
  assert.equal(first.instances.length, 4);
  const rest = await client.listInstancesPage({ labels: { team: "ts" }, limit: 4, page_token: first.next_page_token });
  assert.equal(rest.instances.length, 3);
  assert.equal(rest.next_page_token, undefined);
  for (const instance of await client.listInstances({ labels: { team: "ts" } })) await client.deleteInstance(instance.id);
});

test("a snapshot is listed, forked and deleted, and a PATCH sets a TTL and labels", async () => {
  const taken = await client.takeSnapshot("template", { name: "base", labels: { stage: "clean" } });
  assert.match(taken.snapshot.id, /^s-/);
  const template = await client.getInstance("template");
  const listed = await client.listSnapshots({ instance: template.id, labels: { stage: "clean" } }, 1);
  assert.deepEqual(
    listed.map((snapshot) => snapshot.id),
    [taken.snapshot.id],
  );
  assert.equal((await client.getSnapshot(taken.snapshot.id)).name, "base");
  assert.ok((await client.snapshotUsage(taken.snapshot.id)).logical_bytes > 0);
  const forked = await client.forkSnapshot(taken.snapshot.id, { name: "from-base", target_state: "Standby" });
  const fork = forked.forks[0].instance;
  assert.equal(fork.labels.stage, "clean");
  const updated = await client.updateInstance(fork.id, { ttl_s: 3600, labels: { stage: null, owner: "ts" } });
  assert.ok(updated.lifecycle?.expires_at, "the TTL set a deadline");
  assert.deepEqual(updated.labels, { owner: "ts" });
  await client.deleteInstance(fork.id);
  await client.deleteSnapshot(taken.snapshot.id);
  await assert.rejects(
    client.getSnapshot(taken.snapshot.id),
    (error: unknown) => error instanceof ForkdError && error.status === 404,
  );
});

test("a retried fork with the same idempotency key is made once", async () => {
  const first = await client.fork("template", { name: "once" }, { idempotencyKey: "ts-retry-1" });
  const again = await client.fork("template", { name: "once" }, { idempotencyKey: "ts-retry-1" });
  assert.equal(again.forks[0].instance.id, first.forks[0].instance.id);
  await client.deleteInstance("once");
});

test("error replies are ForkdError with the document's code", async () => {
  await assert.rejects(client.fork("nobody", { name: "x" }), (error: unknown) => {
    assert.ok(error instanceof ForkdError);
    assert.equal(error.status, 404);
    assert.equal(error.code, "not_found");
    assert.match(error.message, /nobody/);
    return true;
  });
  await assert.rejects(
    client.createInstance({ name: "template", hypervisor: "cloud-hypervisor", import_dir: guest }),
    (error: unknown) => error instanceof ForkdError && error.status === 409 && error.code === "already_exists",
  );
  await assert.rejects(
    client.fork("template", { name: "bad", count: 0 }),
    (error: unknown) => error instanceof ForkdError && error.status === 400 && error.code === "invalid_argument",
  );
});

test("a pool hands out members and is deleted", async () => {
  const pool = await client.createPool({ name: "p", template: "template", member_state: "Standby", min_size: 1 });
  assert.equal(pool.name, "p");
  assert.deepEqual(
    (await client.listPools()).map((listed) => listed.name),
    ["p"],
  );
  const acquired = await client.acquire("p", { name: "sandbox-1" });
  assert.equal(acquired.instance.name, "sandbox-1");
  assert.equal((await client.getPool("p")).hits + (await client.getPool("p")).misses, 1);
  await client.deletePool("p");
  await assert.rejects(
    client.getPool("p"),
    (error: unknown) => error instanceof ForkdError && error.code === "not_found",
  );
  await client.deleteInstance("sandbox-1");
});
