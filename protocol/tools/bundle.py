#!/usr/bin/env python3
"""Build the two self-contained frame schemas of protocol v1 from the per-message schemas.

    python3 protocol/tools/bundle.py           rewrite v1/client.schema.json and v1/server.schema.json
    python3 protocol/tools/bundle.py --check   exit 1 when either file differs from what would be written

Sources: v1/messages/<type>.json (one schema per frame type) and v1/common.json (shared definitions).
Each bundle inlines every frame schema of its side under `$defs/<type>` and every shared definition it
uses under `$defs/<name>`, rewrites `../common.json#/$defs/<name>` references to `#/$defs/<name>`, and
accepts exactly its side's frames through a root `oneOf` discriminated by `type`. The result has no
external reference, so a validator can load it from one file.

Python 3 standard library only.
"""

import copy
import json
import sys
from pathlib import Path

PROTOCOL_DIR = Path(__file__).resolve().parent.parent
V1_DIR = PROTOCOL_DIR / "v1"
MESSAGES_DIR = V1_DIR / "messages"
COMMON_FILE = V1_DIR / "common.json"
ID_BASE = "https://rapport.dev/protocol/v1/"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
COMMON_REF_PREFIX = "../common.json#/$defs/"
LOCAL_REF_PREFIX = "#/$defs/"

# Frame types per direction, in the order the bundles list them.
CLIENT_TYPES = (
    "auth",
    "session.start",
    "session.resume",
    "message",
    "cancel",
    "complete",
    "ping",
)
SERVER_TYPES = (
    "auth.ok",
    "session.attached",
    "ack",
    "pong",
    "error",
    "resume_failed",
    "reconnect",
    "state",
    "message.started",
    "token",
    "message.done",
    "generation.progress",
    "generation.completed",
    "generation.failed",
)

SIDES = {
    "client": {
        "types": CLIENT_TYPES,
        "title": "Rapport protocol v1: any client-to-server frame",
        "description": "Accepts exactly the frames a client may send on /api/v1/ws. "
        "To tell an unknown `type` (unknown_type) from a malformed frame (schema_violation), "
        "check `type` against the root `properties.type.enum` first, then validate against `$defs/<type>`.",
    },
    "server": {
        "types": SERVER_TYPES,
        "title": "Rapport protocol v1: any server-to-client frame",
        "description": "Accepts exactly the frames a v1 server sends on /api/v1/ws. "
        "Each frame type is also available on its own as `$defs/<type>`.",
    },
}


class BundleError(Exception):
    """A source schema breaks a rule the bundler relies on."""


def load_json(path):
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def load_sources():
    """Read common.json and every message file, checking the conventions bundling depends on."""
    common = load_json(COMMON_FILE)
    messages = {}
    for path in sorted(MESSAGES_DIR.glob("*.json")):
        name = path.name[: -len(".json")]
        schema = load_json(path)
        expected_id = f"{ID_BASE}messages/{name}.json"
        if schema.get("$id") != expected_id:
            raise BundleError(f"{path.name}: $id must be {expected_id}")
        if schema.get("$schema") != DRAFT:
            raise BundleError(f"{path.name}: $schema must be {DRAFT}")
        if schema.get("properties", {}).get("type", {}).get("const") != name:
            raise BundleError(f"{path.name}: properties.type.const must be {name!r}")
        if schema.get("additionalProperties") is not False:
            raise BundleError(f"{path.name}: additionalProperties must be false")
        if "$defs" in schema:
            raise BundleError(f"{path.name}: put shared definitions in common.json, not in $defs")
        messages[name] = schema
    listed = set(CLIENT_TYPES) | set(SERVER_TYPES)
    if set(CLIENT_TYPES) & set(SERVER_TYPES):
        raise BundleError("a type is listed as both client and server")
    missing = listed - set(messages)
    unlisted = set(messages) - listed
    if missing:
        raise BundleError(f"no schema file for: {sorted(missing)}")
    if unlisted:
        raise BundleError(f"schema files not listed in CLIENT_TYPES/SERVER_TYPES: {sorted(unlisted)}")
    return common, messages


def rewrite_refs(node, used, origin):
    """Return a copy of node whose common.json references point into the bundle's own $defs."""
    if isinstance(node, dict):
        result = {}
        for key, value in node.items():
            if key == "$ref":
                result[key] = localise_ref(value, used, origin)
            else:
                result[key] = rewrite_refs(value, used, origin)
        return result
    if isinstance(node, list):
        return [rewrite_refs(item, used, origin) for item in node]
    return node


def localise_ref(ref, used, origin):
    if origin == "message" and ref.startswith(COMMON_REF_PREFIX):
        name = ref[len(COMMON_REF_PREFIX) :]
    elif origin == "common" and ref.startswith(LOCAL_REF_PREFIX):
        name = ref[len(LOCAL_REF_PREFIX) :]
    else:
        raise BundleError(f"unsupported $ref {ref!r} (only {COMMON_REF_PREFIX}<name> is allowed)")
    used.add(name)
    return LOCAL_REF_PREFIX + name


def build_bundle(side, common, messages):
    spec = SIDES[side]
    common_defs = common["$defs"]
    defs = {}
    used = set()
    for name in spec["types"]:
        message = copy.deepcopy(messages[name])
        del message["$schema"]
        del message["$id"]
        message = {"$comment": f"From v1/messages/{name}.json", **message}
        defs[name] = rewrite_refs(message, used, "message")

    # Shared definitions may refer to each other: pull in the transitive closure.
    pending = sorted(used)
    included = set()
    while pending:
        name = pending.pop()
        if name in included:
            continue
        if name not in common_defs:
            raise BundleError(f"common.json has no $defs/{name}")
        if name in defs:
            raise BundleError(f"shared definition {name!r} clashes with a frame type")
        nested = set()
        defs_entry = rewrite_refs(common_defs[name], nested, "common")
        included.add(name)
        pending.extend(sorted(nested - included))
        defs[name] = defs_entry
    ordered_defs = {name: defs[name] for name in spec["types"]}
    ordered_defs.update({name: defs[name] for name in sorted(included)})

    return {
        "$schema": DRAFT,
        "$id": f"{ID_BASE}{side}.schema.json",
        "$comment": "Generated by protocol/tools/bundle.py from v1/messages/*.json and v1/common.json. Do not edit by hand.",
        "title": spec["title"],
        "description": spec["description"],
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"type": "string", "enum": list(spec["types"])}},
        "oneOf": [{"$ref": LOCAL_REF_PREFIX + name} for name in spec["types"]],
        "$defs": ordered_defs,
    }


def render(value, indent=0):
    """JSON with two-space indentation that keeps short flat lists and objects on one line."""
    pad = "  " * indent
    inner = "  " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        if all(not isinstance(item, (dict, list)) for item in value.values()):
            flat = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
            if len(pad) + len(flat) <= 100:
                return flat
        items = [f"{inner}{json.dumps(key, ensure_ascii=False)}: {render(item, indent + 1)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        if all(not isinstance(item, (dict, list)) for item in value):
            flat = "[" + ", ".join(json.dumps(item, ensure_ascii=False) for item in value) + "]"
            if len(pad) + len(flat) <= 100:
                return flat
        items = [inner + render(item, indent + 1) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False)


def bundle_texts():
    """Map each bundle path to the text it must contain."""
    common, messages = load_sources()
    return {V1_DIR / f"{side}.schema.json": render(build_bundle(side, common, messages)) + "\n" for side in SIDES}


def main(argv):
    check_only = "--check" in argv[1:]
    try:
        texts = bundle_texts()
    except (BundleError, json.JSONDecodeError, OSError) as error:
        print(f"bundle: {error}", file=sys.stderr)
        return 2
    stale = []
    for path, text in texts.items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not check_only:
            path.write_text(text, encoding="utf-8")
    relative = [str(path.relative_to(PROTOCOL_DIR)) for path in stale]
    if check_only:
        if stale:
            print("bundle: out of date, run protocol/tools/bundle.py: " + ", ".join(relative), file=sys.stderr)
            return 1
        print("bundle: up to date")
        return 0
    print("bundle: wrote " + (", ".join(relative) if relative else "nothing (already up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
