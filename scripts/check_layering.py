#!/usr/bin/env python3
"""Fails when an #include crosses the declared layering, when folders include each other in a circle,
or when a source file's namespace is not its folder's (folder = namespace: storage/tree is
fe::storage::tree, base is fe, base/http is fe::http; anonymous namespaces and forward declarations of
a third-party library's names, listed in FOREIGN_NAMESPACES, aside).

Each folder below may include itself and the folders it lists (and, transitively, what those may
include). A test folder tests/<f> may include what <f> may include, <f> itself, tests/support and the
test folders of what <f> may include. A file belongs to the longest folder of the table that holds
its path; an included file likewise. Usage: scripts/check_layering.py [root]
"""
import os
import re
import sys

# folder -> the folders it may include directly (the order of the top README's layout table).
LAYERS = {
    "base": [],
    "base/http": ["base"],  # HTTP over a Unix socket: a library of its own (cpp-httplib)
    "storage": ["base"],
    "storage/tree": ["storage"],
    "storage/btrfs": ["storage/tree"],
    "storage/dm_thin": ["storage/tree"],
    "storage/loop": ["storage/tree"],
    "storage/registry": ["storage/btrfs", "storage/dm_thin", "storage/loop"],
    "snapshot": ["storage/registry"],
    "hypervisor/forkagent": ["base"],  # the guest program: base/ and its own files only
    "hypervisor": ["snapshot", "hypervisor/forkagent"],
    "hypervisor/cloud_hypervisor": ["hypervisor", "base/http"],
    "hypervisor/qemu": ["hypervisor"],
    "hypervisor/firecracker": ["hypervisor", "base/http"],
    "hypervisor/registry": ["hypervisor/cloud_hypervisor", "hypervisor/qemu", "hypervisor/firecracker"],
    "engine/network": ["hypervisor/registry"],
    "engine/vm": ["engine/network"],
    "engine": ["engine/vm"],
    "engine/pools": ["engine"],
    # etcd and what a node publishes there: the engine and its pools, read.
    "engine/cluster": ["engine/pools"],
    "engine/replication": ["engine"],
    "engine/forkd": ["engine/pools", "engine/cluster", "engine/replication"],
    # forkrouter: forkd's HTTP transport and replies, the cluster's index; no engine core of its own.
    "engine/router": ["engine/forkd"],
    # The CLI talks to forkd over HTTP: no engine core, only what it renders and the local commands.
    "engine/forkctl": ["hypervisor/cloud_hypervisor", "storage/registry"],
    "bench": ["engine/router", "engine/forkctl"],
}
# Every test may use the test support, the guest runner and loop-device scratch filesystems.
TEST_SUPPORT = ["tests/support", "tests/guest", "storage/loop"]
# Tests that exercise two folders at once, declared: forkagent's tests talk to the host side of the
# same protocol (hypervisor/identity_handoff.h), which is above the agent.
TEST_EXTRA = {"tests/hypervisor/forkagent": ["hypervisor"]}
# Test folders without a source folder of the same name, and what they exercise.
TEST_ONLY = {
    "tests/support": ["storage/registry"],
    "tests/guest": ["storage/registry"],
    "tests/e2e": ["engine/forkd", "engine/forkctl"],
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
NAMESPACE = re.compile(r'^namespace ([\w:]+) \{', re.M)
# Namespaces of libraries we forward-declare names of (cpp-httplib's Server, in forkd's headers).
FOREIGN_NAMESPACES = {"httplib"}


def namespace_of(folder):
    if folder == "base":
        return "fe"
    if folder == "base/http":
        return "fe::http"
    return "fe::" + folder.replace("/", "::")


def closure(table):
    reach = {}

    def visit(folder, trail):
        if folder in reach:
            return reach[folder]
        if folder in trail:
            sys.exit("check_layering: the table itself has a circle: " + " -> ".join(trail + [folder]))
        result = set()
        for below in table[folder]:
            result |= {below} | visit(below, trail + [folder])
        reach[folder] = result
        return result

    for folder in table:
        visit(folder, [])
    return reach


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    reach = closure(LAYERS)
    allowed = {folder: below | {folder} for folder, below in reach.items()}
    for source in LAYERS:
        test = "tests/" + source
        allowed[test] = allowed[source] | {test} | set(TEST_SUPPORT) | {"tests/" + b for b in reach[source]}
    for test, extra in TEST_EXTRA.items():
        for folder in extra:
            allowed[test] |= allowed[folder]
    for test, exercised in TEST_ONLY.items():
        below = set()
        for folder in exercised:
            below |= allowed[folder] | {"tests/" + b for b in allowed[folder]}
        allowed[test] = below | {test} | set(TEST_SUPPORT)
    folders = sorted(allowed, key=len, reverse=True)

    def folder_of(path):
        for folder in folders:
            if path == folder or path.startswith(folder + "/"):
                return folder
        return None

    errors = []
    edges = {}
    for top in list(LAYERS) + ["tests"]:
        if "/" in top:
            continue
        for directory, _, names in os.walk(os.path.join(root, top)):
            for name in names:
                if not name.endswith((".h", ".cc")):
                    continue
                path = os.path.relpath(os.path.join(directory, name), root)
                source = folder_of(os.path.dirname(path) + "/" + name)
                if source is None:
                    errors.append(f"{path}: its folder is not in scripts/check_layering.py's table")
                    continue
                text = open(os.path.join(directory, name), encoding="utf-8").read()
                if source in LAYERS:
                    for match in NAMESPACE.finditer(text):
                        if match.group(1) not in FOREIGN_NAMESPACES and match.group(1) != namespace_of(source):
                            line_number = text.count("\n", 0, match.start()) + 1
                            errors.append(f"{path}:{line_number}: namespace {match.group(1)} in {source}/, "
                                          f"which is namespace {namespace_of(source)}")
                for line_number, match in ((text.count("\n", 0, m.start()) + 1, m) for m in INCLUDE.finditer(text)):
                    included = match.group(1)
                    if not os.path.exists(os.path.join(root, included)):
                        continue  # a file beside it or a system header in quotes: not ours to order
                    target = folder_of(included)
                    if target is None:
                        errors.append(f"{path}:{line_number}: includes {included}, a folder not in the table")
                    elif target not in allowed[source]:
                        errors.append(f"{path}:{line_number}: ({source}) reaches {target}: #include \"{included}\"")
                    elif target != source:
                        edges.setdefault(source, set()).add(target)

    # A circle among the folders actually included (the table forbids one, but a test folder's
    # allowances are wide: this catches two test folders leaning on each other).
    state = {}

    def walk(folder, trail):
        state[folder] = 1
        for target in sorted(edges.get(folder, ())):
            if state.get(target) == 1:
                errors.append("circle: " + " -> ".join(trail[trail.index(target):] + [folder, target]))
            elif target not in state:
                walk(target, trail + [folder])
        state[folder] = 2

    for folder in sorted(edges):
        if folder not in state:
            walk(folder, [])
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(f"check_layering: {len(errors)} violation(s) of the layering or of folder = namespace (scripts/check_layering.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
