"""The OpenAPI 3.1 document, built from the same endpoint declarations that routing uses."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from web.api.endpoint import Endpoint
from web.schemas import ID_PATTERN, Error

_PARAM = re.compile(r"{(\w+)}")
_REF = "#/components/schemas/{model}"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(Error)}}}


def _path_schema(name: str) -> dict[str, Any]:
    if name.endswith("_id"):
        return {"type": "string", "pattern": f"^{ID_PATTERN.pattern}$"}
    return {"type": "string"}


def build(endpoints: list[Endpoint], prefix: str, version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = {Error}
    for ep in endpoints:
        models.update(m for m in (ep.body, ep.response) if m is not None)
    inputs = {ep.body for ep in endpoints}
    ordered = sorted(models, key=lambda m: m.__name__)
    _, defs = models_json_schema(
        [(m, "validation" if m in inputs else "serialization") for m in ordered], ref_template=_REF
    )
    paths: dict[str, dict[str, Any]] = {}
    extra_defs: dict[str, Any] = {}
    for ep in endpoints:
        op: dict[str, Any] = {
            "summary": ep.summary,
            "tags": [ep.tag],
            "operationId": ep.handler.__name__,
            "parameters": [{"name": p, "in": "path", "required": True, "schema": _path_schema(p)}
                           for p in _PARAM.findall(ep.path)],
            "responses": {},
        }
        if ep.query is not None:
            # Refs of the query's enums point into the components, where the model's defs are put.
            query = ep.query.model_json_schema(ref_template=_REF)
            extra_defs.update(query.get("$defs", {}))
            for name, field in ep.query.model_fields.items():
                op["parameters"].append(
                    {"name": name, "in": "query", "required": field.is_required(), "schema": query["properties"][name]}
                )
        for name, description in ep.headers:
            op["parameters"].append(
                {"name": name, "in": "header", "required": False, "description": description,
                 "schema": {"type": "string"}}
            )
        if ep.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(ep.body)}}}
        ok: dict[str, Any] = {"description": "OK"}
        if ep.response is not None:
            ok["content"] = {"application/json": {"schema": _ref(ep.response)}}
        elif ep.produces != "application/json":
            ok["content"] = {ep.produces: {}}
        op["responses"][str(ep.status)] = ok
        if ep.auth in ("staff", "signed_in", "platform"):
            op["security"] = [{"bearer": []}]
            op["responses"]["401"] = _error("Missing, malformed, forged or expired token")
        if ep.auth == "platform":
            op["responses"]["403"] = _error("The token lacks scope 'platform'")
        if ep.auth == "staff":
            op["responses"]["403"] = _error("Read-only access to the case")
            op["responses"]["404"] = _error("Unknown, or not visible to the caller")
        if any(p.endswith("_id") for p in _PARAM.findall(ep.path)):
            # web/app.py path_id_middleware: an id outside the id alphabet names nothing, even for an upsert.
            op["responses"].setdefault("404", _error("An id outside [A-Za-z0-9._:-] (at most 64 characters)"))
        if ep.auth == "link":
            op["responses"]["404"] = _error("No such link")
            op["responses"]["410"] = _error("The invite is closed or expired")
            op["responses"]["429"] = _error("Too many unknown links from this address; see Retry-After")
        if ep.query is not None:
            op["responses"]["422"] = _error("The query does not match its schema")
        if ep.body is not None:
            op["responses"]["413"] = _error("Body too large")
            op["responses"]["415"] = _error("The body is not sent as application/json")
            op["responses"]["422"] = _error("Body does not match the schema, or names things that cannot be combined")
        if ep.method == "POST" and ep.auth == "staff":
            op["responses"]["409"] = _error("Not allowed in the invite's current status")
        for status, description in ep.errors:
            op["responses"][str(status)] = _error(description)
        paths.setdefault(prefix + ep.path, {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "claimcam API", "version": version},
        "paths": paths,
        "components": {
            "schemas": {**extra_defs, **defs["$defs"]},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
