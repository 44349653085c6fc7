#!/usr/bin/python3
"""Checks every reply forkd's API tests received against engine/forkd/openapi.json.

The tests' API client (tests/engine/forkd/forkd_harness.cc) appends each reply it gets to
<dir>/<pid>.jsonl when FE_API_REPLY_DIR is set: {"method", "path", "status", "content_type", "body"}.
For each reply this finds the operation (path template and method), requires the status to be
documented there, and validates a JSON body against the documented schema with a real JSON-schema
validator (python3-jsonschema). OpenAPI 3.0 is read strictly: `nullable: true` is the only way to
allow null, and an object schema with `properties` is closed (a field the daemon returns must be
documented) unless it says `additionalProperties`.

Usage: openapi_replies.py OPENAPI_JSON REPLY_DIR
       openapi_replies.py --self-test OPENAPI_JSON   (shows that a wrong body and an undocumented
                                                      status are caught)
Exit status 1 with one line per mismatch.
"""
import copy
import glob
import json
import os
import re
import sys

import jsonschema


def to_json_schema(node):
    """OpenAPI 3.0 schema objects -> JSON Schema (draft 4 with nullable folded into type)."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: to_json_schema(value) for key, value in node.items() if key not in ("example", "format")}
    if node.pop("nullable", False):
        if "type" in node:
            types = node["type"] if isinstance(node["type"], list) else [node["type"]]
            node["type"] = types + ["null"]
        if "enum" in node and None not in node["enum"]:
            node["enum"] = node["enum"] + [None]
        if "$ref" in node:
            node = {"anyOf": [{"$ref": node.pop("$ref")}, {"type": "null"}], **node}
    if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    return node


class Document:
    def __init__(self, path):
        with open(path, encoding="utf-8") as file:
            self.raw = json.load(file)
        self.schema_root = to_json_schema({"components": self.raw.get("components", {})})
        self.operations = []  # (regex, method, operation)
        for template, item in self.raw["paths"].items():
            pattern = "^" + re.sub(r"\{[^/}]+\}", "[^/]+", template) + "$"
            for method, operation in item.items():
                if method.lower() in ("get", "post", "put", "patch", "delete"):
                    self.operations.append((re.compile(pattern), method.upper(), template, operation))

    def find(self, method, path):
        templates = []
        for pattern, op_method, template, operation in self.operations:
            if pattern.match(path):
                templates.append(template)
                if op_method == method:
                    return template, operation
        return (templates[0] if templates else None), None

    def check(self, reply):
        """The mismatches of one reply, as strings."""
        method, path, status = reply["method"], reply["path"].split("?")[0], str(reply["status"])
        where = f"{method} {path} -> {status}"
        template, operation = self.find(method, path)
        if operation is None:
            # A request outside the document: 404/405 are the daemon's answers to it; their body is an Error.
            if status not in ("404", "405", "401", "411", "413", "431", "400"):
                return [f"{where}: no operation in the document for this method and path"]
            return self.check_body(where, reply, {"$ref": "#/components/schemas/Error"})
        responses = operation.get("responses", {})
        response = responses.get(status) or responses.get("default")
        if response is None:
            return [f"{where}: status {status} is not documented for {method} {template}"]
        content = response.get("content")
        if not content:
            if reply.get("body"):
                return [f"{where}: documented without a body, but got {reply['body'][:200]!r}"]
            return []
        media = content.get("application/json")
        if media is not None:
            return self.check_body(where, reply, media.get("schema", {}))
        stream = content.get("application/x-ndjson")
        if stream is not None:
            # A stream (GET /v1/events): every line is one value of the schema.
            problems = []
            for number, line in enumerate((reply.get("body") or "").split("\n"), start=1):
                if line.strip():
                    problems += self.check_body(f"{where} line {number}", {"body": line}, stream.get("schema", {}))
            return problems
        return []  # text/plain (metrics): nothing to validate

    def check_body(self, where, reply, schema):
        try:
            body = json.loads(reply.get("body") or "")
        except ValueError:
            return [f"{where}: the body is not JSON: {reply.get('body', '')[:200]!r}"]
        return self.validate(where, body, schema)

    def validate(self, where, body, schema):
        resolver_root = copy.deepcopy(self.schema_root)
        wrapped = dict(to_json_schema(schema))
        wrapped["components"] = resolver_root["components"]
        validator = jsonschema.Draft4Validator(wrapped)
        return [f"{where}: {'/'.join(str(p) for p in error.absolute_path) or '(body)'}: {error.message}"
                for error in validator.iter_errors(body)]


def validate(document_path, reply_dir):
    document = Document(document_path)
    replies = []
    for name in sorted(glob.glob(os.path.join(reply_dir, "*.jsonl"))):
        with open(name, encoding="utf-8") as file:
            for line in file:
                if line.strip():
                    replies.append(json.loads(line))
    if not replies:
        print(f"openapi_replies: no replies recorded in {reply_dir}", file=sys.stderr)
        return 1
    problems = set()
    for reply in replies:
        problems.update(document.check(reply))
    for problem in sorted(problems):
        print(problem, file=sys.stderr)
    print(f"openapi_replies: {len(replies)} replies checked against {document_path}: "
          f"{len(problems)} mismatch(es)")
    return 1 if problems else 0


def self_test(document_path):
    """The validator must catch what it is for: a wrong type, an undocumented field, a null where the
    schema does not allow one, an undocumented status, a streamed line missing a required field."""
    document = Document(document_path)
    bad = [
        {"method": "GET", "path": "/v1/healthz", "status": 200, "body": json.dumps({"status": "ok", "instances": "7", "quarantined": []})},
        {"method": "GET", "path": "/v1/healthz", "status": 200, "body": json.dumps({"status": "ok", "instances": 1, "quarantined": [], "extra": 1})},
        {"method": "GET", "path": "/v1/healthz", "status": 200, "body": json.dumps({"status": None, "instances": 1, "quarantined": []})},
        {"method": "GET", "path": "/v1/healthz", "status": 418, "body": "{}"},
        {"method": "GET", "path": "/v1/events", "status": 200,
         "body": json.dumps({"seq": 1, "time": "t", "type": "instance.deleted", "instance": "i-1", "name": "a"}) + "\n" +
                 json.dumps({"seq": 2, "time": "t", "type": "instance.deleted", "instance": "i-1"}) + "\n"},
    ]
    good = {"method": "GET", "path": "/v1/healthz", "status": 200,
            "body": json.dumps({"status": "ok", "instances": 1, "quarantined": []})}
    failures = []
    for reply in bad:
        if not document.check(reply):
            failures.append(f"not caught: {reply}")
    if document.check(good):
        failures.append(f"a valid reply was refused: {document.check(good)}")
    for failure in failures:
        print(failure, file=sys.stderr)
    print(f"openapi_replies self-test: {len(bad)} bad replies, {len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--self-test":
        sys.exit(self_test(sys.argv[2]))
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(validate(sys.argv[1], sys.argv[2]))
