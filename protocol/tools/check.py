#!/usr/bin/env python3
"""Check the protocol folder: schemas, generated bundles, and every example in the docs.

    python3 protocol/tools/check.py

Needs `jsonschema` (>= 4.18) and `PyYAML` (see requirements.txt). Checks, in order:

1. the bundles are exactly what tools/bundle.py generates;
2. every schema file is a valid JSON Schema 2020-12 document;
3. the examples inside the per-message schemas validate, both against the per-message file
   (resolving common.json) and against the bundle, and both agree;
4. built-in cases: frames that must be accepted and frames that must be rejected (with their error code);
5. README.md: every ```json block is a valid frame; every ```transcript block validates line by line,
   deliberately wrong client frames fail with the error code the next server line reports, and seq
   numbers, replays, refs, token deltas and final texts add up;
6. asyncapi.yaml: it describes every frame type, its references resolve, and its examples validate.

Exit status 0 when everything passes, 1 otherwise.
"""

import json
import re
import sys
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bundle  # noqa: E402  (sibling module, located through sys.path above)

PROTOCOL_DIR = bundle.PROTOCOL_DIR
V1_DIR = bundle.V1_DIR
README = PROTOCOL_DIR / "README.md"
ASYNCAPI = PROTOCOL_DIR / "asyncapi.yaml"
CLIENT_TYPES = bundle.CLIENT_TYPES
SERVER_TYPES = bundle.SERVER_TYPES
MAX_REF_CHARS = 64
RESUME_WINDOW = 1000


class Report:
    """Collects failures so one run shows all of them."""

    def __init__(self):
        self.failures = []
        self.checked = 0

    def ok(self):
        self.checked += 1

    def fail(self, where, what):
        self.failures.append(f"{where}: {what}")


class Frames:
    """Validates frames against the bundles, both through the root oneOf and through $defs/<type>."""

    def __init__(self, client_bundle, server_bundle):
        self.sides = {}
        for side, schema in (("client", client_bundle), ("server", server_bundle)):
            per_type = {}
            for name in schema["properties"]["type"]["enum"]:
                single = {"$schema": bundle.DRAFT, "$defs": schema["$defs"], "$ref": f"#/$defs/{name}"}
                per_type[name] = Draft202012Validator(single, format_checker=FormatChecker())
            root = Draft202012Validator(schema, format_checker=FormatChecker())
            self.sides[side] = (root, per_type)

    def side_of(self, frame):
        frame_type = frame.get("type") if isinstance(frame, dict) else None
        if frame_type in CLIENT_TYPES:
            return "client"
        if frame_type in SERVER_TYPES:
            return "server"
        return None

    def errors(self, frame, side):
        """Validation messages for frame as a frame of the given side; [] when valid."""
        root, per_type = self.sides[side]
        root_errors = [error.message for error in root.iter_errors(frame)]
        frame_type = frame.get("type") if isinstance(frame, dict) else None
        if frame_type in per_type:
            typed_errors = [f"{'/'.join(map(str, e.path)) or '(frame)'}: {e.message}" for e in per_type[frame_type].iter_errors(frame)]
            if bool(root_errors) != bool(typed_errors):
                return [f"bundle root and $defs/{frame_type} disagree: root={root_errors} typed={typed_errors}"]
            return typed_errors
        return root_errors or ["(no error)"]

    def client_error_code(self, text):
        """The error code the server answers a client text frame with (steps 4-7 of the README), or None."""
        try:
            frame = json.loads(text)
        except ValueError:
            return "invalid_json"
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            return "schema_violation"
        if frame["type"] not in CLIENT_TYPES:
            return "unknown_type"
        if self.errors(frame, "client"):
            return "schema_violation"
        return None


def readable_ref(text):
    """The ref the server echoes for this frame text, or None (README section 2)."""
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if not isinstance(frame, dict):
        return None
    ref = frame.get("ref")
    if isinstance(ref, str) and len(ref) <= MAX_REF_CHARS:
        return ref
    return None


def load_json(path):
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def check_bundles_fresh(report):
    try:
        texts = bundle.bundle_texts()
    except bundle.BundleError as error:
        report.fail("bundle", str(error))
        return
    for path, text in texts.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            report.fail(path.name, "out of date: run python3 protocol/tools/bundle.py")
        else:
            report.ok()


def check_schema_files(report):
    paths = [V1_DIR / "common.json", V1_DIR / "client.schema.json", V1_DIR / "server.schema.json"]
    paths += sorted((V1_DIR / "messages").glob("*.json"))
    for path in paths:
        try:
            schema = load_json(path)
            Draft202012Validator.check_schema(schema)
        except Exception as error:  # any failure here is a broken file
            report.fail(path.relative_to(PROTOCOL_DIR), f"not a valid JSON Schema 2020-12 document: {error}")
            continue
        text = json.dumps(schema)
        if '"$ref": "http' in text:
            report.fail(path.relative_to(PROTOCOL_DIR), "must not use absolute $ref")
        report.ok()


def check_schema_examples(report, frames):
    common = load_json(V1_DIR / "common.json")
    resources = [(common["$id"], Resource.from_contents(common))]
    messages = {}
    for path in sorted((V1_DIR / "messages").glob("*.json")):
        schema = load_json(path)
        messages[path.name] = schema
        resources.append((schema["$id"], Resource.from_contents(schema)))
    registry = Registry().with_resources(resources)
    for name, schema in messages.items():
        validator = Draft202012Validator(schema, registry=registry, format_checker=FormatChecker())
        examples = schema.get("examples", [])
        if not examples:
            report.fail(name, "has no examples")
        for index, example in enumerate(examples):
            where = f"{name} examples[{index}]"
            standalone = [error.message for error in validator.iter_errors(example)]
            side = frames.side_of(example)
            bundled = frames.errors(example, side) if side else ["unknown type"]
            if standalone or bundled:
                report.fail(where, f"invalid: {standalone or bundled}")
            else:
                report.ok()


ACCEPTED = [
    ("client", {"type": "auth", "token": "x"}),
    ("client", {"type": "auth", "api_key": "pk_1", "session_token": "s", "ref": ""}),
    ("client", {"type": "session.start", "content_type": "guided_meditation", "intent": "é" * 500}),
    ("client", {"type": "session.resume", "session_id": "0193A8F2-7C4E-7B21-9D3A-5E8F1C2B4A60", "last_seq": 0}),
    ("client", {"type": "message", "content": "🙂" * 4000, "client_message_id": "A" * 64, "ref": "r" * 64}),
    ("client", {"type": "message", "content": "x", "client_message_id": "a_B-9"}),
    ("client", {"type": "cancel", "ref": "c"}),
    ("client", {"type": "complete", "confirm": False}),
    ("client", {"type": "ping", "nonce": ""}),
    ("server", {"type": "pong"}),
    ("server", {"type": "error", "code": "internal", "message": ""}),
    ("server", {"type": "generation.progress", "seq": 1, "session_id": "0193a8f2-7c4e-7b21-9d3a-5e8f1c2b4a60",
                "job_id": "j", "stage": "queued", "percent": 100}),
    ("server", {"type": "message.done", "seq": 3, "session_id": "0193a8f2-7c4e-7b21-9d3a-5e8f1c2b4a60",
                "message_id": "0193a8f2-7c4e-7b21-9d3a-5e8f1c2b4a61", "role": "assistant", "content": "",
                "cancelled": True, "citations": []}),
    ("server", {"type": "message.done", "seq": 3, "session_id": "0193a8f2-7c4e-7b21-9d3a-5e8f1c2b4a60",
                "message_id": "0193a8f2-7c4e-7b21-9d3a-5e8f1c2b4a61", "role": "user", "content": "hi",
                "cancelled": False}),
]

SID = "0193a8f2-7c4e-7b21-9d3a-5e8f1c2b4a60"
MID = "0193a8f2-7c4e-7b21-9d3a-5e8f1c2b4a61"
CONTEXT = {"content_type": None, "intent": None, "time_preference": None, "duration_minutes": None,
           "depth": None, "tone": None, "voice": None}

# Client frames the server must refuse, with the code it answers.
REJECTED_CLIENT = [
    ('{"type":"auth"}', "schema_violation"),
    ('{"type":"auth","token":"x","api_key":"pk_1","session_token":"s"}', "schema_violation"),
    ('{"type":"auth","token":"x","session_token":"s"}', "schema_violation"),
    ('{"type":"auth","api_key":"pk_1"}', "schema_violation"),
    ('{"type":"auth","api_key":"sk_1","session_token":"s"}', "schema_violation"),
    ('{"type":"auth","token":""}', "schema_violation"),
    ('{"type":"session.start"}', "schema_violation"),
    ('{"type":"session.start","content_type":"poem"}', "schema_violation"),
    (json.dumps({"type": "session.start", "content_type": "ritual", "intent": "é" * 501}), "schema_violation"),
    ('{"type":"session.resume","session_id":"nope","last_seq":0}', "schema_violation"),
    (f'{{"type":"session.resume","session_id":"{SID}","last_seq":-1}}', "schema_violation"),
    (f'{{"type":"session.resume","session_id":"{SID}","last_seq":1.5}}', "schema_violation"),
    (f'{{"type":"session.resume","session_id":"{SID}"}}', "schema_violation"),
    ('{"type":"message","content":"","client_message_id":"a"}', "schema_violation"),
    (json.dumps({"type": "message", "content": "x" * 4001, "client_message_id": "a"}), "schema_violation"),
    (json.dumps({"type": "message", "content": "x", "client_message_id": "a" * 65}), "schema_violation"),
    ('{"type":"message","content":"x","client_message_id":"a b"}', "schema_violation"),
    ('{"type":"message","content":"x","client_message_id":"é"}', "schema_violation"),
    ('{"type":"message","content":"x"}', "schema_violation"),
    ('{"type":"complete"}', "schema_violation"),
    ('{"type":"complete","confirm":"yes"}', "schema_violation"),
    ('{"type":"cancel","now":true}', "schema_violation"),
    ('{"type":"ping","nonce":5}', "schema_violation"),
    (json.dumps({"type": "ping", "ref": "r" * 65}), "schema_violation"),
    ('{"type":"ping","ref":7}', "schema_violation"),
    ('{"type":5}', "schema_violation"),
    ('{"ref":"x"}', "schema_violation"),
    ("[]", "schema_violation"),
    ('"ping"', "schema_violation"),
    ('{"type":"pong"}', "unknown_type"),
    ('{"type":"PING"}', "unknown_type"),
    ('{"type":"ping",}', "invalid_json"),
    ("", "invalid_json"),
]

REJECTED_SERVER = [
    {"type": "token", "seq": 0, "session_id": SID, "message_id": MID, "delta": "x"},
    {"type": "token", "seq": 1, "session_id": SID, "message_id": MID},
    {"type": "message.done", "seq": 1, "session_id": SID, "message_id": MID, "role": "user", "content": "x",
     "cancelled": False, "citations": []},
    {"type": "message.done", "seq": 1, "session_id": SID, "message_id": MID, "role": "user", "content": "x",
     "cancelled": True},
    {"type": "message.done", "seq": 1, "session_id": SID, "message_id": MID, "role": "assistant", "content": "x",
     "cancelled": False, "client_message_id": "m-1"},
    {"type": "message.done", "seq": 1, "session_id": SID, "message_id": MID, "role": "assistant", "content": "x",
     "cancelled": False, "citations": [{"kb_id": "k", "title": "t", "position": 0}]},
    {"type": "message.started", "seq": 1, "session_id": SID, "message_id": MID, "role": "user"},
    {"type": "generation.progress", "seq": 1, "session_id": SID, "job_id": "j", "stage": "writing", "percent": 101},
    {"type": "generation.progress", "seq": 1, "session_id": SID, "job_id": "j", "stage": "mixing", "percent": 1},
    {"type": "generation.completed", "seq": 1, "session_id": SID, "job_id": "j", "content_id": MID,
     "credits_remaining": -1},
    {"type": "state", "seq": 1, "session_id": SID, "state": "Sleeping", "context": CONTEXT},
    {"type": "state", "seq": 1, "session_id": SID, "state": "Greeting",
     "context": {key: value for key, value in CONTEXT.items() if key != "voice"}},
    {"type": "state", "seq": 1, "session_id": SID, "state": "Greeting", "context": dict(CONTEXT, mood=None)},
    {"type": "state", "seq": 1, "session_id": SID, "state": "Greeting", "context": dict(CONTEXT, duration_minutes=0)},
    {"type": "error", "code": "teapot", "message": "x"},
    {"type": "error", "code": "rate_limited", "message": "x", "retry_after_ms": -5},
    {"type": "auth.ok", "protocol": "rapport.v2", "principal": {"kind": "user", "id": "u", "org_id": "o"}},
    {"type": "auth.ok", "protocol": "rapport.v1", "principal": {"kind": "admin", "id": "u", "org_id": "o"}},
    {"type": "session.attached", "session_id": SID, "kind": "group", "last_seq": 0, "resumed": False},
    {"type": "ack", "client_message_id": "m-1"},
    {"type": "resume_failed", "session_id": SID, "reason": "gone", "oldest_seq": 3},
    {"type": "reconnect"},
    {"type": "auth", "token": "x"},
]


def check_builtin_cases(report, frames):
    for side, frame in ACCEPTED:
        errors = frames.errors(frame, side)
        if errors:
            report.fail(f"accepted case {json.dumps(frame)[:80]}", f"rejected: {errors}")
        else:
            report.ok()
    for text, expected in REJECTED_CLIENT:
        code = frames.client_error_code(text)
        if code != expected:
            report.fail(f"rejected client case {text[:80]}", f"expected {expected}, got {code}")
        else:
            report.ok()
    for frame in REJECTED_SERVER:
        if not frames.errors(frame, "server"):
            report.fail(f"rejected server case {json.dumps(frame)[:80]}", "was accepted")
        else:
            report.ok()


class Transcript:
    """Replays one README transcript as a client would see it and checks that it adds up."""

    def __init__(self, report, frames, where):
        self.report = report
        self.frames = frames
        self.where = where
        self.sent_refs = set()
        self.sent_ids = set()
        self.expected_error = None  # (line number, code, ref) after a deliberately wrong frame
        self.next_seq = {}
        self.pending_start = False
        self.pending_resume = {}
        self.awaiting_resume_failed = None  # (session_id, L, H)
        self.texts = {}  # message_id -> streamed text, for open assistant messages
        self.lost_frames = False

    def fail(self, line_no, what):
        self.report.fail(f"{self.where} line {line_no}", what)

    def run(self, lines):
        for line_no, line in lines:
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith(">! "):
                self.client_bad(line_no, line[3:])
            elif line.startswith("> "):
                self.client_good(line_no, line[2:])
            elif line.startswith("< "):
                self.server(line_no, line[2:])
            else:
                self.fail(line_no, f"unknown transcript line: {line[:60]}")
        if self.expected_error:
            self.fail(self.expected_error[0], "wrong frame not followed by its error frame")
        if self.awaiting_resume_failed:
            self.fail("end", "session.attached with resumed=false not followed by resume_failed")

    def remember_sent(self, text):
        ref = readable_ref(text)
        if ref is not None:
            self.sent_refs.add(ref)
        try:
            frame = json.loads(text)
        except ValueError:
            return None
        if isinstance(frame, dict) and isinstance(frame.get("client_message_id"), str):
            self.sent_ids.add(frame["client_message_id"])
        return frame

    def client_bad(self, line_no, text):
        self.remember_sent(text)
        code = self.frames.client_error_code(text)
        if code is None:
            self.fail(line_no, "marked as wrong (>!) but the frame is valid")
            return
        self.expected_error = (line_no, code, readable_ref(text))
        self.report.ok()

    def client_good(self, line_no, text):
        if self.expected_error:
            self.fail(self.expected_error[0], "wrong frame not followed by its error frame")
            self.expected_error = None
        frame = self.remember_sent(text)
        if frame is None:
            self.fail(line_no, "not valid JSON")
            return
        errors = self.frames.errors(frame, "client") if self.frames.side_of(frame) == "client" else ["not a client frame"]
        if errors:
            self.fail(line_no, f"invalid client frame: {errors}")
            return
        if frame["type"] == "session.start":
            self.pending_start = True
        if frame["type"] == "session.resume":
            self.pending_resume[frame["session_id"]] = frame["last_seq"]
        self.report.ok()

    def server(self, line_no, text):
        try:
            frame = json.loads(text)
        except ValueError:
            self.fail(line_no, "not valid JSON")
            return
        errors = self.frames.errors(frame, "server") if self.frames.side_of(frame) == "server" else ["not a server frame"]
        if errors:
            self.fail(line_no, f"invalid server frame: {errors}")
            return
        self.report.ok()
        kind = frame["type"]
        if self.expected_error:
            wrong_line, code, ref = self.expected_error
            self.expected_error = None
            if kind != "error" or frame["code"] != code:
                self.fail(line_no, f"the wrong frame of line {wrong_line} must be answered by error {code}")
            elif frame.get("ref") != ref:
                self.fail(line_no, f"error ref must be {ref!r}, got {frame.get('ref')!r}")
        if self.awaiting_resume_failed and kind != "resume_failed":
            self.fail(line_no, "session.attached with resumed=false must be followed by resume_failed")
        if "ref" in frame and frame["ref"] not in self.sent_refs:
            self.fail(line_no, f"ref {frame['ref']!r} was never sent")
        if kind == "ack" and frame["client_message_id"] not in self.sent_ids:
            self.fail(line_no, "ack for a client_message_id that was never sent")
        handler = getattr(self, "on_" + kind.replace(".", "_"), None)
        if "seq" in frame:
            self.numbered(line_no, frame)
        if handler:
            handler(line_no, frame)

    def numbered(self, line_no, frame):
        session_id, seq = frame["session_id"], frame["seq"]
        expected = self.next_seq.get(session_id)
        if expected is not None and seq != expected:
            self.fail(line_no, f"seq {seq}, expected {expected}")
        self.next_seq[session_id] = seq + 1

    def on_session_attached(self, line_no, frame):
        session_id, highest = frame["session_id"], frame["last_seq"]
        if session_id in self.pending_resume:
            last = self.pending_resume.pop(session_id)
            oldest = max(1, highest - RESUME_WINDOW + 1)
            gap_free = last == 0 or oldest - 1 <= last <= highest
            if frame["resumed"] != gap_free:
                self.fail(line_no, f"resumed must be {gap_free} for last_seq {last}, highest {highest}")
            if frame["resumed"]:
                self.next_seq[session_id] = last + 1 if last > 0 else None
            else:
                self.awaiting_resume_failed = (session_id, last, highest)
        elif self.pending_start:
            self.pending_start = False
            if highest != 0 or frame["resumed"]:
                self.fail(line_no, "session.start must be answered with last_seq 0 and resumed false")
            self.next_seq[session_id] = 1
        else:
            self.fail(line_no, "session.attached without session.start or session.resume")

    def on_resume_failed(self, line_no, frame):
        if not self.awaiting_resume_failed:
            self.fail(line_no, "resume_failed must follow session.attached with resumed=false")
            return
        session_id, last, highest = self.awaiting_resume_failed
        self.awaiting_resume_failed = None
        oldest = max(1, highest - RESUME_WINDOW + 1)
        if frame["session_id"] != session_id or frame["oldest_seq"] != oldest:
            self.fail(line_no, f"resume_failed must name session {session_id} and oldest_seq {oldest}")
        self.next_seq[session_id] = highest + 1
        self.texts.clear()
        self.lost_frames = True

    def on_message_started(self, line_no, frame):
        if frame["message_id"] in self.texts:
            self.fail(line_no, "message.started twice for one message_id")
        if "in_reply_to" in frame and frame["in_reply_to"] not in self.sent_ids:
            self.fail(line_no, "in_reply_to names a client_message_id that was never sent")
        self.texts[frame["message_id"]] = ""

    def on_token(self, line_no, frame):
        if frame["message_id"] not in self.texts:
            if not self.lost_frames:
                self.fail(line_no, "token before message.started")
            return
        self.texts[frame["message_id"]] += frame["delta"]

    def on_message_done(self, line_no, frame):
        if frame["role"] == "user":
            if "client_message_id" in frame and frame["client_message_id"] not in self.sent_ids:
                self.fail(line_no, "user message.done names a client_message_id that was never sent")
            return
        streamed = self.texts.pop(frame["message_id"], None)
        if streamed is None:
            if not self.lost_frames:
                self.fail(line_no, "assistant message.done without message.started")
        elif streamed != frame["content"]:
            self.fail(line_no, f"content {frame['content']!r} differs from the streamed text {streamed!r}")


def fenced_blocks(text):
    """Yield (info string, first line number, [(line number, line)]) for each fenced code block."""
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        match = re.match(r"^(\s*)```(\S*)\s*$", lines[index])
        if not match:
            index += 1
            continue
        indent, info = match.group(1), match.group(2)
        start = index + 1
        body = []
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            body.append((index + 1, lines[index][len(indent):]))
            index += 1
        index += 1
        yield info, start, body


def check_readme(report, frames):
    text = README.read_text(encoding="utf-8")
    transcripts = 0
    for info, start, body in fenced_blocks(text):
        where = f"README.md block at line {start}"
        if info == "json":
            try:
                frame = json.loads("\n".join(line for _, line in body))
            except ValueError as error:
                report.fail(where, f"not valid JSON: {error}")
                continue
            side = frames.side_of(frame)
            errors = frames.errors(frame, side) if side else ["not a frame of either side"]
            if errors:
                report.fail(where, f"invalid frame: {errors}")
            else:
                report.ok()
        elif info == "transcript":
            transcripts += 1
            Transcript(report, frames, where).run(body)
    if transcripts < 5:
        report.fail("README.md", f"expected at least 5 transcripts, found {transcripts}")


def resolve_pointer(document, pointer):
    node = document
    for token in pointer.lstrip("#/").split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or token not in node:
            return None
        node = node[token]
    return node


def internal_refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from internal_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from internal_refs(item)


def check_asyncapi(report, frames):
    try:
        document = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        report.fail("asyncapi.yaml", f"not valid YAML: {error}")
        return
    if document.get("asyncapi") != "3.0.0":
        report.fail("asyncapi.yaml", "asyncapi must be 3.0.0")
    for ref in internal_refs(document):
        if ref.startswith("#"):
            if resolve_pointer(document, ref) is None:
                report.fail("asyncapi.yaml", f"unresolved $ref {ref}")
        elif not (PROTOCOL_DIR / ref).resolve().is_file():
            report.fail("asyncapi.yaml", f"$ref to missing file {ref}")
    messages = document.get("components", {}).get("messages", {})
    if set(messages) != set(CLIENT_TYPES) | set(SERVER_TYPES):
        report.fail("asyncapi.yaml", f"components.messages must list exactly the frame types; has {sorted(messages)}")
    for name, message in messages.items():
        where = f"asyncapi.yaml components.messages.{name}"
        if message.get("payload", {}).get("$ref") != f"./v1/messages/{name}.json":
            report.fail(where, f"payload must be $ref ./v1/messages/{name}.json")
        side = "client" if name in CLIENT_TYPES else "server"
        for example in message.get("examples", []):
            payload = example.get("payload")
            if not isinstance(payload, dict) or payload.get("type") != name:
                report.fail(where, f"example {example.get('name')} is not a {name} frame")
                continue
            errors = frames.errors(payload, side)
            if errors:
                report.fail(where, f"example {example.get('name')} invalid: {errors}")
            else:
                report.ok()
    channel_messages = document.get("channels", {}).get("ws", {}).get("messages", {})
    if set(channel_messages) != set(messages):
        report.fail("asyncapi.yaml", "channels.ws.messages must list every message")
    covered = set()
    for op_name, operation in document.get("operations", {}).items():
        side = {"receive": "client", "send": "server"}.get(operation.get("action"))
        for ref in operation.get("messages", []):
            name = ref["$ref"].rsplit("/", 1)[-1]
            covered.add(name)
            if (name in CLIENT_TYPES) != (side == "client"):
                report.fail(f"asyncapi.yaml operations.{op_name}", f"{name} does not belong to a {operation.get('action')} operation")
    if covered != set(messages):
        report.fail("asyncapi.yaml", f"messages without an operation: {sorted(set(messages) - covered)}")
    report.ok()


def main():
    report = Report()
    check_bundles_fresh(report)
    check_schema_files(report)
    frames = Frames(load_json(V1_DIR / "client.schema.json"), load_json(V1_DIR / "server.schema.json"))
    check_schema_examples(report, frames)
    check_builtin_cases(report, frames)
    check_readme(report, frames)
    check_asyncapi(report, frames)
    for failure in report.failures:
        print(f"FAIL {failure}")
    print(f"check: {report.checked} passed, {len(report.failures)} failed")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
