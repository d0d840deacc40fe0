"""The simulator as a WSGI application: routing, bearer auth, faults, throttle and journal
around the Web API resources."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from .. import codec
from ..extras import MissingExtra

try:
    import odata_query  # noqa: F401  (parses $filter, in .filters)
    from werkzeug.exceptions import HTTPException
    from werkzeug.wrappers import Request, Response
except ModuleNotFoundError as error:
    raise MissingExtra("The simulator", error.name or "werkzeug", "simulator") from error
from ..net import is_loopback
from . import batch, bulk, definitions, functions
from .annotations import Annotator
from .auth import TokenIssuer, openid_configuration
from .control import FaultRule, Faults, Journal, Throttle
from .errors import (
    QUERY_SYNTAX,
    UNAUTHORIZED,
    UNEXPECTED,
    DataverseError,
    bad_query,
    no_segment,
)
from .keys import KeyRef, missing, parse_key
from .metadata import csdl
from .options import Preferences, ReadOptions, parse_expand, parse_read_options, parse_select
from .reads import CollectionRead, context_url, etag, expansions, represent
from .responses import RECORDS, empty, error_response, json_response
from .schema import EntitySet, Schema
from .seed import SEEDS
from .store import Store
from .system import seed_system
from .writes import Writer

logger = logging.getLogger("cdms_api.simulator")
API_PREFIX = "/api/data/v9.2/"
TOKEN_PATHS = re.compile(r"/(?:[^/]+/)?oauth2/(?P<v2>v2\.0/)?token\Z")
DISCOVERY_PATH = re.compile(r"/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration\Z")
# the first path segment, its key (quotes may hold parentheses and slashes) and the rest
SEGMENT = re.compile(
    r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:\((?P<key>(?:[^()']|'(?:[^']|'')*')*)\))?"
    r"(?:/(?P<rest>.*))?\Z",
    re.S,
)


FAULT = "cdms.fault"  # the kind of the fault rule a request met, for the journal
DROPPED = 599  # the journal's status for a connection closed without an answer


class DropConnection(Exception):
    """Close the client's connection without answering."""


def challenge(host_url: str) -> str:
    return f"Bearer authorization_uri={host_url}oauth2/authorize, resource_id={host_url}"


def read_json(request: Request, entity_set: EntitySet) -> Any:
    try:
        return codec.loads(request.get_data(as_text=True) or "null")
    except (ValueError, UnicodeDecodeError) as error:
        raise DataverseError(
            400,
            "0x80048d19",
            f"Error identified in Payload provided by the user for Entity :'{entity_set.name}'"
            f" ----> InnerException : {error}",
        ) from None


class Simulator:
    """The whole remote CRM: schema, rows, auth and the test controls."""

    def __init__(
        self,
        schema: Schema | None = None,
        db: str = ":memory:",
        seed: str = "demo",
        token_lifetime_s: float | None = None,
        limits: dict[str, Any] | None = None,
    ):
        self.schema = schema or Schema.load()
        self.store = Store(self.schema, db)
        self.writer = Writer(self.schema, self.store)
        self.tokens = TokenIssuer()
        if token_lifetime_s is not None:
            self.tokens.lifetime_s = token_lifetime_s
        self.faults, self.journal, self.throttle = Faults(), Journal(), Throttle()
        #: the throttle's settings a reset goes back to (Throttle.configure's arguments)
        self.limits: dict[str, Any] = limits or {"limit": None}
        self.seed = seed
        #: requests being served (the control API's aside), which a reset waits for
        self._serving, self._served = 0, threading.Condition()
        self.reset()

    def reset(self, settle_s: float = 10.0) -> None:
        """Back to the seed data, with no faults, the limits it was started with and an empty
        journal. Requests still being served (say, delayed ones whose client gave up) are let
        finish first, up to ``settle_s``, so none lands in the journal or the rows of the next
        test."""
        with self._served:
            self._served.wait_for(lambda: self._serving == 0, timeout=settle_s)
        self.store.clear()
        with self.store.transaction():
            seed_system(self.schema, self.writer)
        SEEDS[self.seed](self)
        self.tokens.restore_lifetime()
        self.tokens.certificates.clear()
        self.faults.clear()
        self.journal.clear()
        self.throttle.configure(**self.limits)

    def load(self, entity_set_name: str, records: Iterable[dict]) -> list[str]:
        """Create records as POST would, in one transaction; returns their keys."""
        entity_set = self.entity_set(entity_set_name)
        with self.store.transaction():
            return [self.writer.create(entity_set, record) for record in records]

    def change_feed(self, entity_set_name: str, tracking: bool | None = None, expire: bool = False):
        """Turn an entity set's change tracking on or off (until the next reset), and/or
        expire its change log, so that every delta link issued so far is refused."""
        entity_set = self.entity_set(entity_set_name)
        if tracking is not None and not isinstance(tracking, bool):
            raise ValueError("tracking must be true or false")
        if not isinstance(expire, bool):
            raise ValueError("expire must be true or false")
        if tracking is not None:
            self.store.set_change_tracking(entity_set, tracking)
        if expire:
            self.store.expire_changes(entity_set)

    def entity_set(self, name: str) -> EntitySet:
        try:
            return self.schema[name]
        except KeyError:
            raise no_segment(name) from None

    # WSGI --------------------------------------------------------------------------------------
    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/__admin/"):
            return self.answer(request, environ, start_response)
        with self._served:
            self._serving += 1
        try:
            return self.answer(request, environ, start_response)
        finally:
            with self._served:
                self._serving -= 1
                self._served.notify_all()

    def answer(self, request: Request, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        try:
            response = self.handle(request)
        except DropConnection:
            response = None
        if not request.path.startswith("/__admin/"):
            # journaled before a drop closes the socket, so a client that saw the drop finds it
            self.journal.record(
                method=request.method,
                path=request.path,
                query=request.query_string.decode("latin-1"),
                status=response.status_code if response else DROPPED,
                records=environ.get(RECORDS),
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                time=time.time(),
                client=request.remote_addr,
                fault=environ.get(FAULT),
            )
        if response is None:
            self._drop(environ)
            response = Response(b"", DROPPED)
        return response(environ, start_response)

    @staticmethod
    def _drop(environ: dict) -> None:
        connection = environ.get("werkzeug.socket")
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/__admin/"):
            return self.admin(request)
        rule = self.faults.take(request.method, path)
        if rule is not None:
            request.environ[FAULT] = rule.kind
        slow = rule is not None and rule.action == "pass"  # a slow remote: its time is served
        if rule and rule.delay_ms and not slow:
            time.sleep(rule.delay_ms / 1000)
        if rule and rule.action == "drop":
            raise DropConnection
        if rule and rule.action == "respond":
            return self.fault_response(rule)
        response = self.serve(request, rule.delay_ms / 1000 if slow else 0.0)
        if rule and rule.action == "apply_then_fail":
            if rule.status is None:
                raise DropConnection
            return self.fault_response(rule)
        return response

    @staticmethod
    def fault_response(rule: FaultRule) -> Response:
        """A fault's answer: its JSON body (a Dataverse-shaped error by default), or a text
        body sent as it is -- say the HTML page of a gateway in front of the service."""
        if isinstance(rule.body, str):
            response = Response(rule.body, rule.status, content_type="text/plain; charset=utf-8")
            response.headers.update(rule.headers)
            return response
        return json_response(rule.error_body(), rule.status, rule.headers)

    def serve(self, request: Request, delay_s: float = 0.0) -> Response:
        """Answer a request; ``delay_s`` is spent serving it (it counts for the limits)."""
        if (token_path := TOKEN_PATHS.match(request.path)) and request.method == "POST":
            status, body = self.tokens.issue(
                request.form.to_dict(),
                request.headers.get("Authorization"),
                v2=bool(token_path.group("v2")),
                url=request.base_url,
            )
            return Response(codec.dumps(body), status, content_type="application/json")
        if (discovery := DISCOVERY_PATH.match(request.path)) and request.method == "GET":
            return json_response(openid_configuration(request.host_url, discovery.group("tenant")))
        if not request.path.startswith(API_PREFIX):
            return error_response(
                DataverseError(
                    404,
                    "0x8006088a",
                    f"No HTTP resource was found that matches the request URI '{request.url}'.",
                )
            )
        client = self.tokens.client_of(request.headers.get("Authorization"))
        if client is None:
            return error_response(
                DataverseError(
                    401,
                    UNAUTHORIZED,
                    "The user is not authenticated: a valid bearer token is required.",
                    {"WWW-Authenticate": challenge(request.host_url)},
                )
            )
        try:
            with self.throttle.serving(client):
                time.sleep(delay_s)
                return self.dispatch(request)
        except DataverseError as error:
            return error_response(error)

    # Web API -----------------------------------------------------------------------------------
    def base_url(self, request: Request) -> str:
        return request.host_url.rstrip("/") + API_PREFIX

    def dispatch(self, request: Request) -> Response:
        """Route one Web API request (also called for each operation of a ``$batch``)."""
        resource = request.path[len(API_PREFIX) :]
        try:
            response = self.route(request, resource)
        except DataverseError as error:
            response = error_response(error)
        except HTTPException as error:
            response = error_response(
                DataverseError(error.code or 400, QUERY_SYNTAX, error.description or str(error))
            )
        except Exception:
            logger.exception("the simulator failed on %s %s", request.method, request.path)
            response = error_response(
                DataverseError(500, UNEXPECTED, "An unexpected error occurred.")
            )
        response.headers["REQ_ID"] = str(uuid.uuid4())
        return response

    def route(self, request: Request, resource: str) -> Response:
        method = request.method
        if resource == "":
            return json_response(
                {
                    "@odata.context": f"{self.base_url(request)}$metadata",
                    "value": [
                        {"name": n, "kind": "EntitySet", "url": n} for n in self.schema.entity_sets
                    ],
                }
            )
        if resource == "$metadata":
            return Response(
                csdl(self.schema), content_type="application/xml", headers={"OData-Version": "4.0"}
            )
        if resource == "$batch":
            self.allow(method, "POST")
            return batch.handle(self, request)
        match = SEGMENT.match(resource)
        if not match:
            raise no_segment(resource.split("/")[0].split("(")[0])
        name, key_text, rest = match.group("name", "key", "rest")
        if name == "EntityDefinitions":
            self.allow(method, "GET")
            return json_response(
                definitions.answer(self.schema, self.base_url(request), key_text, rest, request)
            )
        if name in functions.FUNCTIONS and rest is None:
            self.allow(method, "GET")
            return json_response(functions.FUNCTIONS[name](self, request, key_text))
        entity_set = self.entity_set(name)
        prefs = Preferences.parse(request.headers.get("Prefer"))
        args = request.args.to_dict()
        if rest == "$count":
            self.allow(method, "GET")
            return self.count(request, entity_set, key_text, args)
        if rest in bulk.ACTIONS and key_text is None:
            self.allow(method, "POST")
            return bulk.ACTIONS[rest](self, request, entity_set, read_json(request, entity_set))
        if rest is not None:
            raise no_segment(rest.split("/")[0].split("(")[0])
        if key_text is None:
            if method == "GET":
                options = parse_read_options(self.schema, entity_set, args, prefs.track_changes)
                body, headers = CollectionRead(
                    self.schema, self.store, options, prefs, self.base_url(request), args
                ).run()
                request.environ[RECORDS] = len(body["value"])
                return json_response(body, headers=headers)
            self.allow(method, "GET", "POST")
            key = self.writer.create(entity_set, read_json(request, entity_set))
            return self.written(request, entity_set, key, prefs, created=True)
        ref = parse_key(entity_set, key_text)
        if method == "GET":
            return self.read_one(request, entity_set, ref, args, prefs)
        if method == "PATCH":
            key, created = self.writer.upsert(
                entity_set,
                ref,
                read_json(request, entity_set),
                request.headers.get("If-Match"),
                request.headers.get("If-None-Match"),
            )
            return self.written(request, entity_set, key, prefs, created=created)
        self.allow(method, "GET", "PATCH", "DELETE")
        self.writer.delete(entity_set, ref, request.headers.get("If-Match"))
        return empty(204)

    @staticmethod
    def allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise DataverseError(
                405,
                QUERY_SYNTAX,
                f"The requested resource does not support http method '{method}'.",
            )

    def entity_url(self, request: Request, entity_set: EntitySet, key: str) -> str:
        return f"{self.base_url(request)}{entity_set.name}({key})"

    def read_one(
        self,
        request: Request,
        entity_set: EntitySet,
        ref: KeyRef,
        args: dict[str, str],
        prefs: Preferences,
    ) -> Response:
        unknown = {k for k in args if k.startswith("$")} - {"$select", "$expand"}
        if unknown:
            raise bad_query(f"The query parameter {min(unknown)} is not supported here.")
        row = self.writer.find(entity_set, ref)
        if row is None:
            raise missing(entity_set, ref)
        if "$expand" not in args and request.headers.get("If-None-Match") == etag(row):
            request.environ[RECORDS] = 0
            return empty(304, {"ETag": etag(row)})
        request.environ[RECORDS] = 1
        return self.entity(request, entity_set, row, args, prefs, expand=True)

    def written(
        self, request: Request, entity_set: EntitySet, key: str, prefs: Preferences, created: bool
    ) -> Response:
        """The answer to a create or update: 204 with the record's address, or the record
        itself with ``Prefer: return=representation`` (201 when created, 200 when updated;
        ``$expand`` applies to creates only, as in Dataverse)."""
        if not prefs.return_representation:
            url = self.entity_url(request, entity_set, key)
            return empty(204, {"OData-EntityId": url, "Location": url})
        row = self.store.get(entity_set, key)
        response = self.entity(
            request, entity_set, row, request.args.to_dict(), prefs, expand=created
        )
        response.status_code = 201 if created else 200
        response.headers["Preference-Applied"] = "return=representation"
        return response

    def entity(
        self,
        request: Request,
        entity_set: EntitySet,
        row: Any,
        args: dict[str, str],
        prefs: Preferences,
        expand: bool,
    ) -> Response:
        select = parse_select(entity_set, args["$select"]) if "$select" in args else None
        expands = (
            parse_expand(self.schema, entity_set, args["$expand"])
            if expand and "$expand" in args
            else []
        )
        context = context_url(self.base_url(request), entity_set, select, expands)
        body = {"@odata.context": context + "/$entity"}
        notes = Annotator(self.schema, self.store, prefs).annotate(entity_set, [row], select)
        expanded = expansions(self.store, [row], expands)
        body.update(represent(entity_set, [row], select, expanded, notes)[0])
        return json_response(body, headers={"ETag": etag(row)})

    def count(
        self, request: Request, entity_set: EntitySet, key: str | None, args: dict[str, str]
    ) -> Response:
        if key is not None:
            raise bad_query("$count applies to a collection.")
        options = ReadOptions(
            entity_set,
            filter=args.get("$filter"),
            aliases={k: v for k, v in args.items() if k.startswith("@")},
        )
        read = CollectionRead(
            self.schema, self.store, options, Preferences(), self.base_url(request), args
        )
        body: dict[str, Any] = {}
        read.add_count(body, *read.where())
        return Response(
            str(body["@odata.count"]), content_type="text/plain", headers={"OData-Version": "4.0"}
        )

    # Control API -----------------------------------------------------------------------------
    def configure_throttle(self, body: Any) -> None:
        """``{"limit": requests, "window_s": .., "execution_s": .., "concurrency": ..}``: at
        least one of the three limits."""
        if not isinstance(body, dict) or not {"limit", "execution_s", "concurrency"} & set(body):
            raise ValueError("a throttle needs a limit, execution_s or concurrency")
        unknown = set(body) - {"limit", "window_s", "execution_s", "concurrency"}
        if unknown:
            raise ValueError(f"unknown throttle fields: {sorted(unknown)}")
        self.throttle.configure(
            body.get("limit"),
            float(body.get("window_s", 300)),
            None if body.get("execution_s") is None else float(body["execution_s"]),
            body.get("concurrency"),
        )

    def admin(self, request: Request) -> Response:
        if not is_loopback(request.remote_addr):
            return json_response({"error": "the control API answers loopback clients only"}, 403)
        action = (request.method, request.path[len("/__admin/") :].rstrip("/"))
        try:
            body = codec.loads(request.get_data(as_text=True) or "null")
        except ValueError:
            return json_response({"error": "the body is not JSON"}, 400)
        try:
            if action == ("POST", "faults"):
                rules = [
                    FaultRule.from_json(spec)
                    for spec in (body if isinstance(body, list) else [body])
                ]
                self.faults.add(rules)
                return json_response({"added": len(rules)}, 201)
            if action == ("GET", "faults"):
                return json_response({"faults": self.faults.listing()})
            if action == ("DELETE", "faults"):
                self.faults.clear()
                return empty(204)
            if action == ("GET", "requests"):
                return json_response({"requests": self.journal.entries()})
            if action == ("DELETE", "requests"):
                self.journal.clear()
                return empty(204)
            if action == ("POST", "reset"):
                self.reset()
                return empty(204)
            if action == ("POST", "throttle"):
                self.configure_throttle(body)
                return empty(204)
            if action == ("DELETE", "throttle"):
                self.throttle.configure(None)
                return empty(204)
            if action == ("POST", "certificates"):
                self.tokens.register_certificate(body["client_id"], body["certificate"])
                return empty(204)
            if action == ("POST", "tokens"):
                if "lifetime_s" in (body or {}):
                    self.tokens.override_lifetime(float(body["lifetime_s"]))
                if (body or {}).get("expire_all"):
                    self.tokens.expire_all()
                return empty(204)
            if action[0] == "POST" and action[1].startswith("changes/"):
                self.change_feed(action[1][len("changes/") :], **(body or {}))
                return empty(204)
            if action[0] == "POST" and action[1].startswith("load/"):
                keys = self.load(action[1][len("load/") :], body or [])
                return json_response({"keys": keys}, 201)
        except (ValueError, KeyError, TypeError) as error:
            return json_response({"error": str(error)}, 400)
        except DataverseError as error:
            return error_response(error)
        return json_response({"error": f"no control endpoint {action[0]} {request.path}"}, 404)
