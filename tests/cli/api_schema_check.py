#!/usr/bin/env python3
"""The internal API against docs/api.yaml (run by api_schema_test.sh).

  api_schema_check.py API_YAML              checks the document on its own
  api_schema_check.py API_YAML SETUP_JSON   and then the running wxrecond that SETUP_JSON names

The document: every $ref resolves, every operation answers JSON with a schema, every schema is valid
JSON Schema 2020-12 (the metaschema of python3-jsonschema; openapi-spec-validator is not in Debian 12),
path templates and their parameters agree, every component is used.

The server: every operation is called for its successes and its errors. An answer fails when its
status is not documented for the operation, when its body does not match the status's schema, when
a documented operation gets the router's "no such API endpoint", or when it is not the answer the
scenario asked for. Failures are collected and all printed at the end with what was checked.
"""

import http.client
import json
import re
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
from datetime import datetime, timedelta, timezone

import jsonschema
import yaml
from jsonschema import Draft202012Validator

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
JSON = "application/json"


def pointer(*parts):
    """A JSON pointer fragment (RFC 6901) to the given keys."""
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class Document:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            loaded = yaml.safe_load(f)  # a YAML error is reported by main()
        # YAML reads unquoted times and dates as objects and unquoted status codes as integers: both
        # would be wrong in OpenAPI, and JSON has neither.
        self.problems = []
        walk(loaded, "#", self.string_keys)
        self.doc = json.loads(json.dumps(loaded, default=lambda o: f"<not JSON: {o!r}>"))
        self.validators = {}

    def string_keys(self, node, at):
        for key in node:
            if not isinstance(key, str):
                self.problems.append(f"{at}: key {key!r} is not a string (quote it)")

    def resolve(self, ref):
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise KeyError(f"not a local reference: {ref!r}")
        node = self.doc
        for raw in ref[2:].split("/"):
            key = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, list):
                node = node[int(key)]
            elif isinstance(node, dict) and key in node:
                node = node[key]
            else:
                raise KeyError(f"{ref} does not resolve")
        return node

    def deref(self, node, where):
        """A Response/Parameter object and the pointer it lives at, following $ref."""
        while isinstance(node, dict) and "$ref" in node:
            where = node["$ref"]
            node = self.resolve(where)
        return node, where

    def validator(self, schema_pointer):
        # The whole document as the root resource, so the schema's own "#/components/..." references
        # resolve as they do in the document; the OpenAPI keys around it are unknown keywords.
        if schema_pointer not in self.validators:
            root = dict(self.doc)
            root["$ref"] = schema_pointer
            self.validators[schema_pointer] = Draft202012Validator(root)
        return self.validators[schema_pointer]

    def schema_errors(self, schema_pointer, instance):
        """None when the instance matches, else what is wrong (at most three things)."""
        errors = leaves(list(self.validator(schema_pointer).iter_errors(instance)))
        if not errors:
            return None
        # A member missing or mistyped makes its whole subschema fail, and then every member counts as
        # unevaluated: that consequence is only worth showing when it is all there is.
        causes = [e for e in errors if e.validator != "unevaluatedProperties"] or errors
        more = f" (+{len(causes) - 3} more)" if len(causes) > 3 else ""
        return "; ".join(describe(e) for e in causes[:3]) + more

    def operations(self):
        """(path template, method, operation, pointer) of every /api operation, in document order."""
        for path, item in self.doc.get("paths", {}).items():
            for method in METHODS:
                if method in item:
                    yield path, method, item[method], pointer("paths", path, method)

    def response_schema(self, response, where):
        """The pointer to the JSON schema of a response object (after $ref), or None."""
        response, where = self.deref(response, where)
        if not isinstance(response, dict):
            return None
        media = response.get("content", {}).get(JSON)
        if not isinstance(media, dict) or not isinstance(media.get("schema"), dict):
            return None
        return pointer(*unescape(where), "content", JSON, "schema")

    # ---- the document on its own ----

    def self_check(self):
        p = self.problems
        if not str(self.doc.get("openapi", "")).startswith("3.1."):
            p.append("openapi: 3.1.x expected")
        if self.doc.get("jsonSchemaDialect") != "https://json-schema.org/draft/2020-12/schema":
            p.append("jsonSchemaDialect: JSON Schema 2020-12 expected")
        refs = []
        walk(self.doc, "#", lambda node, at: refs.append((node["$ref"], at)) if "$ref" in node else None)
        used = set()
        for ref, at in refs:
            try:
                self.resolve(ref)
                used.add(ref)
            except (KeyError, ValueError, IndexError) as e:
                p.append(f"{at}: $ref {e.args[0]}")
        if p:
            return p  # what follows follows the references
        for kind, members in self.doc.get("components", {}).items():
            if kind == "securitySchemes":
                continue
            for name in members:
                if pointer("components", kind, name) not in used:
                    p.append(f"components/{kind}/{name} is never used")
        schemes = self.doc.get("components", {}).get("securitySchemes", {})
        for requirement in self.doc.get("security", []):
            for name in requirement:
                if name not in schemes:
                    p.append(f"security: no security scheme {name}")

        # Every schema against the 2020-12 metaschema; examples against their schema.
        schemas = []

        def collect(node, at):  # the schemas of parameters, headers and media types
            if isinstance(node.get("schema"), dict):
                schemas.append((f"{at}/schema", node["schema"]))

        walk(self.doc, "#", collect)
        for name, schema in self.doc.get("components", {}).get("schemas", {}).items():
            schemas.append((pointer("components", "schemas", name), schema))
        for at, schema in schemas:
            try:
                Draft202012Validator.check_schema(schema)
            except jsonschema.exceptions.SchemaError as e:
                p.append(f"{at}: not a valid JSON Schema 2020-12 schema: {e.message}")
                continue
            patterns = []  # older jsonschema releases do not check the "regex" format of these
            walk(schema, at, lambda node, where: patterns.append((where, node["pattern"]))
                 if isinstance(node.get("pattern"), str) else None)
            for where, regex in patterns:
                try:
                    re.compile(regex)
                except re.error as e:
                    p.append(f"{where}: pattern {regex!r}: {e}")
            for example in schema.get("examples", []):
                if (error := self.schema_errors(at, example)) is not None:
                    p.append(f"{at}: example {example!r}: {error}")

        ids = set()
        for path, method, op, at in self.operations():
            label = f"{method.upper()} {path}"
            if not op.get("operationId") or op["operationId"] in ids:
                p.append(f"{label}: operationId missing or not unique")
            ids.add(op.get("operationId"))
            self.check_responses(label, op, at, need_schema=True)
            declared = set()
            for holder, hat in ((self.doc["paths"][path], pointer("paths", path)), (op, at)):
                for i, param in enumerate(holder.get("parameters", [])):
                    param, _ = self.deref(param, f"{hat}/parameters/{i}")
                    if not isinstance(param.get("schema"), dict):
                        p.append(f"{label}: parameter {param.get('name')} has no schema")
                    if param.get("in") == "path":
                        if param.get("required") is not True:
                            p.append(f"{label}: path parameter {param.get('name')} must be required")
                        declared.add(param.get("name"))
            if declared != set(re.findall(r"{([^}]+)}", path)):
                p.append(f"{label}: path parameters {sorted(declared)} do not match the template")
            if method in ("post", "put", "patch") and "requestBody" in op:
                media = op["requestBody"].get("content", {}).get(JSON, {})
                if not isinstance(media.get("schema"), dict):
                    p.append(f"{label}: the request body has no JSON schema")
        for path, item in self.doc.get("paths", {}).items():
            other = item.get("x-wxrecon-other-methods")
            at = pointer("paths", path, "x-wxrecon-other-methods", "response")
            if not isinstance(other, dict) or not re.fullmatch(r"[1-5][0-9]{2}", str(other.get("status"))):
                p.append(f"{path}: x-wxrecon-other-methods with a status and a response expected")
            elif self.response_schema(other.get("response"), at) is None:
                p.append(f"{path}: x-wxrecon-other-methods: the response has no JSON schema")
        for name, item in self.doc.get("webhooks", {}).items():
            for method in METHODS:
                if method not in item:
                    continue
                op, at = item[method], pointer("webhooks", name, method)
                media = op.get("requestBody", {}).get("content", {}).get(JSON, {})
                if not isinstance(media.get("schema"), dict):
                    p.append(f"webhook {name}: the request body has no JSON schema")
                # The application's answer: only its status counts, so no body schema is needed.
                self.check_responses(f"webhook {name}", op, at, need_schema=False)
        return p

    def check_responses(self, label, op, at, need_schema):
        responses = op.get("responses")
        if not isinstance(responses, dict) or not responses:
            self.problems.append(f"{label}: no responses")
            return
        for status, response in responses.items():
            if not re.fullmatch(r"[1-5]([0-9]{2}|XX)", status):
                self.problems.append(f"{label}: response key {status!r} is not a status")
            where = pointer(*unescape(at), "responses", status)
            if need_schema and self.response_schema(response, where) is None:
                self.problems.append(f"{label} {status}: no {JSON} schema")


def leaves(errors):
    """The errors that say what is wrong: for a oneOf or anyOf, those of its closest alternative."""
    out = []
    for error in errors:
        if error.validator in ("oneOf", "anyOf") and error.context:
            branches = {}
            for sub in error.context:
                branches.setdefault(sub.relative_schema_path[0], []).append(sub)
            out += leaves(min(branches.values(), key=len))
        else:
            out.append(error)
    return out


def describe(error):
    where = "/".join(str(p) for p in error.absolute_path)
    message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
    return message + (f" at /{where}" if where else "")


def unescape(ptr):
    return [part.replace("~1", "/").replace("~0", "~") for part in ptr[2:].split("/")]


def walk(node, at, visit):
    if isinstance(node, dict):
        visit(node, at)
        for key, value in node.items():
            walk(value, f"{at}/{key}", visit)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            walk(value, f"{at}/{i}", visit)


# ---- the running server ----

class Answer:
    def __init__(self, status, body, text):
        self.status, self.body, self.text = status, body, text

    def get(self, key, default=None):
        return self.body.get(key, default) if isinstance(self.body, dict) else default


class Checker:
    def __init__(self, document, setup):
        self.d = document
        self.setup = setup
        api = urllib.parse.urlsplit(setup["api"])
        self.host, self.port = api.hostname, api.port
        with open(setup["token_file"], encoding="utf-8") as f:
            self.token = f.read().strip()
        self.sim = setup["sim"]
        self.requests = 0
        self.failures = {}  # message -> count, in order of first appearance
        self.answered = {}  # (path template, METHOD) -> set of statuses checked
        self.extra = {}  # other methods and unknown paths: label -> set of statuses checked
        self.lock = threading.Lock()
        self.templates = []
        for path in self.d.doc["paths"]:
            regex = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$"
            self.templates.append((re.compile(regex), path))

    def fail(self, message):
        with self.lock:
            self.failures[message] = self.failures.get(message, 0) + 1

    def send(self, method, target, body=None, token=True, source=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else body
        sent = {"Content-Type": JSON} if data is not None else {}
        if token is True:
            sent["Authorization"] = f"Bearer {self.token}"
        elif token:
            sent["Authorization"] = token
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30,
                                          source_address=(source, 0) if source else None)
        try:
            conn.request(method, target, body=data, headers=sent)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            content_type = response.getheader("Content-Type", "")
        finally:
            conn.close()
        with self.lock:
            self.requests += 1
        return response.status, content_type, text

    def call(self, method, path, query=None, body=None, expect=None, token=True, source=None,
             scenario=""):
        """One request, checked against the document (and against `expect`, the status the scenario
        asks for: one status or a tuple of them)."""
        target = path + (f"?{query}" if query else "")
        status, content_type, text = self.send(method, target, body, token, source)
        label = f"{method} {target}" + (f" ({scenario})" if scenario else "")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        answer = Answer(status, parsed, text)
        if not content_type.startswith(JSON) or parsed is None:
            self.fail(f"{label}: {status} is not JSON ({content_type!r}): {text[:200]!r}")
            return answer
        schema, where, operation = self.documented(method, path, status, label, token)
        if schema is not None:
            if (error := self.d.schema_errors(schema, parsed)) is not None:
                self.fail(f"{where} {status}: {error}")
        generic = pointer("components", "schemas", "NoSuchEndpointError")
        if operation and status == 404 and self.d.schema_errors(generic, parsed) is None:
            self.fail(f"{where}: the router answered \"no such API endpoint\" for a documented operation")
        wanted = expect if isinstance(expect, tuple) else (expect,) if expect is not None else ()
        if wanted and status not in wanted:
            self.fail(f"{label}: {status}, expected {' or '.join(map(str, wanted))}: {text[:240]}")
        return answer

    def documented(self, method, path, status, label, token):
        """(schema pointer, what the answer was checked as, whether that is a documented operation).
        The pointer is None, and a failure recorded, when the document has no such answer."""
        template = next((t for regex, t in self.templates if regex.match(path)), None)
        item = self.d.doc["paths"].get(template, {})
        if method.lower() in item:
            where = f"{method} {template}"
            responses = item[method.lower()]["responses"]
            with self.lock:
                self.answered.setdefault((template, method), set()).add(status)
            key = str(status) if str(status) in responses else f"{str(status)[0]}XX"
            if key not in responses:
                self.fail(f"{where}: status {status} is not documented ({', '.join(responses)} are)")
                return None, where, True
            at = pointer("paths", template, method.lower(), "responses", key)
            return self.d.response_schema(responses[key], at), where, True
        if token is not True:  # refused before routing
            where, want, response = "no token", "401", pointer("components", "responses", "Unauthorized")
        elif template is None:
            where, want = "unknown path", "404"
            response = pointer("components", "responses", "NoSuchEndpoint")
        else:
            other = item["x-wxrecon-other-methods"]
            where, want = f"other method {method} {template}", str(other["status"])
            response = pointer("paths", template, "x-wxrecon-other-methods", "response")
        with self.lock:
            self.extra.setdefault(where, set()).add(status)
        if str(status) != want:
            self.fail(f"{label}: {status}, but the document says {want} for {where}")
            return None, where, False
        return self.d.response_schema({"$ref": response}, response), where, False

    # ---- helpers for the scenario ----

    def control(self, path, body):
        """A wxpay-sim control call; the simulator must accept it."""
        url = urllib.parse.urlsplit(self.sim)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        try:
            conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": JSON})
            response = conn.getresponse()
            text = response.read().decode()
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"wxpay-sim {path} {body}: {response.status} {text}")
        return json.loads(text)

    def sql(self, statement):
        done = subprocess.run(["psql", self.setup["db_url"], "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c",
                               statement], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"psql: {statement}: {done.stderr.strip()}")
        return done.stdout.strip()

    def wait_for(self, what, probe, seconds=20):
        """Calls probe() until it returns true; a failure after `seconds`."""
        give_up = time.monotonic() + seconds
        while time.monotonic() < give_up:
            if probe():
                return True
            time.sleep(0.2)
        self.fail(f"{what}: not within {seconds} s")
        return False

    def report(self):
        print("checked (operation: statuses answered | documented ones the scenario does not reach):")
        for path, method, op, _ in self.d.operations():
            seen = self.answered.get((path, method.upper()), set())
            documented = list(op["responses"])
            left = [s for s in documented if not any(str(x) == s for x in seen)]
            print(f"  {method.upper()} {path} ({op['operationId']}): "
                  f"{' '.join(str(s) for s in sorted(seen)) or '-'}"
                  + (f" | not exercised: {' '.join(left)}" if left else ""))
        for where, seen in self.extra.items():
            print(f"  {where}: {' '.join(str(s) for s in sorted(seen))}")
        pairs = sum(len(s) for s in self.answered.values()) + sum(len(s) for s in self.extra.values())
        print(f"{self.requests} requests, {pairs} operation x status pairs")
        if self.failures:
            print(f"{len(self.failures)} distinct failure(s):")
            for message, count in self.failures.items():
                print(f"  FAIL: {message}" + (f" (x{count})" if count > 1 else ""))


def iso(delta_seconds):
    t = datetime.now(timezone.utc) + timedelta(seconds=delta_seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def scenario(c):
    v3, v2 = c.setup["merchants"]["v3"], c.setup["merchants"]["v2"]
    dead = c.setup["merchants"]["unreachable_login"]  # a merchant of its own for the list, too
    appid = c.setup["appids"]
    orders, refunds, session = "/api/v1/orders", "/api/v1/refunds", "/api/v1/session"

    def order(mchid, no, close=False):
        return f"{orders}/{mchid}/{no}" + ("/close" if close else "")

    def registration(mchid, no, amount=1, **more):
        return dict(mchid=mchid, out_trade_no=no, amount_total=amount, **more)

    def placement(mchid, no, amount, expire=600):
        return registration(mchid, no, amount, description="api schema test",
                            payer_openid="oApiSchemaPayer01", expire_at=iso(expire), prepay=True)

    def refund(no, amount, out_trade_no="API-PAY-0001", mchid=v3, **more):
        return dict(mchid=mchid, out_trade_no=out_trade_no, out_refund_no=no, amount=amount, **more)

    # -- registration and prepay; the payments go first, so their notifications arrive meanwhile --
    a = c.call("POST", orders, body=placement(v3, "API-PAY-0001", 500), expect=201, scenario="prepay v3")
    if a.get("request_payment", {}).get("signType") != "RSA":
        c.fail(f"prepay v3: request_payment with signType RSA expected: {a.text[:200]}")
    c.call("POST", orders, body=placement(v3, "API-PAY-0001", 500), expect=200, scenario="again: reused")
    c.call("POST", orders, body=placement(v2, "API-V2-0001", 300), expect=201, scenario="prepay v2")
    a = c.call("POST", orders, body=placement(v2, "API-V2-0002", 300), expect=201, scenario="prepay v2")
    if a.get("request_payment", {}).get("signType") not in ("MD5", "HMAC-SHA256"):
        c.fail(f"prepay v2: request_payment signed MD5 or HMAC-SHA256 expected: {a.text[:200]}")
    c.control("/sim/pay", {"mchid": v3, "out_trade_no": "API-PAY-0001"})
    c.control("/sim/pay", {"mchid": v2, "out_trade_no": "API-V2-0002"})

    c.call("POST", orders, body=registration(v3, "API-REG-0001", 100), expect=201)
    c.call("POST", orders, body=registration(v3, "API-REG-0001", 100, description="ignored"), expect=200,
           scenario="the same again")
    c.call("POST", orders, body=registration(v3, "API-REG-0001", 200), expect=409, scenario="another amount")
    c.call("POST", orders, body=registration(v3, "API|*-0002", appid=appid[v3], currency="CNY",
                                             description="说明", payer_openid="oApiSchemaPayer01",
                                             expire_at="2030-01-01T08:00:00.5+08:00"),
           expect=201, scenario="every member")
    c.call("POST", orders, body=placement(v3, "AS-1", 100), expect=400,
           scenario="fewer than 6 characters, which WeChat Pay refuses")
    c.call("POST", orders, body=placement(v3, "API-SOON-0001", 100, expire=30), expect=409,
           scenario="prepay of an order expiring within 60 s")
    bad = "API-BAD-0001"
    for what, body in [
        ("not JSON", "{not json"),
        ("an array", [1]),
        ("unknown member", registration(v3, bad, colour="red")),
        ("amount 0", registration(v3, bad, 0)),
        ("amount as text", registration(v3, bad, "100")),
        ("amount 1.5", registration(v3, bad, 1.5)),
        ("33 characters", registration(v3, "A" * 33)),
        ("a space", registration(v3, "API BAD")),
        ("no mchid", {"out_trade_no": bad, "amount_total": 1}),
        ("unknown mchid", registration("1234567890", bad)),
        ("currency cny", registration(v3, bad, currency="cny")),
        ("expire_at without offset", registration(v3, bad, expire_at="2030-01-01T08:00:00")),
        ("prepay not boolean", registration(v3, bad, prepay="yes")),
        ("prepay without payer_openid", registration(v3, bad, description="d", prepay=True)),
        ("prepay without description", registration(v3, bad, payer_openid="o1", prepay=True)),
    ]:
        c.call("POST", orders, body=body, expect=400, scenario=what)
    c.call("POST", orders, body=registration(v3, "API-BIG-0001", description="x" * 9000), expect=413,
           scenario="body over max_body_bytes")

    # -- one order --
    c.call("GET", order(v3, "API-REG-0001"), expect=200)
    c.call("GET", order(v3, "API|*-0002"), expect=200, scenario="| and * as they are")
    c.call("GET", order(v3, "API-NONE-0001"), expect=404, scenario="unknown")
    c.call("GET", order("1234567890", "API-REG-0001"), expect=404, scenario="unknown merchant")

    # -- the list: seven orders of one merchant, by three --
    created = []
    for i in range(1, 8):
        a = c.call("POST", orders, body=registration(dead, f"API-LIST-{i:04}", i), expect=201)
        created.append(a.get("out_trade_no"))
    seen, cursor, pages = [], None, 0
    while pages < 10:
        query = f"mchid={dead}&limit=3" + (f"&cursor={cursor}" if cursor else "")
        a = c.call("GET", orders, query=query, expect=200, scenario="paging")
        pages += 1
        if a.status != 200:
            break
        seen += [o.get("out_trade_no") for o in a.get("orders", [])]
        cursor = a.get("next_cursor")
        if cursor is None:
            break
    if seen != list(reversed(created)) or pages != 3:
        c.fail(f"the list by 3: {seen} in {pages} pages, expected {list(reversed(created))} in 3")
    first = c.call("GET", order(dead, "API-LIST-0001"), expect=200).get("created_at", "")
    a = c.call("GET", orders, query=f"mchid={dead}&state=NOTPAY&since={first}&limit=500", expect=200,
               scenario="since with a bare +")
    if len(a.get("orders", [])) != 7:
        c.fail(f"since={first} (bare +): 7 orders expected, got {len(a.get('orders', []))}")
    c.call("GET", orders, query=f"mchid={dead}&until={urllib.parse.quote(first, safe='')}", expect=200,
           scenario="until with %2B")
    c.call("GET", orders, query="state=SUCCESS&since=2026-01-01T00:00:00Z", expect=200)
    c.call("GET", orders, expect=200, scenario="no parameters")
    for query in ["limit=0", "limit=501", "limit=ten", "state=PAID", "since=yesterday",
                  "until=2026-01-01T00:00:00", "cursor=@@@", "colour=red"]:
        c.call("GET", orders, query=query, expect=400, scenario=query)

    # -- close --
    c.call("POST", orders, body=registration(v3, "API-CLOSE-0001"), expect=201)
    a = c.call("POST", order(v3, "API-CLOSE-0001", close=True), expect=200, scenario="never placed")
    if a.get("state") != "CLOSED":
        c.fail(f"close: state CLOSED expected: {a.text[:200]}")
    c.call("POST", order(v3, "API-CLOSE-0001", close=True), expect=200, scenario="closed already")
    c.call("POST", order(v3, "API-NONE-0001", close=True), expect=404)
    c.call("POST", order(v2, "API-V2-0001", close=True), expect=202, scenario="APIv2 in its first 5 minutes")
    c.call("POST", orders, body=registration(v3, "API-CLOSE-0002"), expect=201)
    c.call("POST", orders, body=registration(v3, "API-CLOSE-0003"), expect=201)
    c.sql(f"UPDATE wxrecon.orders SET poll_lease_until = now() + interval '1 minute', poll_lease_owner = "
          f"'api-schema-test' WHERE mchid = '{v3}' AND out_trade_no = 'API-CLOSE-0003'")
    c.call("POST", order(v3, "API-CLOSE-0003", close=True), expect=503, scenario="a query holds the lease")

    # -- the payments have arrived: a paid order refuses prepay and close --
    for mchid, no in [(v3, "API-PAY-0001"), (v2, "API-V2-0002")]:
        c.wait_for(f"the payment of {no}", lambda: c.call("GET", order(mchid, no), expect=200).get("state")
                   in ("SUCCESS", "REFUND"))
    c.call("POST", orders, body=placement(v3, "API-PAY-0001", 500), expect=409, scenario="prepay when paid")
    c.call("POST", order(v3, "API-PAY-0001", close=True), expect=409, scenario="paid")

    # -- a refund made only at WeChat Pay, read back --
    c.control("/sim/refund", {"mchid": v3, "out_trade_no": "API-PAY-0001", "amount": 30,
                              "out_refund_no": "API-RW-0001", "reason": "at the merchant platform"})
    made_at_wechat = f"{refunds}/{v3}/API-RW-0001"
    c.wait_for("the notified refund", lambda: c.call("GET", made_at_wechat, expect=(200, 404)).status == 200)
    a = c.call("GET", made_at_wechat, expect=200)
    if a.get("status") != "SUCCESS" or a.get("amount_refund") != 30:
        c.fail(f"refund API-RW-0001: SUCCESS of 30 expected: {a.text[:200]}")
    c.call("GET", f"{refunds}/{v3}/API-RW-NONE", expect=404)

    # -- refunds through the API: 500 paid, 30 refunded at WeChat Pay --
    a = c.call("POST", refunds, body=refund("API-RA-0001", 100, reason="api schema test"), expect=201)
    if a.status == 201 and (a.get("origin") != "api" or a.get("reason") != "api schema test"):
        c.fail(f"refund API-RA-0001: origin api and the reason expected: {a.text[:200]}")
    c.call("POST", refunds, body=refund("API-RA-0001", 100, reason="api schema test"), expect=200,
           scenario="the same again")
    c.call("POST", refunds, body=refund("API-RA-0001", 101), expect=409, scenario="another amount")
    c.call("POST", refunds, body=refund("API-RA-0002", 371), expect=422, scenario="more than is left")
    c.call("POST", refunds, body=refund("API-RA-0003", 1, out_trade_no="API-REG-0001"), expect=422,
           scenario="not paid")
    c.call("POST", refunds, body=refund("API-RA-0004", 1, out_trade_no="API-NONE-0001"), expect=404)
    c.call("POST", refunds, body=refund("API-RA-0005", 1, out_trade_no="API-V2-0002", mchid=v2), expect=500,
           scenario="APIv2 without merchant_cert_file")
    c.call("GET", f"{refunds}/{v3}/API-RA-0001", expect=200, scenario="made through the API")
    for what, body in [
        ("not JSON", "nope"),
        ("unknown member", refund("API-RA-0009", 1, colour="red")),
        ("no out_refund_no", {"mchid": v3, "out_trade_no": "API-PAY-0001", "amount": 1}),
        ("amount 0", refund("API-RA-0009", 0)),
        ("amount 1.5", refund("API-RA-0009", 1.5)),
        ("a space", refund("API RA 9", 1)),
        ("65 characters", refund("R" * 65, 1)),
        ("reason of 81", refund("API-RA-0009", 1, reason="r" * 81)),
    ]:
        c.call("POST", refunds, body=body, expect=400, scenario=what)
    c.call("POST", refunds, body=refund("API-RA-0009", 1, reason="x" * 9000), expect=413,
           scenario="body over max_body_bytes")

    # -- session --
    code = c.control("/sim/login-code", {"appid": appid[v3]})["code"]
    c.call("POST", session, body={"appid": appid[v3], "code": code}, expect=200)
    a = c.call("POST", session, body={"appid": appid[v3], "code": code}, expect=400, scenario="code used")
    if not isinstance(a.get("errcode"), int):
        c.fail(f"session with a used code: errcode expected: {a.text[:200]}")
    for what, body in [
        ("bad code", {"appid": appid[v3], "code": "no-such-code"}),
        ("unknown appid", {"appid": "wx0000000000000000", "code": "c"}),
        ("no code", {"appid": appid[v3]}),
        ("code of 129", {"appid": appid[v3], "code": "c" * 129}),
        ("not JSON", "["),
    ]:
        c.call("POST", session, body=body, expect=400, scenario=what)
    c.call("POST", session, body={"appid": appid[v2], "code": "c"}, expect=500, scenario="no app_secret_file")
    c.call("POST", session, body={"appid": appid[dead], "code": "c"}, expect=502,
           scenario="jscode2session unreachable")
    c.call("POST", session, body={"appid": appid[v3], "code": "c" * 9000}, expect=413,
           scenario="body over max_body_bytes")

    # -- WeChat Pay failing: close answers 502 (the final query failed; the poller keeps trying) --
    c.control("/sim/faults", {"mchid": v3, "query_500": 1})
    try:
        c.call("POST", order(v3, "API-CLOSE-0002", close=True), expect=502, scenario="WeChat Pay answers 500")
    finally:
        c.control("/sim/faults", {"mchid": v3, "query_500": 0})

    # -- the database slower than 5 s: its tables locked by another session --
    holder = subprocess.Popen(["psql", c.setup["db_url"], "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                               "BEGIN; LOCK TABLE wxrecon.orders, wxrecon.refunds IN ACCESS EXCLUSIVE MODE;"
                               " SELECT pg_sleep(8); COMMIT;"], stdout=subprocess.DEVNULL)
    try:
        locked = ("SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND granted"
                  " AND mode = 'AccessExclusiveLock' AND relation = 'wxrecon.refunds'::regclass")
        if c.wait_for("the lock", lambda: c.sql(locked) == "1", seconds=10):
            calls = [("GET", order(v3, "API-REG-0001"), None), ("GET", orders, None),
                     ("POST", orders, registration(v3, "API-LOCKED-0001")), ("GET", made_at_wechat, None),
                     ("POST", refunds, refund("API-RA-0010", 1))]
            threads = [threading.Thread(target=c.call, args=(method, path), kwargs=dict(
                body=body, expect=503, scenario="no answer from the database within 5 s"))
                for method, path, body in calls]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        holder.wait(timeout=30)

    # -- no token, a wrong one; then too many failures from one address --
    every = [("POST", orders, registration(v3, "API-AUTH-0001")), ("GET", orders, None),
             ("GET", order(v3, "API-REG-0001"), None), ("POST", order(v3, "API-REG-0001", close=True), None),
             ("POST", refunds, refund("API-RA-0011", 1)), ("GET", made_at_wechat, None),
             ("POST", session, {"appid": appid[v3], "code": "c"})]
    for method, path, body in every:
        c.call(method, path, body=body, token=None, expect=401, scenario="no token")
    c.call("GET", orders, token="Bearer not-the-token", expect=401, scenario="wrong token")
    c.call("GET", orders, token=f"Basic {c.token}", expect=401, scenario="not Bearer")
    c.call("GET", "/api/v1/nothing", token=None, expect=401, scenario="no token, unknown path")
    throttled = set()
    for i in range(300):
        method, path, body = every[i % len(every)]
        a = c.call(method, path, body=body, token="Bearer wrong", source="127.0.0.2", expect=(401, 429),
                   scenario="wrong token from 127.0.0.2")
        if a.status == 429:
            throttled.add((method, path))
        if len(throttled) == len(every):
            break
    if len(throttled) != len(every):
        c.fail(f"429: only {len(throttled)} of {len(every)} operations were throttled within 300 failures")
    c.call("GET", order(v3, "API-REG-0001"), source="127.0.0.2", expect=200,
           scenario="the valid token from a throttled address")

    # -- paths that are no endpoint, methods an endpoint does not take --
    c.call("GET", "/api/v1/nothing", expect=404)
    c.call("GET", f"{orders}/{v3}", expect=404, scenario="no out_trade_no")
    c.call("PUT", orders, body={}, expect=405)
    c.call("DELETE", order(v3, "API-REG-0001"), expect=404)
    c.call("GET", order(v3, "API-REG-0001", close=True), expect=405)
    c.call("GET", refunds, expect=405)
    c.call("POST", made_at_wechat, body={}, expect=404)
    c.call("GET", session, expect=405)

    app_events(c)


def app_events(c):
    """Every app event the run produced, as wxpay-sim's receiver got it: signed, and an AppEvent."""
    # A discrepancy as the fact path opens one (an order-less one too, as the bill kinds do).
    v3 = c.setup["merchants"]["v3"]
    c.sql("SET wxrecon.app_events = 'on'; INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind, detail)"
          f" VALUES ('{v3}', 'API-PAY-0001', 'amount_mismatch', '{{\"registered\": 1}}'),"
          f" ('{v3}', '2026-11-30', 'fee_mismatch', '{{}}')")
    c.wait_for("the app-event outbox drained",
               lambda: c.sql("SELECT count(*) FROM wxrecon.app_events WHERE delivered_at IS NULL") == "0", 60)
    url = urllib.parse.urlsplit(c.sim)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("GET", "/sim/app-events?limit=10000")
        received = json.loads(conn.getresponse().read().decode())["events"]
    finally:
        conn.close()
    types = set()
    for e in received:
        if not e["signature_ok"]:
            c.fail(f"app event {e['id']}: signature does not verify: {e.get('signature_error')}")
        body = json.loads(e["body"])
        types.add(body.get("type"))
        if (error := c.d.schema_errors("#/components/schemas/AppEvent", body)) is not None:
            c.fail(f"app event {e['id']} ({body.get('type')}): {error}")
    for wanted in ("order.paid", "order.closed", "refund.succeeded", "discrepancy.opened"):
        if wanted not in types:
            c.fail(f"app events: no {wanted} among the {len(received)} received")
    print(f"app events: {len(received)} received, types {sorted(t for t in types if t)}, "
          "each signed and matching AppEvent")


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        document = Document(sys.argv[1])
    except (OSError, yaml.YAMLError) as e:
        print(f"FAIL: {sys.argv[1]}: {e}")
        return 1
    problems = document.self_check()
    if problems:
        for p in problems:
            print(f"FAIL: {sys.argv[1]}: {p}")
        return 1
    operations = sum(1 for _ in document.operations())
    print(f"ok: {sys.argv[1]}: OpenAPI {document.doc['openapi']}, {operations} operations, "
          f"{len(document.doc['components']['schemas'])} schemas, every $ref resolves, "
          f"every schema valid JSON Schema 2020-12 (jsonschema {jsonschema_version()})")
    if len(sys.argv) == 2:
        return 0
    with open(sys.argv[2], encoding="utf-8") as f:
        checker = Checker(document, json.load(f))
    try:
        scenario(checker)
    except Exception as e:  # noqa: BLE001 - reported with what was checked before it
        traceback.print_exc()
        checker.fail(f"the scenario stopped: {e!r}")
    checker.report()
    return 1 if checker.failures else 0


def jsonschema_version():
    try:
        from importlib.metadata import version
        return version("jsonschema")
    except Exception:  # noqa: BLE001 - only for the message
        return "?"


if __name__ == "__main__":
    sys.exit(main())
